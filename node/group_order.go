// A group's actor and commitorder: step feeds commitorder an event
// (with a fresh clock) and effect carries out each effect it returns, in
// order: applying and rolling back epochs, dropping finalised or orphaned
// ones (dropEpoch), re-sending, settling the outbox, committing, fetching,
// rejoining, and the end of the group for this device (Removed).
// coConfig, epochID, memberIDs and adminIDs translate between the node's
// settings and MLS groups and commitorder's terms.

package node

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/store"
)

// tickGranularity is how stale commitorder's clock may be when an event is
// fed to it; far below every protocol timer.
const tickGranularity = 2 * time.Millisecond

func (n *Node) coConfig(rate int) commitorder.Config {
	c := commitorder.Config{
		Depth: n.cfg.FinalityDepth, MaxAge: n.cfg.FinalityAge, Grace: n.cfg.FinalityGrace,
		Delta: n.cfg.CommitDelta, RateLimit: rate,
	}.EnsureDefaults()
	if c.Grace > c.MaxAge {
		c.Grace = c.MaxAge
	}
	if c.Retry > c.MaxAge {
		c.Retry = max(c.MaxAge, 50*time.Millisecond)
	}
	if c.RateWindow < c.RateLimit {
		c.RateWindow = c.RateLimit
	}
	return c
}

func epochID(g *mls.Group) (commitorder.EpochID, error) {
	var e commitorder.EpochID
	b, err := g.Export("grove epoch id", nil, 16)
	if err != nil {
		return e, fmt.Errorf("node: epoch id: %w", err)
	}
	copy(e[:], b)
	return e, nil
}

func memberIDs(g *mls.Group) []commitorder.MemberID {
	var out []commitorder.MemberID
	for _, m := range g.Members() {
		out = append(out, commitorder.MemberID(m.Identity))
	}
	return out
}

func adminIDs(g *mls.Group) []commitorder.MemberID {
	var out []commitorder.MemberID
	// A device of an admin's account is an admin too (devices.go).
	for _, a := range groupAdmins(g) {
		out = append(out, commitorder.MemberID(a))
	}
	return out
}

// step feeds commitorder and carries out its effects in order.
func (a *groupActor) step(ev commitorder.Event) {
	if a.phase == phaseRemoved {
		return
	}
	if tick, ok := ev.(commitorder.Tick); ok {
		a.lastTick = tick.Now
	} else if now := a.n.cfg.Clock.Now(); now.Sub(a.lastTick) >= tickGranularity {
		// Tick is commitorder's only clock. Without a fresh one, an event
		// is stamped with the time of the last timer, which may be long
		// past: a Commit seen then ages early and its parent is final
		// (and deleted) before the grace a late sibling or message is
		// owed.
		a.step(commitorder.Tick{Now: now})
		if a.phase == phaseRemoved || a.co.Done() {
			return
		}
	}
	effects, err := a.co.Step(ev)
	if err != nil {
		a.log.Debug("commitorder rejected event", "event", fmt.Sprintf("%T", ev), "err", err)
		return
	}
	for _, e := range effects {
		a.effect(e)
	}
	if fp := a.forkPoint; fp != nil {
		a.forkPoint = nil
		a.resendForkPoint(*fp) // forkpoint.go
	}
	// Evidence (tips, application messages, ticks) is re-learnt after a
	// crash, so it is saved with the next flush; anything that changed the
	// chain, the queue or produced effects is saved at once. Hints
	// (CiphertextPending) are not saved at all, so they cost no write.
	switch ev.(type) {
	case commitorder.TipSeen, commitorder.AppMessageSeen, commitorder.Tick, commitorder.OutboxAdded, commitorder.CiphertextPending:
		if len(effects) == 0 || onlyOutboxDone(effects) {
			a.orderDirty = true
			return
		}
	}
	a.saveOrder()
}

// onlyOutboxDone reports whether effects settle sent messages and nothing
// else: what a message sent on a final epoch yields at once (one synced
// write per sent message when it was saved at once). Such a step leaves
// commitorder's state as durable as the outbox already is, so it waits for
// the next flush: the outbox entry is written (synced) before the message
// is published, and kept for outboxLinger after it settles. A crash before
// the flush leaves the entry in the outbox and commitorder without it;
// replayOutbox sends it again under the same id (receivers deduplicate by
// id), as unheard until this device has caught up, and feeds OutboxAdded
// again, which settles it again. Settling a message on a final epoch
// decides nothing about the chain, so nothing commitorder decided is
// forgotten. (Reverted once as the cause of a lost message in the cli
// SIGKILL test; the loss was a restarted daemon that had never written
// its peer file and reached nobody, now fixed in p2p.)
func onlyOutboxDone(effects []commitorder.Effect) bool {
	for _, e := range effects {
		if _, ok := e.(commitorder.OutboxDone); !ok {
			return false
		}
	}
	return len(effects) > 0
}

func (a *groupActor) effect(e commitorder.Effect) {
	n := a.n
	switch e := e.(type) {
	case commitorder.RollbackTo:
		a.log.Info("rolling back to fork point", "eid", e.Eid)
		fp := e.Eid
		a.forkPoint = &fp
	case commitorder.Apply:
		g := a.epochs[e.Eid]
		n.metrics.epochs.Add(1)
		if g != nil {
			a.noteHeadMembers(e.Eid, g)
			a.noteMembership(a.epochs[e.Parent], g, e.Eid)
			n.emit(api.Event{Kind: api.EventEpoch, Group: a.hexID, Time: n.cfg.Clock.Now(), Epoch: g.Epoch()})
			a.memberEvents(a.epochs[e.Parent], g)
			a.notePolicy(a.epochs[e.Parent], g)
		}
	case commitorder.Orphaned:
		n.metrics.forks.Add(1)
		a.forgetRemovals(e.Eids)
		for _, eid := range e.Eids {
			if g := a.epochs[eid]; g != nil {
				n.db.OrphanEpoch(a.id, store.EpochID(eid), g.Epoch())
			}
		}
		n.emit(api.Event{Kind: api.EventForkResolved, Group: a.hexID, Time: n.cfg.Clock.Now(),
			Detail: fmt.Sprintf("%d epoch(s) undone by a concurrent commit", len(e.Eids))})
	case commitorder.Resend:
		for _, id := range e.IDs {
			a.resend(id)
		}
	case commitorder.Surface:
		for _, id := range e.IDs {
			n.db.SetMessageFlags(a.id, store.MessageID(id), store.FlagOrphanedBranch)
		}
	case commitorder.OutboxDone:
		for _, id := range e.IDs {
			if a.unheard[[16]byte(id)] != nil {
				// Settled here, but no member has it: kept for
				// resendUnheard (and for replay after a crash).
				continue
			}
			a.settle([16]byte(id))
		}
	case commitorder.FinaliseEpoch:
		if g := a.epochs[e.Eid]; g != nil && a.resent != nil && g.Epoch() >= a.resentEpoch {
			a.resent = nil
		}
		if !a.holdFinal(e.Eid) { // restarthold.go
			a.dropEpoch(e.Eid, true)
		}
		_, rootEpoch := a.co.Root()
		a.held.prune(rootEpoch)
	case commitorder.DropBranch:
		for _, eid := range e.Eids {
			a.dropEpoch(eid, false)
		}
	case commitorder.ProposeCommit:
		a.commit(e.Parent, e.Intents)
	case commitorder.CommitSettled:
		a.changesSettled(e.Intents)
		oc := a.own[e.Cid]
		for _, id := range e.Intents {
			if it := a.intents[id]; it != nil && it.join == nil && !it.relay {
				delete(a.intents, id)
			}
		}
		if oc != nil && oc.welcome == nil {
			delete(a.own, e.Cid)
		}
	case commitorder.CommitDiscarded:
		a.changesRequeued(e.Intents)
		delete(a.own, e.Cid)
	case commitorder.SendWelcome:
		oc := a.own[e.Cid]
		delete(a.own, e.Cid)
		if oc == nil {
			return
		}
		for _, id := range oc.intents {
			if it := a.intents[id]; it != nil && it.join != nil {
				it.join <- joinResult{welcome: oc.welcome}
				delete(a.intents, id)
			} else if it != nil && it.relay {
				a.relayWelcome(id, oc.welcome)
				delete(a.intents, id)
			}
		}
	case commitorder.FetchParent:
		a.requestSync("", false)
	case commitorder.FetchRange:
		// The members seen on the epochs we miss hold them; asking random
		// members first may miss the only one that does until age
		// finality has settled the other branch (commitorder.FetchRange).
		var prefer []peer.ID
		for _, m := range e.Peers {
			if id, err := parseIdentity([]byte(m)); err == nil && id.Peer != n.net.ID() {
				prefer = append(prefer, id.Peer)
			}
		}
		a.requestSyncFrom(prefer, false)
	case commitorder.Retry:
		// Commits with unknown parents are not held by the node (they are
		// fetched again by sync), so there is nothing to re-feed.
	case commitorder.Rejoin:
		a.startRejoin(e)
		a.log.Warn("this device's branch lost beyond the retention window; rejoin by a new invite", "fork_epoch", e.ForkEpoch)
		n.emit(api.Event{Kind: api.EventSync, Group: a.hexID, Time: n.cfg.Clock.Now(),
			Detail: "this device's branch lost beyond the retention window: leave the group and be invited again"})
	case commitorder.Removed:
		a.phase = phaseRemoved
		a.noteReach() // a removed device stops redialing the group's members
		a.endRestartHold()
		for eid, g := range a.epochs {
			g.Erase()
			delete(a.epochs, eid)
			n.db.DeleteEpochState(a.id, store.EpochID(eid))
		}
		n.requestPurge()
		for id, it := range a.intents {
			if it.join != nil {
				it.join <- joinResult{err: api.Errorf(api.CodeUnavailable, "the inviter was removed from the group")}
			}
			delete(a.intents, id)
		}
		if a.leaving {
			n.finishLeave(a) // what we asked for: the group's data goes
			return
		}
		n.emit(api.Event{Kind: api.EventRemoved, Group: a.hexID, Time: n.cfg.Clock.Now(), Detail: "this device was removed from the group"})
	}
}

func (a *groupActor) dropEpoch(eid commitorder.EpochID, final bool) {
	g := a.epochs[eid]
	delete(a.epochs, eid)
	delete(a.dirty, eid)
	if g == nil {
		return
	}
	ep := g.Epoch()
	g.Erase()
	if final {
		a.n.db.FinaliseEpoch(a.id, store.EpochID(eid), ep)
	} else {
		a.n.db.DeleteEpochState(a.id, store.EpochID(eid))
	}
	// The state's secrets are deleted, not yet gone from disk: the purge
	// (coalesced with the other epochs finalised meanwhile) removes them.
	a.n.requestPurge()
}

// rotatedSetting names the setting that holds when this device last
// queued the update of its own leaf in a group (autoRotate), so that the
// schedule survives restarts. It is deleted with the group.
func rotatedSetting(hexID string) string { return "group-rotated/" + hexID }

// autoRotate queues an update of this device's own leaf (intentUpdate,
// committed when commitorder's avoidance says so, like `grove rotate`)
// once Config.RotateEvery, less a random jitter, has passed since the last
// one, or since the group was created or joined here. An update still
// queued is not queued twice. Runs on the actor.
func (a *groupActor) autoRotate() {
	every := a.n.cfg.RotateEvery
	if every <= 0 || a.phase != phaseActive || a.leaving {
		return
	}
	if _, g := a.head(); g == nil {
		return
	}
	now := a.n.cfg.Clock.Now()
	if a.rotateDue.IsZero() {
		last := a.created
		if v, err := a.n.db.Setting(rotatedSetting(a.hexID)); err == nil && len(v) == 8 {
			last = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		}
		if last.IsZero() {
			last = now
		}
		a.rotateDue = last.Add(every - rotateJitter(every))
	}
	if now.Before(a.rotateDue) || a.intents[a.rotateIntent] != nil {
		return
	}
	it := &intent{kind: intentUpdate}
	if err := a.queueIntent(it); err != nil {
		a.log.Debug("automatic key rotation", "err", err)
		return
	}
	a.rotateIntent = it.id
	a.rotateDue = now.Add(every - rotateJitter(every))
	// Saved when queued rather than when committed: a rotation lost to
	// a crash before its Commit waits at most one more interval.
	if err := a.n.db.SetSetting(rotatedSetting(a.hexID), binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
		a.log.Warn("save key rotation time", "err", err)
	}
	a.log.Info("rotating this device's keys in the group (scheduled)")
}

// rotateJitter is a random part of up to an eighth of the interval.
func rotateJitter(every time.Duration) time.Duration {
	return rand.N(every/8 + 1)
}
