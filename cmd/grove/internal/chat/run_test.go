package chat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"grove/node/api"
	"grove/node/api/apitest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const (
	enterAltScreen = "\x1b[?1049h"
	leaveAltScreen = "\x1b[?1049l"
)

// restored reports whether out left the alternate screen after entering it
// and shows the cursor again.
func restored(out string) bool {
	in := strings.Index(out, enterAltScreen)
	return in >= 0 && strings.LastIndex(out, leaveAltScreen) > in && strings.Contains(out[in:], "\x1b[?25h")
}

func runAsync(ctx context.Context, svc api.Service, in io.Reader, out io.Writer) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Run(ctx, svc, Options{Location: time.UTC}, in, out) }()
	return done
}

// checkGoroutines fails the test if goroutines started during it are still
// running shortly after it ends (cleanups run in reverse order, so this
// runs after the ones registered later, e.g. closing the input pipe).
// os/signal's dispatch loop is process-wide and started once by the
// first signal.Notify (bubbletea's SIGWINCH handler): not a leak.
func checkGoroutines(t *testing.T) {
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			after := goroutines()
			if len(after) <= len(before) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines before, %d after:\n%s", len(before), len(after), strings.Join(after, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// goroutines returns the stacks of all goroutines but os/signal's loop.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "os/signal.loop") {
			out = append(out, g)
		}
	}
	return out
}

func TestRunSendsQuitsAndRestoresTerminal(t *testing.T) {
	checkGoroutines(t)
	f := fakeWith(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	out := &syncBuffer{}
	done := runAsync(context.Background(), f, pr, out)
	waitFor(t, "subscription", func() bool { return f.Subscribers() == 1 })
	waitFor(t, "first screen", func() bool { return strings.Contains(out.String(), "hello from bob") })
	io.WriteString(pw, "typed text\r")
	waitFor(t, "the message at the daemon", func() bool {
		ms, _ := f.Log(context.Background(), "general", 0)
		return ms[len(ms)-1].Text == "typed text"
	})
	io.WriteString(pw, "\x03") // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Ctrl-C")
	}
	if !restored(out.String()) {
		t.Fatalf("terminal not restored; output ends %q", tail(out.String()))
	}
	waitFor(t, "subscription to end", func() bool { return f.Subscribers() == 0 })
}

func TestRunContextEndRestoresTerminal(t *testing.T) {
	checkGoroutines(t)
	f := fakeWith(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, f, pr, out)
	waitFor(t, "first screen", func() bool { return strings.Contains(out.String(), "hello from bob") })
	cancel() // SIGTERM in grove
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if !restored(out.String()) {
		t.Fatalf("terminal not restored; output ends %q", tail(out.String()))
	}
	waitFor(t, "subscription to end", func() bool { return f.Subscribers() == 0 })
}

// panicky panics in Search, as a bug in the UI or the client might.
type panicky struct{ *apitest.Fake }

func (p panicky) Search(context.Context, api.SearchRequest) (api.SearchResult, error) {
	panic("injected test panic")
}

func TestRunPanicRestoresTerminal(t *testing.T) {
	f := fakeWith(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	done := runAsync(context.Background(), panicky{f}, pr, out)
	waitFor(t, "first screen", func() bool { return strings.Contains(out.String(), "hello from bob") })
	io.WriteString(pw, "/search x\r")
	select {
	case err := <-done:
		if !errors.Is(err, tea.ErrProgramPanic) {
			t.Fatalf("Run: %v, want a panic error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a panic")
	}
	if !restored(out.String()) {
		t.Fatalf("terminal not restored after panic; output ends %q", tail(out.String()))
	}
	waitFor(t, "subscription to end", func() bool { return f.Subscribers() == 0 })
}

func TestRunDisconnectShowsOffline(t *testing.T) {
	f := fakeWith(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	svc := &closingSubscribe{Fake: f, stop: make(chan struct{})}
	done := runAsync(context.Background(), svc, pr, out)
	waitFor(t, "first screen", func() bool { return strings.Contains(out.String(), "hello from bob") })
	close(svc.stop) // the daemon goes away: the event stream ends
	waitFor(t, "offline status", func() bool { return strings.Contains(out.String(), "OFFLINE") })
	io.WriteString(pw, "\x03")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunSubscribeError(t *testing.T) {
	f := fakeWith(t)
	f.SetError("Subscribe", api.Errorf(api.CodeUnavailable, "api: connection to daemon closed"))
	err := Run(context.Background(), f, Options{}, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "connection to daemon closed") {
		t.Fatalf("Run: %v", err)
	}
}

// closingSubscribe ends its event stream when stop is closed.
type closingSubscribe struct {
	*apitest.Fake
	stop chan struct{}
}

func (c *closingSubscribe) Subscribe(ctx context.Context) (<-chan api.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return c.Fake.Subscribe(ctx)
}

func tail(s string) string {
	if len(s) > 200 {
		return s[len(s)-200:]
	}
	return s
}
