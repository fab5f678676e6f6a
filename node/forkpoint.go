package node

import (
	"bytes"

	"grove/commitorder"
	"grove/store"
)

// resendForkPoint re-sends, in the new head, what this device sent in the
// fork point fp of a branch switch it has just made (RollbackTo fp, then
// the winning branch applied), under the same message ids.
//
// Why (issue 17, testnet partition at 12 nodes, seeds 6, 7, 9, 15): during
// a split that heals within the window, what the losing half says in the
// fork point before its own commit reaches only its half. After the heal
// the winners learn of those messages only by sync, but they finalise the
// fork point (and erase its keys) once every member is seen on their
// branch plus Grace, which can come first under load; commitorder's
// pending-ciphertext guard cannot help, as they never saw the
// ciphertexts. Commitorder re-sends what was sent on the orphaned branch
// (Resend); the loser re-sends its fork-point messages here, as a rejoin
// does (finishRejoin). Members that have them drop the copy by id.
//
// The same rule as commitorder's Resend keeps it from leaking: only when
// this device is a member of the new head and every member of the head was
// a member of the fork point, so nobody reads what was not meant for it.
// Only entries still in the outbox count (an entry leaves it once an epoch
// it was sent in is final), which bounds the work.
func (a *groupActor) resendForkPoint(fp commitorder.EpochID) {
	gF := a.epochs[fp]
	headEid, gH := a.head()
	if gF == nil || gH == nil || headEid == fp || a.phase != phaseActive {
		return
	}
	members := make(map[string]bool)
	for _, m := range gF.Members() {
		members[string(m.Identity)] = true
	}
	self := false
	for _, m := range gH.Members() {
		if !members[string(m.Identity)] {
			return
		}
		self = self || bytes.Equal(m.Identity, a.n.selfID)
	}
	if !self {
		return
	}
	entries, err := a.n.db.OutboxEntries(a.id, store.OutboxSent)
	if err != nil {
		a.log.Debug("fork point re-send: outbox", "err", err)
		return
	}
	n := 0
	for _, e := range entries {
		if e.Epoch == gF.Epoch() {
			a.resend(commitorder.MsgID(e.ID))
			n++
		}
	}
	if n > 0 {
		a.log.Debug("re-sent what was said in the fork point", "epoch", gF.Epoch(), "messages", n)
	}
}
