package p2p

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// testLogger discards logs unless P2P_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// loopbackConfig listens on 127.0.0.1 only, TCP and QUIC, with a fast
// heartbeat so meshes form quickly.
func loopbackConfig() Config {
	return Config{
		Listen:            []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		HeartbeatInterval: 100 * time.Millisecond,
		StreamTimeout:     5 * time.Second,
		Logger:            testLogger(),
	}
}

func newTestHost(t testing.TB, mod func(*Config)) *Host {
	t.Helper()
	cfg := loopbackConfig()
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLeaks fails the test if goroutines started during it are still
// running after its cleanups (registered later, so run earlier) finish.
// Only goroutines whose stacks mention this package or libp2p count, so
// runtime and testing goroutines do not cause noise.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := interestingGoroutines()
	t.Cleanup(func() {
		var extra []string
		for range 100 {
			extra = extra[:0]
			for id, stack := range interestingGoroutines() {
				if _, ok := before[id]; !ok {
					extra = append(extra, stack)
				}
			}
			if len(extra) == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("%d goroutines leaked:\n%s", len(extra), strings.Join(extra, "\n\n"))
	})
}

func interestingGoroutines() map[string]string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	out := make(map[string]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		header, _, _ := strings.Cut(s, "\n")
		if !strings.Contains(s, "grove/p2p") && !strings.Contains(s, "libp2p") && !strings.Contains(s, "quic-go") {
			continue
		}
		if strings.Contains(s, "grove/p2p.interestingGoroutines") ||
			(strings.Contains(s, "testing.tRunner") && strings.Contains(s, "grove/p2p.Test")) {
			continue // the test goroutine itself
		}
		var id int
		fmt.Sscanf(header, "goroutine %d", &id)
		out[fmt.Sprint(id)] = s
	}
	return out
}

func peerIDs(ns []Network) []peer.ID {
	out := make([]peer.ID, len(ns))
	for i, n := range ns {
		out[i] = n.ID()
	}
	return out
}
