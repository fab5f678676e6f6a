package testnet

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leakGrace is how long goroutines may take to wind down after a run:
// libp2p closes connections and timers asynchronously.
const leakGrace = 10 * time.Second

// checkGoroutines fails the test if goroutines started during it are still
// running leakGrace after it ended (cleanups included): every goroutine a
// cluster starts must have an owner that stops it. A small helper rather
// than go.uber.org/goleak: the comparison with a snapshot is all we need,
// and no dependency is added for it.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		if leaked := leakedSince(before, leakGrace); len(leaked) > 0 {
			t.Errorf("%d goroutines still running %v after the test; the first:\n%s",
				len(leaked), leakGrace, strings.Join(leaked[:min(3, len(leaked))], "\n\n"))
		}
	})
}

// leakedSince waits up to grace for the goroutines not in before to end,
// and returns the stacks of those that did not.
func leakedSince(before map[uint64]string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// goroutines returns every goroutine's stack by goroutine id, except the
// caller's.
func goroutines() map[uint64]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[uint64]string{}
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller, always listed first
		}
		header, _, _ := strings.Cut(string(g), "\n")
		f := strings.Fields(header) // goroutine N [state]:
		if len(f) < 2 || f[0] != "goroutine" {
			continue
		}
		id, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		out[id] = string(g)
	}
	return out
}

// TestGoroutineCheckCatchesLeak: the check reports a goroutine that
// outlives the grace period, and not one that ends within it.
func TestGoroutineCheckCatchesLeak(t *testing.T) {
	before := goroutines()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
	}()
	leaked := leakedSince(before, 200*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "TestGoroutineCheckCatchesLeak") {
		t.Fatalf("a running goroutine: leaked %q, want exactly it", leaked)
	}
	time.AfterFunc(100*time.Millisecond, func() { close(stop) })
	if leaked := leakedSince(before, 5*time.Second); len(leaked) != 0 {
		t.Fatalf("a goroutine that ended within the grace period reported: %q", leaked)
	}
	<-done
}
