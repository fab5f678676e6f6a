package testnet

import (
	"testing"
	"time"

	"grove/node/api"
)

// TestPaceIsAbsolute: the i-th message is due at start + i*gap however
// long the sends before it took, so a slow sender does not get a lighter
// schedule than the floor.
func TestPaceIsAbsolute(t *testing.T) {
	const gap = 20 * time.Millisecond
	start := time.Now()
	pace(start, 2, gap)
	if d := time.Since(start); d < 2*gap {
		t.Fatalf("message 2 went out %v after the start, before its slot at %v", d, 2*gap)
	}
	// A send that overran its slots: the next message is already due and
	// must not wait a further gap.
	late := time.Now().Add(-10 * gap)
	before := time.Now()
	pace(late, 3, gap)
	if d := time.Since(before); d >= gap {
		t.Fatalf("an overdue message waited %v", d)
	}
}

// TestRecorderMissing: awaitLive's condition holds only once every
// receiver of every message has had its live event, and events for own
// messages do not count.
func TestRecorderMissing(t *testing.T) {
	r := newRecorder()
	pairs := map[string][]string{"a": {"n1", "n2"}, "b": {"n1"}}
	if n := r.missing(pairs); n != 3 {
		t.Fatalf("%d missing before any event, want 3", n)
	}
	events := make(chan api.Event, 4)
	events <- api.Event{Kind: api.EventMessage, Message: &api.Message{Text: "a"}}
	events <- api.Event{Kind: api.EventMessage, Message: &api.Message{Text: "b", Own: true}}
	close(events)
	r.consume("n1", events)
	if n := r.missing(pairs); n != 2 {
		t.Fatalf("%d missing with n2's delivery of a and n1's of b missing, want 2", n)
	}
	events = make(chan api.Event, 2)
	events <- api.Event{Kind: api.EventMessage, Message: &api.Message{Text: "b"}}
	close(events)
	r.consume("n1", events)
	events = make(chan api.Event, 2)
	events <- api.Event{Kind: api.EventMessage, Message: &api.Message{Text: "a"}}
	close(events)
	r.consume("n2", events)
	if n := r.missing(pairs); n != 0 {
		t.Fatalf("%d missing after every delivery", n)
	}
}
