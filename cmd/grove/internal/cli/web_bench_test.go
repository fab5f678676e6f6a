package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"grove/cmd/grove/internal/web"
	"grove/node/api"
)

// BenchmarkWebFirstPaint20k measures, in headless Chromium, the time from
// navigation start to the frame that shows a group of 20,000 messages
// held by a real daemon (the newest page; older ones load on scroll). It
// reports ms/first-paint and the embedded client's size in bytes. Filling
// the group takes a minute or two; the setup is not timed.
//
//	go test -run '^$' -bench WebFirstPaint -benchtime 10x ./cmd/grove/internal/cli/
func BenchmarkWebFirstPaint20k(b *testing.B) {
	total := benchMessages()
	browser := newBrowser(b)
	home := filepath.Join(shortTempDirTB(b), "a")
	benchDaemon(b, home)
	ctx := context.Background()
	c, err := api.Dial(ctx, filepath.Join(home, SocketName))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateGroup(ctx, "big"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < total; i += 8 {
				if _, err := c.Send(ctx, "big", fmt.Sprintf("message %d: the quick brown fox jumps over the lazy dog", i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.Logf("sent %d messages in %v", total, time.Since(start).Round(time.Millisecond))

	tb := newTab(b, browser, "alice")
	l, err := c.WebLogin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	tb.open(l)
	tb.click(`#group-list button`)
	tb.wait("the group", `document.querySelectorAll("#messages li.msg").length > 0`, 60*time.Second)
	base := tb.str(`location.origin + "/"`)

	b.ResetTimer()
	var sum float64
	for range b.N {
		tb.do("reload", chromedp.Navigate(base))
		var ms float64
		tb.wait("the first paint", `performance.getEntriesByName("grove:messages-shown").length > 0`, 60*time.Second)
		tb.eval(`performance.getEntriesByName("grove:messages-shown")[0].startTime`, &ms)
		sum += ms
	}
	b.StopTimer()
	b.ReportMetric(sum/float64(b.N), "ms/first-paint")
	b.ReportMetric(0, "ns/op")
	n, err := web.AssetSize()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n), "asset-bytes")
}

// benchDaemon initialises a device in home and runs its daemon with the
// web client on a free port until the benchmark ends.
func benchDaemon(b *testing.B, home string) {
	b.Helper()
	r := Runner{NewDaemon: fastDaemon, Getenv: func(string) string { return "" }, Location: time.UTC,
		Keyring: &fakeKeyring{unavailable: true}}
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Run(ctx, []string{"--home", home, "init", "--name", "alice"}, nil, &out, &out); err != nil {
		b.Fatalf("init: %v %s", err, &out)
	}
	ready := make(chan struct{})
	r.Ready = func(string) { close(ready) }
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, []string{"--home", home, "up", "--listen", "/ip4/127.0.0.1/tcp/0", "--gui", "127.0.0.1:0"}, nil, &out, &out)
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("up: %v %s", err, &out)
	}
	b.Cleanup(func() {
		cancel()
		<-done
	})
}

// shortTempDirTB is shortTempDir for benchmarks: a socket path must stay
// short.
func shortTempDirTB(tb testing.TB) string {
	dir, err := os.MkdirTemp("", "gweb")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// benchMessages is how many messages BenchmarkWebFirstPaint20k fills its
// group with: 20,000, or GROVE_BENCH_MESSAGES (to try the setup quickly).
func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("GROVE_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 20_000
}
