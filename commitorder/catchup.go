// Catch-up: fetching what others hold and we do not.
//
// A Commit whose parent state we lack is held (at most MaxHeld, only at
// epoch numbers we can still judge) and FetchParent is emitted once per
// parent, again every Retry; when the parent arrives, Retry names the held
// commits. A sibling of a commit we hold final (its parent is in History) is
// not held: it only marks our branch as lost or as having won (rejoin.go). A
// tip naming an epoch we do not hold at a number we still remember, a
// ciphertext for one newer than our root, or being behind emits FetchRange
// (at most once per Retry) with a locator (head, retained chain, remembered
// final epochs) and up to three members seen on the newest unknown epochs.
// We are behind while some member acted on an unknown epoch numbered at or
// past our head: we then keep fetching and do not propose. Ciphertext hints are
// unauthenticated: they never make us behind, only hold finality back up to
// age finality (finality.go).

package commitorder

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// heldCommit waits for its parent state.
type heldCommit struct {
	cid         CommitID
	parent      EpochID
	parentEpoch uint64
	askedAt     int64
}

func (g *Group) releaseHeld(eid EpochID) {
	var cids []CommitID
	for cid, h := range g.held {
		if h.parent == eid {
			cids = append(cids, cid)
			delete(g.held, cid)
		}
	}
	if len(cids) > 0 {
		sortCids(cids)
		g.emit(Retry{Cids: cids})
	}
}

func (g *Group) parentMissing(e ParentMissing) error {
	if !e.Class.valid() {
		return fmt.Errorf("%w: class %d", ErrInvalidEvent, e.Class)
	}
	if g.nodes[e.Parent] != nil {
		g.emit(Retry{Cids: []CommitID{e.Cid}})
		return nil
	}
	for _, h := range g.history {
		if h.eid != e.Parent {
			continue
		}
		// A sibling of a commit that is final for us. If it beats ours,
		// our branch lost beyond the window.
		// Whether the sibling is over its committer's rate limit needs
		// the parent's chain, which we no longer hold: take it as not
		// limited, so a sibling can only seem better than it is. That
		// errs towards suspecting our branch lost, which acts only with
		// a quorum vouching for another final chain (rejoin.go).
		rank := e.Rank
		if e.Committer != "" {
			rank = RankOf(e.Parent, e.Committer)
		}
		d := tuple{class: e.Class, rank: rank, cid: e.Cid}
		switch {
		case d.cid == h.child.cid:
		case d.less(h.child):
			if !g.lost {
				g.lost, g.lostEpoch = true, h.epoch
			}
		default:
			if g.wonAt == 0 {
				g.wonAt = max(g.now, 1)
			}
		}
		return nil
	}
	oldest := g.root.epoch
	if len(g.history) > 0 {
		oldest = g.history[0].epoch
	}
	if e.ParentEpoch < oldest {
		return nil // older than anything we can still judge
	}
	if e.ParentEpoch <= g.root.epoch {
		g.diverged = true
	}
	if _, ok := g.held[e.Cid]; ok {
		return nil
	}
	if len(g.held) >= g.cfg.MaxHeld {
		return nil // bounded; the range fetch will bring it again
	}
	h := &heldCommit{cid: e.Cid, parent: e.Parent, parentEpoch: e.ParentEpoch, askedAt: g.now}
	asked := false
	for _, o := range g.held {
		if o.parent == e.Parent {
			asked = true
			h.askedAt = o.askedAt
			break
		}
	}
	g.held[e.Cid] = h
	if !asked {
		g.emit(FetchParent{Eid: e.Parent})
	}
	return nil
}

// maxHints bounds the unauthenticated hints kept from CiphertextPending.
const maxHints = 8

// ciphertextPending notes an unreadable message's epoch as a hint and, for
// an epoch we do not hold, fetches the range. A hint is not evidence (the
// framing is not authenticated): it never affects validity, the fork choice
// or whether we are behind. It holds finality back (witness and depth, not
// age or hard depth) while finalising the root would delete the keys the
// message needs (finality.go, pendingBlocks): until a message in that
// epoch is decrypted (AppMessageSeen), or the epoch is dropped or passed by
// the root. Forged hints can therefore at worst slow finality down to age
// finality. Hints are not serialised.
func (g *Group) ciphertextPending(e CiphertextPending) {
	if n := g.nodes[e.Eid]; n != nil {
		// An epoch we hold whose message we could not read yet (the node
		// holds it for a retry): its keys must not go before it is read.
		if n.epoch == e.Epoch {
			g.addHint(e.Eid, e.Epoch)
		}
		return
	}
	if g.inHistory(e.Eid) || !g.recentUnknown(e.Epoch) || e.Epoch <= g.root.epoch {
		return
	}
	g.addHint(e.Eid, e.Epoch)
	g.maybeFetchRange()
}

func (g *Group) addHint(eid EpochID, epoch uint64) {
	if _, ok := g.hints[eid]; !ok && len(g.hints) < maxHints {
		if g.hints == nil {
			g.hints = make(map[EpochID]uint64)
		}
		g.hints[eid] = epoch
		g.bmut++
		g.mut++
	}
}

// messageRead clears the hint on eid: a message in it was decrypted.
func (g *Group) messageRead(eid EpochID) {
	if _, ok := g.hints[eid]; ok {
		delete(g.hints, eid)
		g.bmut++
		g.mut++
	}
}

// recentUnknown: an unknown epoch at this number means we are behind or
// diverged (not merely hearing an old tip from a laggard).
func (g *Group) recentUnknown(epoch uint64) bool {
	oldest := g.root.epoch
	if len(g.history) > 0 {
		oldest = g.history[0].epoch
	}
	return epoch >= oldest
}

func (g *Group) inHistory(eid EpochID) bool {
	if len(g.history) > 8 {
		last := g.history[len(g.history)-1]
		if g.histSet == nil || g.histLen != len(g.history) || g.histKey != last {
			g.histSet = make(map[EpochID]struct{}, len(g.history))
			for _, h := range g.history {
				g.histSet[h.eid] = struct{}{}
			}
			g.histLen, g.histKey = len(g.history), last
		}
		_, ok := g.histSet[eid]
		return ok
	}
	for _, h := range g.history {
		if h.eid == eid {
			return true
		}
	}
	return false
}

func (g *Group) maybeFetchRange() {
	if g.lastRange != 0 && g.now < g.lastRange+int64(g.cfg.Retry) {
		return
	}
	g.lastRange = g.now
	loc := make([]EpochID, 0, 8)
	for n := g.head; n != nil; n = n.up {
		loc = append(loc, n.eid)
	}
	for i := len(g.history) - 1; i >= 0; i-- {
		loc = append(loc, g.history[i].eid)
	}
	g.emit(FetchRange{Locator: loc, Peers: g.unknownHolders(3)})
}

func (g *Group) pruneHeld() {
	oldest := g.root.epoch
	if len(g.history) > 0 {
		oldest = g.history[0].epoch
	}
	for cid, h := range g.held {
		if h.parentEpoch < oldest {
			delete(g.held, cid)
		}
	}
}

func (g *Group) retryFetches() {
	parents := map[EpochID]bool{}
	var ask []EpochID
	for _, h := range g.held {
		if g.now >= h.askedAt+int64(g.cfg.Retry) {
			h.askedAt = g.now
			if !parents[h.parent] {
				parents[h.parent] = true
				ask = append(ask, h.parent)
			}
		}
	}
	slices.SortFunc(ask, func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
	for _, p := range ask {
		g.emit(FetchParent{Eid: p})
	}
	if g.behind() {
		g.maybeFetchRange()
	}
}

// behind: some member acted on an epoch we do not know numbered at or past
// our head (being at the same number does not mean being on the same epoch).
func (g *Group) behind() bool {
	g.scanUnknown()
	return g.behindVal
}

// unknownHolders lists up to limit members (sorted) seen acting on epochs
// we do not hold, preferring those on the newest such epochs.
func (g *Group) unknownHolders(limit int) []MemberID {
	type holder struct {
		m  MemberID
		ep uint64
	}
	var hs []holder
	for m, a := range g.acts {
		if m == g.self {
			continue
		}
		best, ok := uint64(0), false
		for e, ep := range a {
			if g.nodes[e] == nil && !g.inHistory(e) && (!ok || ep > best) {
				best, ok = ep, true
			}
		}
		if ok {
			hs = append(hs, holder{m, best})
		}
	}
	slices.SortFunc(hs, func(a, b holder) int {
		if a.ep != b.ep {
			return cmp.Compare(b.ep, a.ep)
		}
		return cmp.Compare(a.m, b.m)
	})
	if len(hs) > limit {
		hs = hs[:limit]
	}
	var out []MemberID
	for _, h := range hs {
		out = append(out, h.m)
	}
	slices.Sort(out)
	return out
}

// scanUnknown caches, per bmut, whether an act names an unknown epoch newer
// than our head and the lowest number of any act on an unknown epoch.
func (g *Group) scanUnknown() {
	if g.behindMut == g.bmut {
		return
	}
	g.behindVal, g.unknownOK, g.unknownMin = false, false, 0
	for e, ep := range g.hints {
		if g.nodes[e] == nil && (!g.unknownOK || ep < g.unknownMin) {
			g.unknownOK, g.unknownMin = true, ep
		}
	}
	for _, a := range g.acts {
		for e, ep := range a {
			if g.nodes[e] != nil {
				continue
			}
			if ep >= g.head.epoch {
				// An epoch we do not hold at our head's number is not ours
				// either: another branch as long as ours, which we must
				// fetch to judge (beyond-window seed 7617: a member alone on
				// its branch compared numbers only, never counted itself
				// behind a group at its own epoch number, and so never
				// started the no-progress clock that would let it rejoin).
				g.behindVal = true
			}
			if !g.unknownOK || ep < g.unknownMin {
				g.unknownOK, g.unknownMin = true, ep
			}
		}
	}
	g.behindMut = g.bmut
}
