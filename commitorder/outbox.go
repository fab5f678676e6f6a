// Outbox: nothing we sent is lost to a fork, and nothing leaks across one.
//
// An outbox entry lists the epochs it was encrypted in and stays until one
// of them becomes the root (OutboxDone). When a branch switch orphans all
// its epochs it is re-sent (Resend, same message id) in the new head only if
// we are a member of the head and every member of the head was a member of
// the epoch it was last sent in; otherwise it is surfaced (Surface) once all
// its epochs are dropped, that is once the fork point is final. So an entry
// never reaches a member the other branch added without vetting, nor one it
// removed.

package commitorder

import (
	"fmt"
	"slices"
)

// outEntry is an outbox entry: the epochs it has been encrypted in.
type outEntry struct {
	copies []EpochID
}

func (g *Group) outboxAdded(e OutboxAdded) error {
	if g.nodes[e.Eid] == nil {
		return fmt.Errorf("%w: outbox entry in unknown epoch %v", ErrInvalidEvent, e.Eid)
	}
	g.mut++
	if o := g.outbox[e.ID]; o != nil {
		if !slices.Contains(o.copies, e.Eid) {
			o.copies = append(o.copies, e.Eid)
		}
		return nil
	}
	g.outbox[e.ID] = &outEntry{copies: []EpochID{e.Eid}}
	return nil
}

// resendOrphaned re-sends outbox entries none of whose copies is canonical,
// when the membership rule allows it.
func (g *Group) resendOrphaned() {
	var ids []MsgID
	for id, o := range g.outbox {
		if g.anyCanonical(o.copies) {
			continue
		}
		last := g.nodes[o.copies[len(o.copies)-1]]
		if last == nil || !contains(g.head.members, g.self) || !subset(g.head.members, last.members) {
			continue // surfaced when its fork point becomes final
		}
		o.copies = append(o.copies, g.head.eid)
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		sortMsgIDs(ids)
		g.emit(Resend{IDs: ids, To: g.head.eid})
	}
}

func (g *Group) anyCanonical(eids []EpochID) bool {
	for _, e := range eids {
		if n := g.nodes[e]; n != nil && n.canonical {
			return true
		}
	}
	return false
}

// sweepOutbox settles or surfaces outbox entries whose fate is decided.
func (g *Group) sweepOutbox() {
	var done, surfaced []MsgID
	for id, o := range g.outbox {
		live := o.copies[:0]
		settled := false
		for _, e := range o.copies {
			if e == g.root.eid {
				settled = true
			}
			if g.nodes[e] != nil {
				live = append(live, e)
			}
		}
		o.copies = live
		switch {
		case settled:
			done = append(done, id)
			delete(g.outbox, id)
		case len(live) == 0:
			surfaced = append(surfaced, id)
			delete(g.outbox, id)
		}
	}
	if len(surfaced) > 0 {
		sortMsgIDs(surfaced)
		g.emit(Surface{IDs: surfaced})
	}
	if len(done) > 0 {
		sortMsgIDs(done)
		g.emit(OutboxDone{IDs: done})
	}
}
