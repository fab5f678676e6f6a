package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Netns puts every node process in its own Linux network namespace: a
// virtual host whose only interface is a veth link to a bridge that lives
// in one more namespace the run creates. Nothing is added to the machine's
// own namespace, so the nodes' traffic never leaves the namespaces, and
// everything is deleted when the cluster closes (also when the run fails).
// The nodes get no peer addresses: they find each other by mDNS on the
// bridge, under a service name unique to the run. It needs root and the
// ip command (iproute2); Delay and Loss need tc as well.
type Netns struct {
	// Delay is added to every packet a node sends (tc netem on its link),
	// so a node-to-node packet is delayed by Delay once.
	Delay time.Duration
	// Loss is the percentage of packets each node's link drops (netem).
	Loss float64
}

// ErrNetnsUnavailable is returned when network namespaces cannot be made
// here (not root, or no ip command).
var ErrNetnsUnavailable = errors.New("testnet: network namespaces unavailable")

// NetnsAvailable reports why network-namespace mode cannot run here, or
// nil if it can.
func NetnsAvailable(cfg Netns) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root", ErrNetnsUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: the ip command (iproute2) is not installed", ErrNetnsUnavailable)
	}
	if cfg.Delay > 0 || cfg.Loss > 0 {
		if _, err := exec.LookPath("tc"); err != nil {
			return fmt.Errorf("%w: --delay and --loss need the tc command (iproute2)", ErrNetnsUnavailable)
		}
	}
	return nil
}

// labSubnet is the private /16 the virtual hosts are numbered in. It
// exists only inside the run's namespaces.
const labSubnet = "10.97"

// netLab is the network of one run: a bridge namespace and one namespace
// per node.
type netLab struct {
	cfg     Netns
	prefix  string // namespace name prefix, unique to the run
	bridge  string // the bridge's namespace
	service string // mDNS service name

	mu    sync.Mutex
	hosts map[string]labHost // by peer name
	all   []string           // every namespace created, for Close
}

type labHost struct {
	ns string
	ip string
}

// newNetLab creates the bridge namespace.
func newNetLab(cfg Netns) (*netLab, error) { return newNetLabPrefix(cfg, "grovetn") }

// newNetLabPrefix creates the bridge namespace of a lab whose namespace
// names start with prefix, a dash and a random id.
func newNetLabPrefix(cfg Netns, prefix string) (_ *netLab, err error) {
	if err := NetnsAvailable(cfg); err != nil {
		return nil, err
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("testnet: netns name: %w", err)
	}
	id := hex.EncodeToString(b[:])
	l := &netLab{cfg: cfg, prefix: prefix + "-" + id, service: "grove-testnet-" + id, hosts: map[string]labHost{}}
	l.bridge = l.prefix + "-br"
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.addNS(l.bridge); err != nil {
		return nil, err
	}
	// With snooping off the bridge floods multicast (mDNS) to every port
	// without waiting for IGMP membership reports.
	for _, args := range [][]string{
		{"-n", l.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"-n", l.bridge, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	if cfg.Delay > 0 || cfg.Loss > 0 {
		// Probe netem on a throwaway veth link in the bridge namespace, so
		// that a kernel without it fails the run before any node starts.
		err := ipCmd("-n", l.bridge, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
		if err == nil {
			var out []byte
			out, err = exec.Command("tc", "-n", l.bridge, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%w: tc netem: %v: %s", ErrNetemUnavailable, err, strings.TrimSpace(string(out)))
			} else {
				err = ipCmd("-n", l.bridge, "link", "del", "probe0")
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// ErrNetemUnavailable is returned for --delay or --loss on a kernel
// without the netem queueing discipline (sch_netem).
var ErrNetemUnavailable = errors.New("testnet: netem unavailable (the kernel lacks sch_netem)")

func (l *netLab) addNS(ns string) error {
	if err := ipCmd("netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.all = append(l.all, ns)
	l.mu.Unlock()
	return ipCmd("-n", ns, "link", "set", "lo", "up")
}

// host returns the virtual host of the named peer, creating it on first
// use (a restarted node comes back on the same host and address).
func (l *netLab) host(name string) (labHost, error) {
	l.mu.Lock()
	h, ok := l.hosts[name]
	idx := len(l.hosts) + 1
	l.mu.Unlock()
	if ok {
		return h, nil
	}
	if idx > 250*250 {
		return labHost{}, fmt.Errorf("testnet: netns: too many hosts")
	}
	h = labHost{ns: fmt.Sprintf("%s-%d", l.prefix, idx), ip: fmt.Sprintf("%s.%d.%d", labSubnet, idx/250, idx%250+1)}
	if err := l.addNS(h.ns); err != nil {
		return labHost{}, err
	}
	port := fmt.Sprintf("p%d", idx)
	// The veth pair is created inside the node's namespace with its other
	// end put straight into the bridge's: it never exists in the machine's
	// own namespace.
	cmds := [][]string{
		{"-n", h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", l.bridge},
		{"-n", l.bridge, "link", "set", port, "master", "br0"},
		{"-n", l.bridge, "link", "set", port, "up"},
		{"-n", h.ns, "addr", "add", h.ip + "/16", "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
	}
	for _, args := range cmds {
		if err := ipCmd(args...); err != nil {
			return labHost{}, err
		}
	}
	if l.cfg.Delay > 0 || l.cfg.Loss > 0 {
		args := []string{"-n", h.ns, "qdisc", "add", "dev", "eth0", "root", "netem"}
		if l.cfg.Delay > 0 {
			args = append(args, "delay", fmt.Sprintf("%dus", l.cfg.Delay.Microseconds()))
		}
		if l.cfg.Loss > 0 {
			args = append(args, "loss", fmt.Sprintf("%g%%", l.cfg.Loss))
		}
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			return labHost{}, fmt.Errorf("testnet: tc %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// A host started before its link has carrier loses its first mDNS
	// queries, which then back off for seconds.
	if err := waitCarrier(h.ns, "eth0"); err != nil {
		return labHost{}, err
	}
	l.mu.Lock()
	l.hosts[name] = h
	l.mu.Unlock()
	return h, nil
}

func waitCarrier(ns, dev string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "dev", dev).CombinedOutput()
		if err == nil && strings.Contains(string(out), "LOWER_UP") && !strings.Contains(string(out), "NO-CARRIER") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet: netns: %s in %s has no carrier: %s", dev, ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close deletes every namespace the lab created (their veth links and the
// bridge go with them).
func (l *netLab) Close() error {
	l.mu.Lock()
	all := l.all
	l.all = nil
	l.mu.Unlock()
	var errs []error
	for i := len(all) - 1; i >= 0; i-- {
		errs = append(errs, ipCmd("netns", "del", all[i]))
	}
	return errors.Join(errs...)
}

// namespaces lists the lab's namespaces (tests check the cleanup).
func (l *netLab) namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
