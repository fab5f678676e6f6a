package node

import (
	"bytes"
	"time"

	"grove/mls"
	"grove/store"
)

// cutOff is what this device may have said unheard: while it was cut off
// from some members (no tips from them), they finalised epochs in which it
// was still sending.
type cutOff struct {
	since time.Time // when we last heard those members
	below uint64    // they hold final every epoch below this
}

// maxEpochMembers bounds epochMembers; a message from an epoch no longer
// remembered is flagged for the user rather than re-sent.
const maxEpochMembers = 1024

// noteEpochMembers remembers who could read what we sent in an epoch with
// this number: the members common to every epoch of that number we have
// been on (a fork gives two), so the re-send rule errs on the side of not
// sending.
func (a *groupActor) noteEpochMembers(epoch uint64, members map[string]bool) {
	if a.epochMembers == nil {
		a.epochMembers = map[uint64]map[string]bool{}
	}
	if old, ok := a.epochMembers[epoch]; ok {
		for m := range old {
			if !members[m] {
				delete(old, m)
			}
		}
		return
	}
	if len(a.epochMembers) >= maxEpochMembers {
		lowest := epoch
		for e := range a.epochMembers {
			lowest = min(lowest, e)
		}
		delete(a.epochMembers, lowest)
	}
	a.epochMembers[epoch] = members
}

// noteCutOff records that a member silent since `since` is heard again and
// holds every epoch below rootEpoch final. Whatever we sent meanwhile in
// those epochs it could read only if it got it before finalising them; if
// our side made no Commit there is no fork, so neither the outbox's
// orphaned-epoch rule nor a rejoin re-sends it (a partition longer than
// the finality age where only the other side committed). So, once we are
// on the group's chain past those epochs, we re-send it (resendAfterCut);
// receivers deduplicate by message id.
func (a *groupActor) noteCutOff(since time.Time, rootEpoch uint64) {
	if a.cut != nil {
		if since.Before(a.cut.since) {
			a.cut.since = since
		}
		a.cut.below = max(a.cut.below, rootEpoch)
		return
	}
	a.cut = &cutOff{since: since, below: rootEpoch}
}

// resendAfterCut re-sends, in the canonical head, our messages sent since
// the cut began in epochs the others hold final, once our head has caught
// up with them. Same membership rule as the outbox's: only if everyone in
// the head could read the epoch the message was sent in (never leak to a
// member the other side added meanwhile); otherwise the message is flagged
// for the user, as an orphaned one is.
func (a *groupActor) resendAfterCut() {
	c := a.cut
	if c == nil || a.removed || a.stale {
		return
	}
	_, g := a.head()
	if g == nil || g.Epoch() < c.below {
		return // not caught up yet
	}
	a.cut = nil
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
		readers := a.epochMembers[m.Epoch]
		leak := readers == nil
		for _, x := range g.Members() {
			leak = leak || !readers[string(x.Identity)]
		}
		if leak {
			a.n.db.SetMessageFlags(a.id, m.ID, store.FlagOrphanedBranch)
			withheld++
			continue
		}
		plain := (&appPayload{ID: m.ID, Kind: kindText, Time: m.Time, Text: m.Text}).marshal()
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

// noteHeadMembers records the members of a state we are now on.
func (a *groupActor) noteHeadMembers(g *mls.Group) {
	ms := map[string]bool{}
	for _, m := range g.Members() {
		ms[string(m.Identity)] = true
	}
	a.noteEpochMembers(g.Epoch(), ms)
}
