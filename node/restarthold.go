// The restart hold: after a restart (loadGroup), the epochs this device
// held when it loaded are not erased when commitorder finalises them
// until one sync started after the load has completed, or
// restartHoldBound has passed.
//
// Why (issue 17, testnet TestCrash, 2 runs in 330 under load): messages
// sent while the device was down reach it only by sync. Under load the
// first sync after a restart may complete seconds later, and meanwhile
// the device learns the next epoch by gossip and commitorder's timers
// (witness or age finality) finalise the epoch the messages were sent
// in: its keys were erased before the sync brought them, and a sync
// asked for after that started at the new root. Both are covered here:
// a finalised held epoch's state moves to a.restart.kept (out of
// a.epochs, so head, root, tips and membership see only what commitorder
// retains), application messages of its epoch are still decrypted and
// stored from there (receiveKept), and syncs ask from the lowest epoch
// held at load while the hold lasts (holdSyncFrom).

package node

import (
	"bytes"
	"errors"
	"time"

	"grove/commitorder"
	"grove/mls"
	"grove/store"
)

// restartHold is the state of the hold; nil when none is active.
type restartHold struct {
	// held: the epochs loaded from the store; from: the lowest epoch
	// number among them, where syncs start while the hold lasts.
	held map[commitorder.EpochID]bool
	from uint64
	// kept: held epochs commitorder has finalised, not yet erased.
	kept map[commitorder.EpochID]*mls.Group
	// deadline: when the hold ends even if no sync completed.
	deadline time.Time
	// syncing: a sync was started while the hold was active; the hold
	// ends when the syncs in flight are all done (syncEnded).
	syncing bool
}

// restartHoldBound is how long a hold may keep finalised epochs' keys:
// one finality age past the load plus one sync exchange (syncTimeout).
// Forward secrecy comes first: an epoch's keys normally live at most the
// finality age past its successor, so a restart at most adds about as
// much again, once; a device that reaches no member does not keep them
// longer (what it misses meanwhile is lost, as it would have been
// without the hold). The sync timeout is added because the finality age
// may be shorter than one sync exchange under load (test settings: 0.4
// to 1.5 s, where the sync that would have saved the messages in issue
// 17 took about 4 s).
func (n *Node) restartHoldBound() time.Duration {
	return n.coConfig(DefaultCommitRate).MaxAge + syncTimeout
}

// startRestartHold starts a hold on the epochs just loaded (loadGroup).
func (a *groupActor) startRestartHold() {
	if a.phase != phaseActive || len(a.epochs) == 0 {
		return
	}
	h := &restartHold{held: make(map[commitorder.EpochID]bool, len(a.epochs)),
		kept: map[commitorder.EpochID]*mls.Group{}, deadline: a.n.cfg.Clock.Now().Add(a.n.restartHoldBound())}
	first := true
	for eid, g := range a.epochs {
		h.held[eid] = true
		if first || g.Epoch() < h.from {
			h.from, first = g.Epoch(), false
		}
	}
	a.restart = h
}

// holdFinal keeps the state of eid, which commitorder has just
// finalised, if the hold covers it: out of a.epochs, in the hold's kept
// states. It reports whether it did; if not, the caller drops the epoch.
func (a *groupActor) holdFinal(eid commitorder.EpochID) bool {
	h := a.restart
	if h == nil || !h.held[eid] || a.epochs[eid] == nil {
		return false
	}
	if a.n.cfg.Clock.Now().After(h.deadline) {
		return false // dropped; the rest go at the next tip tick
	}
	// Its receive keys used since the last write are not written: the
	// state is erased when the hold ends, and after a crash meanwhile
	// the stored one (unknown to commitorder) is deleted at load
	// (dropUnknownStates).
	h.kept[eid] = a.epochs[eid]
	delete(a.epochs, eid)
	delete(a.dirty, eid)
	a.log.Debug("finalised epoch kept until the first sync after the restart", "epoch", h.kept[eid].Epoch())
	return true
}

// holdSyncFrom returns the epoch a sync starts at: from (the root), or
// the lowest epoch held at load while the hold lasts, as messages sent
// while this device was down may be in any of those.
func (a *groupActor) holdSyncFrom(from uint64) uint64 {
	if a.restart == nil {
		return from
	}
	return min(from, a.restart.from)
}

// syncStarted notes that a sync asking peers members was started.
func (a *groupActor) syncStarted(peers int) {
	if a.restart != nil && peers > 0 {
		a.restart.syncing = true
	}
}

// syncEnded is called as each sync exchange ends, after its messages
// were taken; once none is in flight the first sync after the load has
// completed and the hold ends.
func (a *groupActor) syncEnded() {
	if a.restart != nil && a.restart.syncing && a.syncs == 0 {
		a.endRestartHold()
	}
}

// checkRestartHold ends the hold once its bound has passed, or when the
// group is no longer active (removed, or rejoining: the rejoin replaces
// every epoch).
func (a *groupActor) checkRestartHold() {
	if h := a.restart; h != nil && (a.phase != phaseActive || a.n.cfg.Clock.Now().After(h.deadline)) {
		a.endRestartHold()
	}
}

// endRestartHold ends the hold and erases the kept states exactly as
// dropEpoch(eid, true) would have when they were finalised.
func (a *groupActor) endRestartHold() {
	h := a.restart
	if h == nil {
		return
	}
	a.restart = nil
	for eid, g := range h.kept {
		ep := g.Epoch()
		g.Erase()
		delete(h.kept, eid)
		a.n.db.FinaliseEpoch(a.id, store.EpochID(eid), ep)
	}
	a.n.requestPurge()
}

// receiveKept decrypts an application message of an epoch the hold
// keeps, and reports whether it was taken (decrypted, or our own).
// Commits of a finalised epoch are left to the ordinary path: the epoch's
// successor is final.
func (a *groupActor) receiveKept(data []byte, h [32]byte, epoch uint64) bool {
	if a.restart == nil || len(a.restart.kept) == 0 {
		return false
	}
	gid, _, ct, err := frameKind(data)
	if err != nil || ct != mls.ContentTypeApplication || !bytes.Equal(gid, a.id) {
		return false
	}
	now := a.n.cfg.Clock.Now()
	for eid, g := range a.restart.kept {
		if g.Epoch() != epoch {
			continue
		}
		pm, err := g.ProcessMessage(data, mls.ProcessOptions{Now: now})
		if errors.Is(err, mls.ErrOwnMessage) {
			a.markSeen(h)
			return true
		}
		if err != nil || pm.Kind != mls.KindApplication {
			continue
		}
		a.markSeen(h)
		a.n.metrics.messagesIn.Add(1)
		if !a.onApplication(eid, g, pm) {
			return true
		}
		if _, err := a.appendLog(epoch, h, data); err != nil {
			a.log.Warn("log message", "err", err)
		}
		return true
	}
	return false
}
