package testnet

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// requireNetns skips unless network namespaces can be made here; under CI
// (root, iproute2 installed by .ci/run) a missing ip command is a failure.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network-namespace mode needs root (CI runs it as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but the ip command (iproute2) is missing: the netns testnet cannot run")
		}
		t.Skip("skipping: the ip command (iproute2) is not installed")
	}
}

// labNamespaces lists the network namespaces testnet runs created.
func labNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "grovetn-") {
			m[f[0]] = true
		}
	}
	return m
}

func testNetnsProcesses(cfg Netns) *Processes {
	p := testProcesses()
	p.Netns = &cfg
	return p
}

// TestNetnsChat runs chat with every node in its own namespace, found by
// mDNS only, and checks that the namespaces are gone afterwards.
func TestNetnsChat(t *testing.T) {
	requireNetns(t)
	before := labNamespaces(t)
	rep := playOK(t, Options{Scenario: "chat", Nodes: 4, Messages: 30, Processes: testNetnsProcesses(Netns{})})
	if rep.Mode != "netns" {
		t.Errorf("mode %q", rep.Mode)
	}
	if !strings.Contains(rep.Notes["discovery"], "by mDNS") {
		t.Errorf("no discovery note: %v", rep.Notes)
	}
	for ns := range labNamespaces(t) {
		if !before[ns] {
			t.Errorf("namespace %s left behind", ns)
		}
	}
}

// TestNetnsHostsStayInside starts nodes on the virtual LAN and checks that
// they listen only on its private addresses and were given no peer to
// dial: every connection they have was found by mDNS inside the lab.
func TestNetnsHostsStayInside(t *testing.T) {
	requireNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewCluster(ClusterConfig{Seed: 1, Processes: testNetnsProcesses(Netns{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"a", "b", "c"} {
		p, err := c.Add(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		addrs, cmd := p.addrs, p.proc.cmd.Args
		p.mu.Unlock()
		if len(addrs) == 0 {
			t.Fatalf("%s: no addresses", name)
		}
		for _, a := range addrs {
			if !strings.HasPrefix(a, "/ip4/"+labSubnet+".") {
				t.Errorf("%s listens on %s, outside the lab", name, a)
			}
		}
		if strings.Contains(strings.Join(cmd, " "), "--peer") {
			t.Errorf("%s was given peer addresses: %q", name, cmd)
		}
	}
	if err := c.awaitDiscovery(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	names := c.lab.namespaces()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	now := labNamespaces(t)
	for _, ns := range names {
		if now[ns] {
			t.Errorf("namespace %s not deleted by Close", ns)
		}
	}
}

// TestNetnsCleanupOnFailure: a run whose nodes cannot start still deletes
// the namespaces it made.
func TestNetnsCleanupOnFailure(t *testing.T) {
	requireNetns(t)
	before := labNamespaces(t)
	p := &Processes{Command: []string{"/nonexistent/grove", "testnet"}, Netns: &Netns{}}
	_, err := RunScenario(context.Background(), Options{Scenario: "chat", Nodes: 2, Seed: 1, Processes: p})
	if !errors.Is(err, ErrNodeProcess) {
		t.Fatalf("run with a missing binary: %v, want ErrNodeProcess", err)
	}
	for ns := range labNamespaces(t) {
		if !before[ns] {
			t.Errorf("namespace %s left behind after a failed run", ns)
		}
	}
}

// TestNetnsDelay adds 25 ms of netem delay to every link: no delivery can
// be faster than one hop.
func TestNetnsDelay(t *testing.T) {
	requireNetns(t)
	if testing.Short() {
		t.Skip("skipping in -short: a netem run")
	}
	const delay = 25 * time.Millisecond
	c, err := NewCluster(ClusterConfig{Processes: testNetnsProcesses(Netns{Delay: delay})})
	if errors.Is(err, ErrNetemUnavailable) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	rep := playOK(t, Options{Scenario: "chat", Nodes: 4, Messages: 20, Processes: testNetnsProcesses(Netns{Delay: delay, Loss: 1})})
	if min := time.Duration(rep.LatencyMS.P50 * float64(time.Millisecond)); min < delay {
		t.Errorf("p50 latency %v with %v of netem delay per hop", min, delay)
	}
}
