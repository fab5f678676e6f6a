package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// loopbackDefaults stand in for DefaultListen: tests never listen beyond
// loopback.
var loopbackDefaults = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// upOnce runs `grove up` with args on the real node until it serves, stops
// it, and returns the listen addresses it was given and its log.
func upOnce(t *testing.T, d *device, args ...string) ([]string, string) {
	t.Helper()
	var listen []string
	r := *d.runner
	r.testingOnlyDefaultListen = loopbackDefaults
	r.NewDaemon = func(cfg DaemonConfig) (Daemon, error) {
		listen = cfg.Listen
		return fastDaemon(cfg)
	}
	ready := make(chan struct{})
	r.Ready = func(string) { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- r.Run(ctx, append([]string{"--home", d.home, "up"}, args...), strings.NewReader(""), io.Discard, logs)
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("up: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("up not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("up: %v\n%s", err, logs)
	}
	return listen, logs.String()
}

func readListenFile(t *testing.T, home string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, ListenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// portOf returns the TCP or UDP port of a.
func portOf(t *testing.T, a string) string {
	t.Helper()
	m, err := ma.NewMultiaddr(a)
	if err != nil {
		t.Fatal(err)
	}
	_, hp, err := hostPort(m)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(hp)
	return p
}

// TestUpKeepsPortsAcrossRestarts: the first up without --listen takes
// free ports and remembers them; later ups reuse them; a remembered port
// that is taken is replaced by a free one (and that one remembered);
// --listen is used as given and not remembered.
func TestUpKeepsPortsAcrossRestarts(t *testing.T) {
	d := newDevice(t, "alice")
	first, _ := upOnce(t, d)
	if strings.Join(first, " ") != strings.Join(loopbackDefaults, " ") {
		t.Fatalf("first up listened on %v, want the defaults", first)
	}
	remembered := readListenFile(t, d.home)
	if len(remembered) != 2 || portOf(t, remembered[0]) == "0" || portOf(t, remembered[1]) == "0" ||
		!strings.HasPrefix(remembered[0], "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(remembered[1], "/quic-v1") {
		t.Fatalf("remembered %v, want both bound ports", remembered)
	}

	second, _ := upOnce(t, d)
	if strings.Join(second, " ") != strings.Join(remembered, " ") {
		t.Fatalf("second up listened on %v, want the remembered %v", second, remembered)
	}
	if got := readListenFile(t, d.home); strings.Join(got, " ") != strings.Join(remembered, " ") {
		t.Fatalf("remembered after the second up: %v, want %v", got, remembered)
	}

	// Someone else holds the TCP port now.
	l, err := net.Listen("tcp", "127.0.0.1:"+portOf(t, remembered[0]))
	if err != nil {
		t.Fatal(err)
	}
	third, logs := upOnce(t, d)
	l.Close()
	if third[0] != loopbackDefaults[0] || third[1] != remembered[1] {
		t.Fatalf("with the TCP port taken, up listened on %v, want a free TCP port and the remembered UDP one", third)
	}
	if !strings.Contains(logs, "remembered port taken") {
		t.Errorf("no log of the taken port:\n%s", logs)
	}
	now := readListenFile(t, d.home)
	if now[0] == remembered[0] || portOf(t, now[0]) == "0" || now[1] != remembered[1] {
		t.Fatalf("remembered after the fallback: %v (before %v)", now, remembered)
	}

	given, _ := upOnce(t, d, "--listen", "/ip4/127.0.0.1/tcp/0")
	if strings.Join(given, " ") != "/ip4/127.0.0.1/tcp/0" {
		t.Fatalf("--listen: listened on %v", given)
	}
	if got := readListenFile(t, d.home); strings.Join(got, " ") != strings.Join(now, " ") {
		t.Fatalf("--listen changed the remembered ports: %v, want %v", got, now)
	}
}

// TestListenFileHostile: a damaged listen file is ignored (defaults used),
// never fatal.
func TestListenFileHostile(t *testing.T) {
	home := t.TempDir()
	log := slogDiscard()
	for _, bad := range []string{"", "garbage\n", "/ip4/127.0.0.1/tcp/1\n", "/dns/x/tcp/1\n/ip4/1.2.3.4/udp/5/quic-v1\n",
		strings.Repeat("/ip4/127.0.0.1/tcp/1\n", 1000), "/ip4/10.0.0.1/tcp/4001\n/ip4/10.0.0.1/udp/4001/quic-v1\n"} {
		if err := os.WriteFile(filepath.Join(home, ListenFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := rememberedListen(home, loopbackDefaults, log); strings.Join(got, " ") != strings.Join(loopbackDefaults, " ") {
			t.Errorf("file %q: listen %v, want the defaults", bad, got)
		}
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
