package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/p2p"
)

// A member removed while it was offline or cut off never receives the
// Commit that removes it by gossip, and /grove/sync/1 serves the log only
// to members of the canonical epoch: back again, it would be refused by
// everyone, hold only epochs nobody uses any more and show the group as
// active for ever, sending into epochs nobody reads.
//
// So each member keeps a short membership history per group (the spans of
// epochs in which each member it saw removed was in the group, learnt from
// the canonical Commits it applied) and serves a peer that the canonical
// epoch no longer holds, but that such a span does, the part of the log it
// could have read had it been online: the messages of the epochs of its
// span from the epoch it asks for, up to and including the Commit that
// removed it, and nothing beyond. Its node then processes that Commit as
// it would have from gossip (SelfRemoved, pendingRemoval in group.go) and
// ends removed once the removal is final. No epoch after its removal, no
// member list or GroupInfo of a later epoch, is ever served to it.
//
// What a span serves: everything logged for the epochs whose canonical
// state held the peer, Commits and application messages (those were
// encrypted to it: what was said before its removal while it was away is
// its to read, as for any member catching up). The log is kept by epoch
// number, so a number may also hold messages of a sibling epoch the peer
// was not in (a fork inside the window): application ciphertexts it has
// no key for, or the Commits of a losing branch.

// maxRemovalSpans bounds the membership history kept per group (the oldest
// closed spans go first).
const maxRemovalSpans = 1024

// removedSyncEvery is how often one removed peer is served per group: its
// node asks on connect, on tips and periodically, and one answer is all it
// needs (it then holds the removal), so anything more often is refused.
const removedSyncEvery = time.Second

// maxRemovedSyncPeers bounds the rate limiter's memory.
const maxRemovedSyncPeers = 1024

// membershipSpan is a run of epochs in which a peer was a member, as seen
// by this device.
type membershipSpan struct {
	Peer peer.ID
	// First: the epoch the peer was added in, or 0 when it was in the
	// group before this device's history starts (the log holds nothing
	// older than that).
	First uint64
	// Open: the peer is (as far as we know) still a member; Last and
	// Removal mean nothing yet.
	Open bool
	// Last: the last epoch the peer was a member of, the parent epoch of
	// the Commit that removed it.
	Last uint64
	// Removal: the epoch that Commit created; if it is orphaned the span
	// is open again.
	Removal commitorder.EpochID
}

// membershipHistory is the spans of one group, oldest first.
type membershipHistory struct {
	spans []membershipSpan
}

const membershipHistoryVersion = 1

func (h *membershipHistory) marshal() []byte {
	var w wbuf
	w.u8(membershipHistoryVersion)
	for _, s := range h.spans {
		w.vec([]byte(s.Peer))
		w.u64(s.First)
		open := byte(0)
		if s.Open {
			open = 1
		}
		w.u8(open)
		w.u64(s.Last)
		w.raw(s.Removal[:])
	}
	return w.b
}

// maxPeerIDLen bounds a stored peer id (a multihash of an Ed25519 key is
// 38 bytes; identity multihashes of larger keys stay well below this).
const maxPeerIDLen = 128

func unmarshalMembershipHistory(data []byte) (*membershipHistory, error) {
	r := rbuf{b: data}
	if v := r.u8("version"); r.err == nil && v != membershipHistoryVersion {
		return nil, fmt.Errorf("%w: membership history version %d", ErrMalformed, v)
	}
	h := &membershipHistory{}
	for r.err == nil && len(r.b) > 0 {
		if len(h.spans) >= maxRemovalSpans {
			r.fail("too many spans")
			break
		}
		var s membershipSpan
		s.Peer = peer.ID(r.vec(maxPeerIDLen, "peer"))
		s.First = r.u64("first")
		switch r.u8("open") {
		case 0:
		case 1:
			s.Open = true
		default:
			r.fail("open flag")
		}
		s.Last = r.u64("last")
		copy(s.Removal[:], r.fixed(len(s.Removal), "removal"))
		if r.err == nil && (s.Peer == "" || (!s.Open && s.Last < s.First) || (s.Open && (s.Last != 0 || s.Removal != commitorder.EpochID{}))) {
			r.fail("span")
		}
		h.spans = append(h.spans, s)
	}
	if err := r.done("membership history"); err != nil {
		return nil, err
	}
	return h, nil
}

func membershipSetting(hexID string) string { return "group-members/" + hexID }

// membership returns the group's history, read from the store on first use.
// Runs on the actor.
func (a *groupActor) membership() *membershipHistory {
	if a.history != nil {
		return a.history
	}
	a.history = &membershipHistory{}
	v, err := a.n.db.Setting(membershipSetting(a.hexID))
	if err != nil {
		return a.history
	}
	if h, err := unmarshalMembershipHistory(v); err == nil {
		a.history = h
	} else {
		a.log.Warn("membership history unreadable: starting afresh", "err", err)
	}
	return a.history
}

func (a *groupActor) saveMembership() {
	h := a.membership()
	h.trim(maxRemovalSpans)
	if err := a.n.db.SetSetting(membershipSetting(a.hexID), h.marshal()); err != nil {
		a.log.Warn("save membership history", "err", err)
	}
}

// trim keeps at most max spans, dropping the oldest closed ones first
// (open ones are current members, whose join epoch we would lose).
func (h *membershipHistory) trim(max int) {
	drop := len(h.spans) - max
	if drop <= 0 {
		return
	}
	h.spans = slices.DeleteFunc(h.spans, func(s membershipSpan) bool {
		if drop > 0 && !s.Open {
			drop--
			return true
		}
		return false
	})
	if len(h.spans) > max {
		h.spans = h.spans[len(h.spans)-max:]
	}
}

// noteMembership records, for a canonical Commit from parent to next (the
// commitorder.Apply of eid), who it added and who it removed.
func (a *groupActor) noteMembership(parent, next *mls.Group, eid commitorder.EpochID) {
	if parent == nil || next == nil {
		return
	}
	if a.membership().apply(peersOf(parent), peersOf(next), parent.Epoch(), eid) {
		a.saveMembership()
	}
}

// forgetRemovals reopens the spans closed by removals that created the
// orphaned epochs: on the canonical chain those members were not removed
// there.
func (a *groupActor) forgetRemovals(orphaned []commitorder.EpochID) {
	if a.membership().forget(orphaned) {
		a.saveMembership()
	}
}

// apply notes a canonical Commit on an epoch (parentEpoch) with members
// before that created eid with members after, and reports whether
// anything changed.
func (h *membershipHistory) apply(before, after map[peer.ID]bool, parentEpoch uint64, eid commitorder.EpochID) (changed bool) {
	added := sortedPeers(after, before)
	changed = len(added) > 0
	for _, p := range added {
		if i := h.open(p); i >= 0 {
			h.spans[i].First = parentEpoch + 1 // added again, on another branch
			continue
		}
		h.spans = append(h.spans, membershipSpan{Peer: p, First: parentEpoch + 1, Open: true})
	}
	removed := sortedPeers(before, after)
	for _, p := range removed {
		if slices.ContainsFunc(h.spans, func(s membershipSpan) bool { return !s.Open && s.Peer == p && s.Removal == eid }) {
			continue // the same Commit applied again
		}
		changed = true
		s := membershipSpan{Peer: p}
		if i := h.open(p); i >= 0 {
			s = h.spans[i]
			h.spans = slices.Delete(h.spans, i, i+1)
		}
		s.Open, s.Last, s.Removal = false, parentEpoch, eid
		h.spans = append(h.spans, s)
	}
	return changed
}

// forget reopens the spans closed by removals that created the orphaned
// epochs, and reports whether there were any.
func (h *membershipHistory) forget(orphaned []commitorder.EpochID) (changed bool) {
	open := map[peer.ID]bool{}
	for _, s := range h.spans {
		if s.Open {
			open[s.Peer] = true
		}
	}
	kept := h.spans[:0]
	for _, s := range h.spans {
		if s.Open || !slices.Contains(orphaned, s.Removal) {
			kept = append(kept, s)
			continue
		}
		changed = true
		// In the group on the canonical chain after all: open again,
		// unless a span of the peer already is (it is dropped then).
		if open[s.Peer] {
			continue
		}
		open[s.Peer] = true
		s.Open, s.Last, s.Removal = true, 0, commitorder.EpochID{}
		kept = append(kept, s)
	}
	clear(h.spans[len(kept):])
	h.spans = kept
	return changed
}

// sortedPeers lists the peers in a that are not in b, in a fixed order
// (the history is stored, and compared in tests).
func sortedPeers(a, b map[peer.ID]bool) []peer.ID {
	var out []peer.ID
	for p := range a {
		if !b[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (h *membershipHistory) open(p peer.ID) int {
	return slices.IndexFunc(h.spans, func(s membershipSpan) bool { return s.Open && s.Peer == p })
}

// removedRange returns the epochs to serve a removed peer that asks from
// from: the closed span that ends first at or after from, clipped to it.
func (h *membershipHistory) removedRange(p peer.ID, from uint64) (lo, hi uint64, ok bool) {
	for _, s := range h.spans {
		if s.Open || s.Peer != p || s.Last < from {
			continue
		}
		if !ok || s.Last < hi {
			lo, hi, ok = max(from, s.First), s.Last, true
		}
	}
	return lo, hi, ok
}

func peersOf(g *mls.Group) map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, m := range g.Members() {
		if id, err := parseIdentity(m.Identity); err == nil {
			out[id.Peer] = true
		}
	}
	return out
}

// removedSyncRange decides, on the actor, whether p (not a member of the
// canonical epoch) is served as a removed member asking from from, and
// which epochs. It also applies the per-peer rate limit.
func (a *groupActor) removedSyncRange(p peer.ID, from uint64) (lo, hi uint64, ok bool) {
	if a.phase == phaseRemoved {
		return 0, 0, false
	}
	lo, hi, ok = a.membership().removedRange(p, from)
	_, g := a.head()
	if !ok || g == nil {
		return 0, 0, false
	}
	// A removal is always below our head; a history read from a damaged
	// store must not send the server scanning far beyond it.
	if hi = min(hi, g.Epoch()); lo > hi {
		return 0, 0, false
	}
	now := a.n.cfg.Clock.Now()
	if last, seen := a.removedServed[p]; seen && now.Sub(last) < removedSyncEvery && now.Sub(last) >= 0 {
		return 0, 0, false
	}
	if a.removedServed == nil || len(a.removedServed) >= maxRemovedSyncPeers {
		a.removedServed = map[peer.ID]time.Time{}
	}
	a.removedServed[p] = now
	return lo, hi, true
}

// serveRemovedSync answers a log request from a peer that the canonical
// epoch does not hold: if it is a member this device saw removed, the log
// of its span from the epoch it asks for up to the Commit that removed it
// (see the comment at the top of this file). It reports whether it
// answered; if not, the caller refuses as before.
func (n *Node) serveRemovedSync(ctx context.Context, s p2p.Stream, a *groupActor, req *syncRequest) bool {
	if req.Kind != syncLog {
		return false // a GroupInfo would show the current members
	}
	var lo, hi uint64
	var ok bool
	if err := a.do(ctx, func() error {
		lo, hi, ok = a.removedSyncRange(s.RemotePeer(), req.From)
		return nil
	}); err != nil || !ok {
		return false
	}
	n.log.Info("serving a removed member up to its removal", "group", a.hexID[:8], "peer", s.RemotePeer(), "from", lo, "to", hi)
	pages := syncPager{s: s}
	for e := lo; e <= hi; e++ {
		if ctx.Err() != nil {
			s.Reset()
			return true
		}
		entries, err := n.db.LogByEpoch(a.id, e)
		if err != nil {
			s.Reset()
			return true
		}
		for _, le := range entries {
			// The log is keyed by the epoch a message was sent in (a
			// Commit: its parent); check what the entry says itself.
			if _, epoch, _, err := frameInfo(le.Message); err != nil || epoch != e {
				continue
			}
			if !pages.add(le.Message) {
				return true
			}
		}
		if e == hi { // never wrap around
			break
		}
	}
	if pages.flush() {
		s.CloseWrite()
	}
	return true
}

// resumeRemoval is for loadGroup: a head epoch without a state is the
// epoch a Commit that removes this device created (onCommit names it, we
// hold no state for it) when this device is not among its members. That
// removal was pending, not yet final, when the daemon stopped:
// commitorder carries on and finalises it, and the group shows as being
// removed meanwhile. It reports whether the head is such an epoch; if not,
// the missing state is corruption.
func (a *groupActor) resumeRemoval() bool {
	head, epoch := a.co.Head()
	members := a.co.Members()
	if len(members) == 0 || slices.Contains(members, commitorder.MemberID(a.n.selfID)) {
		return false
	}
	a.selfRemove[head] = pendingRemoval{epoch: epoch, members: len(members)}
	return true
}
