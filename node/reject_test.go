package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/p2p"
)

// syncBuffer is a log sink safe for the validator's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestRejectedMessagesCountedAndSummarised: every message the gossip
// validator rejects is counted by reason, and the group logs one info
// summary at once and then at most one a minute, with the counts since.
func TestRejectedMessagesCountedAndSummarised(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var out syncBuffer
	n := &Node{cfg: Config{Clock: clock}}
	a := &groupActor{n: n, id: []byte("group-1"), log: slog.New(slog.NewTextHandler(&out, nil))}
	w, err := newWireKeys(a.id, make([]byte, groupSecretLen))
	if err != nil {
		t.Fatal(err)
	}
	a.wire = w
	other, _ := newWireKeys(a.id, bytes.Repeat([]byte{1}, groupSecretLen))
	ctx := context.Background()
	for _, d := range [][]byte{nil, {1, 2, 3}, w.seal([]byte{0, 1, 0, 1, 0xff}), make([]byte, 1<<24), make([]byte, 300),
		other.seal([]byte{0, 1}), w.seal([]byte{0xff, 'G', 'T', 3})} {
		if r := a.validate(ctx, "", d); r == p2p.Accept {
			t.Fatalf("garbage %x accepted", d[:min(len(d), 8)])
		}
	}
	if got := n.metrics.rejected[rejectMalformed.index()].Load(); got != 2 {
		t.Fatalf("malformed counted %d times, want 2", got)
	}
	if got := n.metrics.rejected[rejectEnvelope.index()].Load(); got != 3 {
		t.Fatalf("bad envelopes counted %d times, want 3", got)
	}
	if got := n.metrics.rejected[rejectSize.index()].Load(); got != 2 {
		t.Fatalf("size counted %d times, want 2", got)
	}
	if l := out.lines(); len(l) != 1 || !strings.Contains(l[0], "rejected messages") || !strings.Contains(l[0], "count=1") {
		t.Fatalf("want one summary of the first rejection, got %q", l)
	}
	clock.Advance(30 * time.Second)
	a.reject(rejectProposal)
	if l := out.lines(); len(l) != 1 {
		t.Fatalf("summary logged again within a minute: %q", l)
	}
	clock.Advance(31 * time.Second)
	a.reject(rejectProposal)
	l := out.lines()
	if len(l) != 2 || !strings.Contains(l[1], "count=8") || !strings.Contains(l[1], "proposal=2") || !strings.Contains(l[1], "size=1") ||
		!strings.Contains(l[1], "envelope=3") {
		t.Fatalf("want a second summary of the 8 rejections since, got %q", l)
	}
}
