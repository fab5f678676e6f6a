package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// Tests that need a LAN (mDNS) or a missing route (relay) build it from
// network namespaces and veth pairs they create, using private addresses
// only on those links. A Go process cannot safely move its goroutines into a
// namespace, so each host runs in a child process: this test binary
// re-executed under `ip netns exec` with helperEnv naming its role. The
// child reports on stdout one line per fact ("ID <peer>", ...).

const helperEnv = "GROVE_P2P_HELPER"

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespace tests need root (CI runs them as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip command (iproute2) is not installed")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a namespace with loopback up and deletes it on cleanup.
func newNetns(t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("grv%d%s", os.Getpid()%100000, name)
	exec.Command("ip", "netns", "del", ns).Run() // leftover from a crashed run
	run(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "-n", ns, "link", "set", "lo", "up")
	return ns
}

// vethLink joins two namespaces with a veth pair and addresses both ends
// (CIDR notation, e.g. 10.231.3.1/24).
func vethLink(t *testing.T, nsA, addrA, nsB, addrB, tag string) {
	t.Helper()
	a := fmt.Sprintf("va%d%s", os.Getpid()%10000, tag)
	b := fmt.Sprintf("vb%d%s", os.Getpid()%10000, tag)
	run(t, "link", "add", a, "type", "veth", "peer", "name", b)
	run(t, "link", "set", a, "netns", nsA)
	run(t, "link", "set", b, "netns", nsB)
	run(t, "-n", nsA, "addr", "add", addrA, "dev", a)
	run(t, "-n", nsB, "addr", "add", addrB, "dev", b)
	run(t, "-n", nsA, "link", "set", a, "up")
	run(t, "-n", nsB, "link", "set", b, "up")
	// Hosts started before the link has carrier can lose their first
	// discovery packets (mDNS queries back off for many seconds after
	// that), so wait until both ends report it.
	waitLinkUp(t, nsA, a)
	waitLinkUp(t, nsB, b)
}

func waitLinkUp(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "dev", dev).CombinedOutput()
		if err == nil && strings.Contains(string(out), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s in %s not up: %s", dev, ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startHelper runs this test binary in ns with the given role and env.
func startHelper(t *testing.T, ns, role string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+role)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the helper exits when its stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return h
}

// expect waits for a line starting with prefix and returns the rest.
func (h *helper) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited before reporting %q", prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
				return rest
			}
			if strings.HasPrefix(l, "FAIL ") {
				t.Fatalf("helper: %s", l)
			}
		case <-deadline:
			t.Fatalf("helper did not report %q within %v", prefix, timeout)
		}
	}
}

// TestMDNSDiscoveryBetweenNamespaces: two hosts on one veth LAN, with no
// addresses exchanged, find and connect to each other by mDNS alone.
func TestMDNSDiscoveryBetweenNamespaces(t *testing.T) {
	requireNetns(t)
	nsA, nsB := newNetns(t, "ma"), newNetns(t, "mb")
	vethLink(t, nsA, "10.231.3.1/24", nsB, "10.231.3.2/24", "m")
	a := startHelper(t, nsA, "mdns", "LISTEN=/ip4/10.231.3.1/tcp/0")
	b := startHelper(t, nsB, "mdns", "LISTEN=/ip4/10.231.3.2/tcp/0")
	idA := a.expect(t, "ID", 20*time.Second)
	idB := b.expect(t, "ID", 20*time.Second)
	if got := a.expect(t, "CONNECTED", 60*time.Second); got != idB {
		t.Fatalf("A connected to %s, want %s", got, idB)
	}
	if got := b.expect(t, "CONNECTED", 60*time.Second); got != idA {
		t.Fatalf("B connected to %s, want %s", got, idA)
	}
}

// TestRelayReachesHostWithoutRoute: A and B sit in namespaces joined only
// through R, which does not forward IP. A cannot dial B directly; through
// R's circuit relay v2 service it reaches B and completes a request.
func TestRelayReachesHostWithoutRoute(t *testing.T) {
	requireNetns(t)
	nsA, nsR, nsB := newNetns(t, "ra"), newNetns(t, "rr"), newNetns(t, "rb")
	vethLink(t, nsA, "10.231.1.1/24", nsR, "10.231.1.2/24", "a")
	vethLink(t, nsB, "10.231.2.1/24", nsR, "10.231.2.2/24", "b")
	r := startHelper(t, nsR, "relay", "LISTEN=/ip4/10.231.1.2/tcp/4001,/ip4/10.231.2.2/tcp/4001")
	idR := r.expect(t, "ID", 20*time.Second)
	b := startHelper(t, nsB, "relayed",
		"LISTEN=/ip4/10.231.2.1/tcp/0",
		"RELAY=/ip4/10.231.2.2/tcp/4001/p2p/"+idR)
	bReady := b.expect(t, "READY", 30*time.Second) // "<id> <direct addr>"
	idB, directB, _ := strings.Cut(bReady, " ")
	a := startHelper(t, nsA, "dialer",
		"LISTEN=/ip4/10.231.1.1/tcp/0",
		"RELAY=/ip4/10.231.1.2/tcp/4001/p2p/"+idR,
		"TARGET="+idB,
		"TARGET_DIRECT="+directB)
	a.expect(t, "NO_DIRECT_ROUTE", 30*time.Second)
	if got := a.expect(t, "OK", 30*time.Second); got != "kp-from-B limited" {
		t.Fatalf("A got %q, want a reply from B over a limited (relayed) connection", got)
	}
}

// TestHelperProcess is not a test: it is the body of the namespace
// helpers above, run only when helperEnv is set.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("helper process for namespace tests; runs only when re-executed by them")
	}
	err := runHelper(role)
	if err != nil {
		fmt.Printf("FAIL %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(role string) error {
	cfg := Config{
		Listen:            strings.Split(os.Getenv("LISTEN"), ","),
		HeartbeatInterval: 100 * time.Millisecond,
		StreamTimeout:     10 * time.Second,
		Logger:            testLogger(),
	}
	switch role {
	case "keep":
		return runKeepHelper(cfg)
	case "mdns":
		cfg.EnableMDNS = true
		cfg.MDNSServiceName = "grove-test"
	case "relay":
		cfg.EnableRelayService = true
		cfg.ForcePublicReachability = true
	case "relayed":
		cfg.StaticRelays = []string{os.Getenv("RELAY")}
		cfg.ForcePrivateReachability = true
		cfg.EnableHolePunching = true
	case "dialer":
		cfg.EnableHolePunching = true
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	h, err := New(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Printf("ID %s\n", h.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	switch role {
	case "mdns":
		for ev := range h.Events() {
			if ev.Kind == PeerConnected {
				fmt.Printf("CONNECTED %s\n", ev.Peer)
				break
			}
		}
	case "relayed":
		h.Serve(ProtocolKeyPackage, ServeRequests(func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
			return []byte("kp-from-B"), nil
		}))
		// Autorelay reserves a slot on the static relay by itself, but
		// go-libp2p does not advertise circuit addresses built on a private
		// relay address, so reserve explicitly to know when it is in place.
		relay, err := peer.AddrInfoFromString(os.Getenv("RELAY"))
		if err != nil {
			return err
		}
		if err := h.Connect(ctx, *relay); err != nil {
			return err
		}
		if _, err := client.Reserve(ctx, h.Libp2pHost(), *relay); err != nil {
			return fmt.Errorf("reserve relay slot: %w", err)
		}
		var direct string
		for _, a := range h.Libp2pHost().Network().ListenAddresses() {
			if strings.HasPrefix(a.String(), "/ip4/10.231.2.1/") {
				direct = a.String()
			}
		}
		fmt.Printf("READY %s %s\n", h.ID(), direct)
	case "dialer":
		target, err := peer.Decode(os.Getenv("TARGET"))
		if err != nil {
			return err
		}
		direct, err := ma.NewMultiaddr(os.Getenv("TARGET_DIRECT"))
		if err != nil {
			return err
		}
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		err = h.Connect(dctx, peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{direct}})
		dcancel()
		if err == nil {
			return fmt.Errorf("direct dial to %s succeeded; the topology is wrong", direct)
		}
		fmt.Printf("NO_DIRECT_ROUTE %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		h.Libp2pHost().Peerstore().ClearAddrs(target)
		relay, err := peer.AddrInfoFromString(os.Getenv("RELAY"))
		if err != nil {
			return err
		}
		if err := h.Connect(ctx, *relay); err != nil {
			return err
		}
		circuit, err := ma.NewMultiaddr(os.Getenv("RELAY") + "/p2p-circuit")
		if err != nil {
			return err
		}
		if err := h.Connect(ctx, peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{circuit}}); err != nil {
			return fmt.Errorf("connect through relay: %w", err)
		}
		resp, err := h.Request(ctx, target, ProtocolKeyPackage, []byte("hello"))
		if err != nil {
			return err
		}
		kind := "direct"
		for _, c := range h.Libp2pHost().Network().ConnsToPeer(target) {
			if c.Stat().Limited {
				kind = "limited"
			}
		}
		fmt.Printf("OK %s %s\n", resp, kind)
	}
	// Stay up until the parent closes stdin, so the other side's checks
	// can still reach this host.
	io.Copy(io.Discard, os.Stdin)
	return nil
}
