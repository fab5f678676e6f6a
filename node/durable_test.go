package node

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"grove/store"
)

// TestResyncPageShowsEveryMessageOnce: bob misses more messages from one
// sender than mls keeps skipped keys for by default (256), then catches up
// in sync pages whose writes are made durable with one sync. Every message
// must be stored and announced by exactly one event: regressions for the
// hash-ordered sync that lost about half of such a backlog (node groups now
// keep 1000 skipped keys, see groupConfig, so that order is pinned by
// store's TestLogByEpochArrivalOrder), and for holding a page's events in
// one burst larger than a subscriber's buffer.
func TestResyncPageShowsEveryMessageOnce(t *testing.T) {
	checkLeaks(t)
	const missed = 400
	ctx := ctxT(t, 60*time.Second)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	g := createAndJoin(t, ctx, alice, bob)
	bob.Close()
	want := map[string]bool{}
	for i := range missed {
		txt := fmt.Sprintf("missed %d", i)
		if _, err := alice.Send(ctx, g.ID, txt); err != nil {
			t.Fatal(err)
		}
		want[txt] = true
	}

	bob = realNode(t, bobHome, "bob")
	defer bob.Close()
	events, err := bob.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	gid, _ := hex.DecodeString(g.ID)
	got := map[string]int{}
	for len(got) < missed {
		select {
		case ev := <-events:
			if ev.Kind != "message" || ev.Message == nil {
				continue
			}
			if !want[ev.Message.Text] {
				t.Fatalf("event for unexpected message %q", ev.Message.Text)
			}
			got[ev.Message.Text]++
			// Shown only once stored.
			var id store.MessageID
			hex.Decode(id[:], []byte(ev.Message.ID))
			if seen, err := bob.db.Seen(gid, alice.selfID, id); err != nil || !seen {
				t.Fatalf("event for %q before the message is stored: %v", ev.Message.Text, err)
			}
		case <-ctx.Done():
			t.Fatalf("bob announced %d of %d missed messages", len(got), missed)
		}
	}
	for txt, n := range got {
		if n != 1 {
			t.Fatalf("%q announced %d times", txt, n)
		}
	}
	if err := hasTexts(bob, g.ID, keys(want)...); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
