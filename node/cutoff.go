package node

import (
	"bytes"
	"time"

	"grove/commitorder"
	"grove/mls"
	"grove/store"
)

// cutOff is what this device may have said unheard: while it was cut off
// from some members (no tips from them), they finalised epochs in which it
// was still sending.
type cutOff struct {
	since   time.Time           // when we last heard those members
	below   uint64              // they hold final every epoch below this
	root    commitorder.EpochID // their final epoch at number below
	members map[string]bool     // who they are
}

// maxEpochMembers bounds epochMembers; a message from an epoch no longer
// remembered is flagged for the user rather than re-sent.
const maxEpochMembers = 1024

// epochSeen is what we remember of the epochs of one number we have been
// on: who could read what we sent there (the members common to all of
// them: a fork gives two, and the re-send rule errs on the side of not
// sending) and the last one's id.
type epochSeen struct {
	members map[string]bool
	eid     commitorder.EpochID
}

// noteHeadMembers records a state we are now on.
func (a *groupActor) noteHeadMembers(eid commitorder.EpochID, g *mls.Group) {
	a.shown.update(g)
	members := map[string]bool{}
	now := a.n.cfg.Clock.Now()
	if a.heardAt == nil {
		a.heardAt = map[string]time.Time{}
	}
	for _, m := range g.Members() {
		members[string(m.Identity)] = true
		// A member on our chain counts as heard from when we learn it
		// is: one cut off before its first tip reached us (a split right
		// after it joined, or after our restart) must still reappear
		// when it is back (reappeared).
		if _, ok := a.heardAt[string(m.Identity)]; !ok && !bytes.Equal(m.Identity, a.n.selfID) {
			a.heardAt[string(m.Identity)] = now
		}
	}
	if a.epochsSeen == nil {
		a.epochsSeen = map[uint64]*epochSeen{}
	}
	a.noteReach() // the members to reach may have changed
	epoch := g.Epoch()
	if old, ok := a.epochsSeen[epoch]; ok {
		for m := range old.members {
			if !members[m] {
				delete(old.members, m)
			}
		}
		old.eid = eid
		return
	}
	if len(a.epochsSeen) >= maxEpochMembers {
		lowest := epoch
		for e := range a.epochsSeen {
			lowest = min(lowest, e)
		}
		delete(a.epochsSeen, lowest)
	}
	a.epochsSeen[epoch] = &epochSeen{members: members, eid: eid}
}

// noteCutOff records that a member silent since `since` is heard again and
// holds every epoch below rootEpoch final, root being its final epoch. Whatever we sent meanwhile in
// those epochs it could read only if it got it before finalising them; if
// our side made no Commit there is no fork, so neither the outbox's
// orphaned-epoch rule nor a rejoin re-sends it (a partition longer than
// the finality age where only the other side committed). So, once we are
// on the group's chain past those epochs, we re-send it (resendAfterCut);
// receivers deduplicate by message id.
func (a *groupActor) noteCutOff(member []byte, since time.Time, root commitorder.EpochID, rootEpoch uint64) {
	if a.cut != nil {
		a.cut.members[string(member)] = true
		if since.Before(a.cut.since) {
			a.cut.since = since
		}
		if rootEpoch > a.cut.below {
			a.cut.below, a.cut.root = rootEpoch, root
		}
		return
	}
	a.cut = &cutOff{since: since, below: rootEpoch, root: root, members: map[string]bool{string(member): true}}
}

// resendAfterCut re-sends, in the canonical head, our messages sent since
// the cut began in epochs the others hold final, once our head has caught
// up with them. Same membership rule as the outbox's: only if everyone in
// the head could read the epoch the message was sent in (never leak to a
// member the other side added meanwhile); otherwise the message is flagged
// for the user, as an orphaned one is.
func (a *groupActor) resendAfterCut() {
	c := a.cut
	if c == nil || a.phase != phaseActive {
		return
	}
	_, g := a.head()
	if g == nil || g.Epoch() < c.below {
		return // not caught up yet
	}
	a.cut = nil
	if seen := a.epochsSeen[c.below]; seen == nil || seen.eid != c.root {
		// The member holds another chain final: a fork, which the
		// orphaned-epoch rule or a rejoin settles, not this one. If it is
		// a sibling of our epoch there (a rejoin commit that lost to
		// another member's, briefly our head), the member rejoins again
		// and must then reappear: it has not been heard on our chain
		// since the cut began.
		if seen != nil {
			for m := range c.members {
				if at, ok := a.heardAt[m]; ok && at.After(c.since) {
					a.heardAt[m] = c.since
				}
			}
		}
		return
	}
	msgs, err := a.n.db.Messages(a.id, c.since, 1<<30)
	if err != nil {
		a.log.Warn("messages sent while cut off", "err", err)
		return
	}
	withheld := 0
	for _, m := range msgs {
		if m.Epoch >= c.below || !bytes.Equal(m.Sender, a.n.selfID) {
			continue
		}
		var readers map[string]bool
		if seen := a.epochsSeen[m.Epoch]; seen != nil {
			readers = seen.members
		}
		leak := readers == nil
		for _, x := range g.Members() {
			leak = leak || !readers[string(x.Identity)]
		}
		if leak {
			a.n.db.SetMessageFlags(a.id, m.ID, store.FlagOrphanedBranch)
			withheld++
			continue
		}
		plain := resendPlaintext(m) // content.go
		if plain == nil {
			continue // deleted: nothing of it is sent again
		}
		// Back in the outbox first: a crash or a fork from here on must
		// still re-send it.
		if err := a.n.db.PutOutbox(store.OutboxEntry{Group: a.id, ID: m.ID, State: store.OutboxPending,
			Epoch: g.Epoch(), Plaintext: plain, Created: a.n.cfg.Clock.Now()}); err != nil {
			a.log.Warn("outbox", "err", err)
			continue
		}
		a.n.db.SetMessageFlags(a.id, m.ID, store.FlagResent)
		if err := a.encryptAndPublish(plain, m.ID); err != nil {
			a.log.Warn("re-send after a cut", "err", err)
		}
	}
	if withheld > 0 {
		a.log.Warn("messages sent while cut off not re-sent: the group now has members who could not read them", "messages", withheld)
	}
}
