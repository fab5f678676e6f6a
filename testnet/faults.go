package testnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fault kinds of the chaos scenario.
const (
	FaultLinkDown  = "link_down" // the node's veth goes down, then up
	FaultPartition = "partition" // a set of nodes moves onto a second bridge
	FaultLoss      = "loss"      // nftables drops a random share of packets
	FaultThrottle  = "throttle"  // tc tbf limits the node's sending rate
	FaultDelay     = "delay"     // tc netem delay, only where sch_netem exists
	FaultKill      = "kill"      // SIGKILL, then restart
)

// AllFaults lists every fault kind, in a fixed order.
var AllFaults = []string{FaultLinkDown, FaultPartition, FaultLoss, FaultThrottle, FaultDelay, FaultKill}

// chaosPrefix starts the name of every namespace a chaos run creates; the
// creating process's id follows, so that a later run can tell leftovers
// of dead runs from the namespaces of runs still going.
const chaosPrefix = "grovechaos"

// nftTable is the nftables table a loss fault adds in a node's namespace.
const nftTable = "grovechaos"

// faultSupport says which fault kinds this machine can apply and why the
// others are skipped.
func faultSupport(ctx context.Context) (skipped map[string]string) {
	skipped = map[string]string{}
	if _, err := exec.LookPath("nft"); err != nil {
		skipped[FaultLoss] = "the nft command (nftables) is not installed"
	}
	if _, err := exec.LookPath("tc"); err != nil {
		skipped[FaultThrottle] = "the tc command (iproute2) is not installed"
		skipped[FaultDelay] = skipped[FaultThrottle]
	} else if !netemPresent(ctx) {
		skipped[FaultDelay] = "the kernel lacks sch_netem"
	}
	return skipped
}

// netemPresent probes tc netem in a throwaway namespace.
func netemPresent(ctx context.Context) bool {
	// Unique per call: runs of one process (parallel tests) probe at once.
	ns := fmt.Sprintf("%s-%d-probe%s", chaosPrefix, os.Getpid(), rand.Text()[:8])
	if exec.CommandContext(ctx, "ip", "netns", "add", ns).Run() != nil {
		return false
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if exec.CommandContext(ctx, "ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1").Run() != nil {
		return false
	}
	return exec.CommandContext(ctx, "tc", "-n", ns, "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms").Run() == nil
}

// removeStaleNamespaces deletes the namespaces of earlier chaos runs whose
// process is gone (a run killed before its cleanup ran). Deleting a
// namespace removes its veth links, qdiscs and nftables rules with it.
func removeStaleNamespaces() (removed []string, err error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("testnet: chaos: ip netns list: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], chaosPrefix+"-") {
			continue
		}
		rest := strings.TrimPrefix(f[0], chaosPrefix+"-")
		pidText, _, _ := strings.Cut(rest, "-")
		pid, perr := strconv.Atoi(pidText)
		if perr == nil && pid > 0 && processAlive(pid) {
			continue
		}
		if derr := ipCmd("netns", "del", f[0]); derr == nil {
			removed = append(removed, f[0])
		}
	}
	return removed, nil
}

// processAlive reports whether a process with that id exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// listNamespaces returns the namespaces whose names start with prefix.
func listNamespaces(prefix string) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			ns = append(ns, f[0])
		}
	}
	return ns
}

// addPartitionBridge creates the lab's second bridge, br1: the links of a
// partitioned set of nodes move onto it, so they reach each other but not
// the rest.
func (l *netLab) addPartitionBridge() error {
	for _, args := range [][]string{
		{"-n", l.bridge, "link", "add", "br1", "type", "bridge", "mcast_snooping", "0"},
		{"-n", l.bridge, "link", "set", "br1", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

// bridgePort is the name of host h's veth end in the bridge namespace.
func (l *netLab) bridgePort(h labHost) string {
	return "p" + strings.TrimPrefix(h.ns, l.prefix+"-")
}

// setBridge puts h's link on bridge br0 or br1.
func (l *netLab) setBridge(h labHost, br string) error {
	return ipCmd("-n", l.bridge, "link", "set", l.bridgePort(h), "master", br)
}

// setLink takes h's interface down or up.
func setLink(h labHost, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipCmd("-n", h.ns, "link", "set", "eth0", state)
}

// addLoss makes h drop pct percent of the packets it sends and of those
// it receives, at random (nftables numgen).
func addLoss(ctx context.Context, h labHost, pct int) error {
	rules := fmt.Sprintf(`table inet %[1]s {
	chain out {
		type filter hook output priority 0; policy accept;
		numgen random mod 100 < %[2]d drop
	}
	chain in {
		type filter hook input priority 0; policy accept;
		numgen random mod 100 < %[2]d drop
	}
}
`, nftTable, pct)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: chaos: nft in %s: %v: %s", h.ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeLoss deletes addLoss's table.
func removeLoss(ctx context.Context, h labHost) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns, "nft", "delete", "table", "inet", nftTable).CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: chaos: nft delete in %s: %v: %s", h.ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nftTables lists the nftables tables in h's namespace (the cleanup check).
func nftTables(h labHost) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", h.ns, "nft", "list", "tables").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// addThrottle limits h's sending rate with a token bucket (tbf), so its
// queue fills and packets wait or drop, as on a slow uplink.
func addThrottle(ctx context.Context, h labHost, kbit int) error {
	return tcCmd(ctx, "-n", h.ns, "qdisc", "add", "dev", "eth0", "root", "tbf",
		"rate", fmt.Sprintf("%dkbit", kbit), "burst", "8kb", "latency", "300ms")
}

// addDelay delays h's packets with netem (only where the kernel has it).
func addDelay(ctx context.Context, h labHost, d time.Duration) error {
	return tcCmd(ctx, "-n", h.ns, "qdisc", "add", "dev", "eth0", "root", "netem",
		"delay", fmt.Sprintf("%dms", d.Milliseconds()), fmt.Sprintf("%dms", d.Milliseconds()/2))
}

// removeQdisc restores h's default queueing discipline.
func removeQdisc(ctx context.Context, h labHost) error {
	return tcCmd(ctx, "-n", h.ns, "qdisc", "del", "dev", "eth0", "root")
}

func tcCmd(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: chaos: tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
