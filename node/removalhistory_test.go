package node

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
)

func peerSet(ps ...peer.ID) map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, p := range ps {
		out[p] = true
	}
	return out
}

// TestMembershipHistory walks the spans through removals, a removal
// orphaned by a fork, a member added again and removed again, and checks
// what a removed peer would be served.
func TestMembershipHistory(t *testing.T) {
	alice, bob, carol, dave := peer.ID("alice"), peer.ID("bob"), peer.ID("carol"), peer.ID("dave")
	x, y, z, w := commitorder.EpochID{1}, commitorder.EpochID{2}, commitorder.EpochID{3}, commitorder.EpochID{4}
	h := &membershipHistory{}
	type want struct {
		p            peer.ID
		from, lo, hi uint64
		ok           bool
	}
	check := func(step string, cases ...want) {
		t.Helper()
		for _, c := range cases {
			lo, hi, ok := h.removedRange(c.p, c.from)
			if ok != c.ok || (ok && (lo != c.lo || hi != c.hi)) {
				t.Fatalf("%s: %s from %d: got %d..%d %v, want %d..%d %v", step, c.p, c.from, lo, hi, ok, c.lo, c.hi, c.ok)
			}
		}
		data := h.marshal()
		back, err := unmarshalMembershipHistory(data)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !reflect.DeepEqual(back.spans, h.spans) && len(h.spans) > 0 {
			t.Fatalf("%s: round trip %+v, want %+v", step, back.spans, h.spans)
		}
	}
	abc, ab := peerSet(alice, bob, carol), peerSet(alice, bob)
	if h.apply(abc, abc, 4, x) {
		t.Fatal("a rotation changed the history")
	}
	// Carol (in the group before our history) removed on epoch 5.
	if !h.apply(abc, ab, 5, x) {
		t.Fatal("a removal left the history unchanged")
	}
	n := len(h.spans)
	if h.apply(abc, ab, 5, x) || len(h.spans) != n { // applied again: no second span
		t.Fatalf("the same removal applied twice left %d spans, want %d", len(h.spans), n)
	}
	check("removed on 5",
		want{carol, 0, 0, 5, true}, want{carol, 3, 3, 5, true}, want{carol, 5, 5, 5, true},
		want{carol, 6, 0, 0, false}, want{bob, 0, 0, 0, false}, want{dave, 0, 0, 0, false})
	// That removal lost a fork: carol is a member again.
	if !h.forget([]commitorder.EpochID{x}) {
		t.Fatal("orphaning the removal changed nothing")
	}
	check("removal orphaned", want{carol, 0, 0, 0, false})
	// The canonical removal, one epoch later.
	h.apply(abc, ab, 6, y)
	check("removed on 6", want{carol, 2, 2, 6, true})
	// Added again on epoch 10, removed again on 12.
	h.apply(ab, abc, 9, z)
	check("added again", want{carol, 7, 0, 0, false}, want{carol, 0, 0, 6, true})
	h.apply(abc, ab, 12, w)
	check("removed again",
		want{carol, 0, 0, 6, true}, want{carol, 7, 10, 12, true}, want{carol, 11, 11, 12, true}, want{carol, 13, 0, 0, false})
	if h.forget([]commitorder.EpochID{{9}}) {
		t.Fatal("orphaning an unrelated epoch changed the history")
	}
	// Dave: added on 3, removed on 4 (a removal later orphaned), added
	// again meanwhile: one open span remains, nothing is served.
	d := peerSet(alice, dave)
	h.apply(peerSet(alice), d, 2, commitorder.EpochID{5})
	h.apply(d, peerSet(alice), 4, commitorder.EpochID{6})
	check("dave removed", want{dave, 0, 3, 4, true})
	h.apply(peerSet(alice), d, 7, commitorder.EpochID{7})
	h.forget([]commitorder.EpochID{{6}})
	open := 0
	for _, s := range h.spans {
		if s.Peer == dave {
			if !s.Open {
				t.Fatalf("dave has a closed span %+v after its removal was orphaned", s)
			}
			open++
		}
	}
	if open != 1 {
		t.Fatalf("dave has %d open spans", open)
	}
	check("dave's removal orphaned", want{dave, 0, 0, 0, false})

	// trim drops the oldest closed spans first.
	n = len(h.spans)
	h.trim(n - 1)
	if len(h.spans) != n-1 || h.spans[0].Peer != carol || h.spans[0].First != 10 {
		t.Fatalf("trimmed to %+v", h.spans)
	}
}

func TestMembershipHistoryRejects(t *testing.T) {
	good := (&membershipHistory{spans: []membershipSpan{{Peer: "p", First: 1, Last: 2, Removal: commitorder.EpochID{1}}}}).marshal()
	for name, data := range map[string][]byte{
		"empty":          {},
		"version":        append([]byte{2}, good[1:]...),
		"trailing":       append(bytes.Clone(good), 0),
		"truncated":      good[:len(good)-1],
		"last < first":   (&membershipHistory{spans: []membershipSpan{{Peer: "p", First: 3, Last: 2}}}).marshal(),
		"open with last": (&membershipHistory{spans: []membershipSpan{{Peer: "p", Open: true, Last: 2}}}).marshal(),
		"empty peer":     (&membershipHistory{spans: []membershipSpan{{First: 1, Last: 2}}}).marshal(),
	} {
		if _, err := unmarshalMembershipHistory(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := unmarshalMembershipHistory(good); err != nil {
		t.Fatal(err)
	}
}

func FuzzMembershipHistory(f *testing.F) {
	f.Add((&membershipHistory{}).marshal())
	f.Add((&membershipHistory{spans: []membershipSpan{
		{Peer: "carol", First: 0, Last: 5, Removal: commitorder.EpochID{1}},
		{Peer: "dave", First: 3, Open: true},
	}}).marshal())
	f.Add([]byte{1, 1, 'p', 0, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := unmarshalMembershipHistory(data)
		if err != nil {
			return
		}
		if got := h.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
		}
		for _, s := range h.spans {
			h.removedRange(s.Peer, s.First)
		}
	})
}
