package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"grove/store"
)

// publishText makes n publish a text message with a chosen id and sender
// time into group, as a member's modified client could.
func publishText(t *testing.T, ctx context.Context, n *Node, group string, id [16]byte, at time.Time, text string) {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	plain := (&appPayload{ID: id, Kind: kindText, Time: at.UTC(), Text: text}).marshal()
	if err := a.do(ctx, func() error { return a.encryptAndPublish(plain, id) }); err != nil {
		t.Fatal(err)
	}
}

// viewTexts returns n's view of group: text by sender name.
func viewTexts(t *testing.T, n *Node, group string) (map[string][]string, []store.Message) {
	t.Helper()
	ms, err := n.db.Messages(decodeHexT(t, group), time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, m := range ms {
		id, err := parseIdentity(m.Sender)
		if err != nil {
			t.Fatal(err)
		}
		out[id.Name] = append(out[id.Name], m.Text)
	}
	return out, ms
}

// TestReusedMessageIDDoesNotSuppress: a member who publishes another
// member's message id (and time) first does not suppress that member's
// message at the other members; the same member's copies of one id (what
// a re-send is) are still shown once.
func TestReusedMessageIDDoesNotSuppress(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "mallory")
	alice, bob, mallory := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	var id [16]byte
	rand.Read(id[:])
	at := time.Now()
	publishText(t, ctx, mallory, g, id, at, "mallory's decoy")
	eventually(t, 10*time.Second, "bob has the decoy", func() error {
		if v, _ := viewTexts(t, bob, g); len(v["mallory"]) != 1 {
			return fmt.Errorf("bob's view %v", v)
		}
		return nil
	})
	publishText(t, ctx, alice, g, id, at, "alice's message")
	publishText(t, ctx, alice, g, id, at, "alice's message") // a re-send
	publishText(t, ctx, alice, g, [16]byte{1}, at, "a later one")
	eventually(t, 10*time.Second, "bob shows alice's message once", func() error {
		v, _ := viewTexts(t, bob, g)
		if len(v["alice"]) != 2 || v["alice"][0] == v["alice"][1] || len(v["mallory"]) != 1 {
			return fmt.Errorf("bob's view %v", v)
		}
		return nil
	})
}

// TestFutureSenderTimeClamped: a received message dated more than
// maxFutureSkew ahead of its receipt is shown and ordered at its receipt
// time; one dated a little ahead, or far in the past (what a sync after a
// long absence brings), keeps the sender's time.
func TestFutureSenderTimeClamped(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "mallory")
	bob, mallory := ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	before := time.Now()
	cases := map[string]time.Time{
		"from next year":      before.Add(365 * 24 * time.Hour),
		"a minute ahead":      before.Add(time.Minute),
		"from three days ago": before.Add(-72 * time.Hour),
	}
	for text, at := range cases {
		var id [16]byte
		rand.Read(id[:])
		publishText(t, ctx, mallory, g, id, at, text)
	}
	var ms []store.Message
	eventually(t, 10*time.Second, "bob has the messages", func() error {
		var v map[string][]string
		v, ms = viewTexts(t, bob, g)
		if len(v["mallory"]) != len(cases) {
			return fmt.Errorf("bob's view %v", v)
		}
		return nil
	})
	after := time.Now()
	for _, m := range ms {
		at := cases[m.Text]
		switch m.Text {
		case "from next year":
			if m.Time.Before(before) || m.Time.After(after) {
				t.Errorf("%q shown at %v, want its receipt (between %v and %v)", m.Text, m.Time, before, after)
			}
		default:
			if !m.Time.Equal(at) {
				t.Errorf("%q shown at %v, want the sender's %v", m.Text, m.Time, at)
			}
		}
	}
	if last := ms[len(ms)-1]; last.Text != "a minute ahead" {
		t.Errorf("last in bob's view: %q", last.Text)
	}
}
