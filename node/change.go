package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"grove/commitorder"
	"grove/node/api"
)

// Changes the user asked for (RequestChange, AwaitChange): a key rotation
// or a member's removal is an intent, committed when commitorder says so
// and done once the group confirms the epoch that carries it (its Commit
// settles). Rotate and remove used to report success as soon as the
// intent was queued, which told the user nothing about whether it ever
// happened; the CLI now waits for the settlement and says which epoch
// carried it, or what it still waits for.

// maxChanges bounds the changes a group remembers; done ones go first.
const maxChanges = 64

// changeWait is a requested change and how far it has come (actor only).
type changeWait struct {
	c      api.Change
	target []byte // remove: credential identity of the member
	// changed is closed (and replaced) whenever c changes.
	changed chan struct{}
}

func (w *changeWait) set(state api.ChangeState, epoch uint64) {
	w.c.State, w.c.Epoch = state, epoch
	close(w.changed)
	w.changed = make(chan struct{})
}

// trackChange remembers the change of intent it.
func (a *groupActor) trackChange(it *intent, c api.Change) *changeWait {
	if a.changes == nil {
		a.changes = map[commitorder.IntentID]*changeWait{}
	}
	if len(a.changes) >= maxChanges {
		for id, w := range a.changes {
			if w.c.State == api.ChangeDone {
				delete(a.changes, id)
			}
		}
		for id := range a.changes {
			if len(a.changes) < maxChanges {
				break
			}
			delete(a.changes, id)
		}
	}
	c.ID, c.State = hex.EncodeToString(it.id[:]), api.ChangeRequested
	w := &changeWait{c: c, target: it.target, changed: make(chan struct{})}
	a.changes[it.id] = w
	return w
}

// changesCommitted notes that our Commit of epoch carries the intents ids.
func (a *groupActor) changesCommitted(ids []commitorder.IntentID, epoch uint64) {
	for _, id := range ids {
		if w := a.changes[id]; w != nil && w.c.State != api.ChangeDone {
			w.set(api.ChangeCommitted, epoch)
		}
	}
}

// changesSettled notes that the group confirmed our Commit carrying ids.
func (a *groupActor) changesSettled(ids []commitorder.IntentID) {
	for _, id := range ids {
		if w := a.changes[id]; w != nil && w.c.State != api.ChangeDone {
			epoch := w.c.Epoch
			if epoch == 0 {
				_, epoch = a.co.Root()
			}
			w.set(api.ChangeDone, epoch)
		}
	}
}

// changesRequeued notes that our Commit carrying ids lost to a concurrent
// one: the intents are queued again.
func (a *groupActor) changesRequeued(ids []commitorder.IntentID) {
	for _, id := range ids {
		if w := a.changes[id]; w != nil && w.c.State == api.ChangeCommitted {
			w.set(api.ChangeRequested, 0)
		}
	}
}

// changeNow returns change id's state, completing a removal that needs no
// Commit of ours any more (another admin's Commit removed the member, and
// ours dropped the intent).
func (a *groupActor) changeNow(id commitorder.IntentID) (*changeWait, error) {
	w := a.changes[id]
	if w == nil {
		return nil, api.Errorf(api.CodeNotFound, "no change %x in group %q", id[:], a.name)
	}
	if a.phase == phaseRemoved && w.c.State != api.ChangeDone {
		return nil, a.errRemoved()
	}
	_, queued := a.intents[id]
	if w.c.State != api.ChangeDone && !queued && a.policyChangeDone(w) {
		_, g := a.head()
		w.set(api.ChangeDone, g.Epoch())
	}
	if w.c.State != api.ChangeDone && !queued && w.c.Kind == api.ChangeRemove {
		if _, g := a.head(); g != nil {
			if _, in := leafOf(g, w.target); !in {
				w.set(api.ChangeDone, g.Epoch())
			}
		}
	}
	w.c.Waiting = ""
	switch w.c.State {
	case api.ChangeRequested:
		w.c.Waiting = "this device to commit it (the group's commit order may make it wait its turn)"
	case api.ChangeCommitted:
		w.c.Waiting = fmt.Sprintf("the other members to confirm epoch %d", w.c.Epoch)
		if a.reach.known && a.reach.others > 0 && a.reach.reachable == 0 {
			w.c.Waiting += ": none is reachable now"
		}
	}
	return w, nil
}

// RequestChange implements api.Service.
func (n *Node) RequestChange(ctx context.Context, req api.ChangeRequest) (api.Change, error) {
	a, err := n.lookup(req.Group)
	if err != nil {
		return api.Change{}, err
	}
	var out api.Change
	err = a.do(ctx, func() error {
		var it *intent
		switch req.Kind {
		case api.ChangeRotate:
			it = &intent{kind: intentUpdate}
			if err := a.queueIntent(it); err != nil {
				return err
			}
		case api.ChangeRemove:
			var err error
			if it, err = a.removeIntent(req.Member); err != nil {
				return err
			}
		case api.ChangePromote, api.ChangeDemote, api.ChangeRename, api.ChangeHistory:
			var err error
			if it, err = a.policyIntent(req); err != nil {
				return err
			}
			if err := a.queueIntent(it); err != nil {
				return err
			}
		case api.ChangeMute, api.ChangeUnmute:
			// Local: done at once, tracked so that AwaitChange answers.
			if err := a.setMuted(req.Kind == api.ChangeMute); err != nil {
				return err
			}
			it = &intent{}
			rand.Read(it.id[:])
			w := a.trackChange(it, api.Change{Group: a.hexID, Kind: req.Kind})
			_, g := a.head()
			var epoch uint64
			if g != nil {
				epoch = g.Epoch()
			}
			w.set(api.ChangeDone, epoch)
			out = w.c
			return nil
		default:
			return api.Errorf(api.CodeInvalidArgument, "unknown change %q", req.Kind)
		}
		out = a.trackChange(it, api.Change{Group: a.hexID, Kind: req.Kind, Member: req.Member, Name: req.Name, History: req.History}).c
		return nil
	})
	return out, err
}

// AwaitChange implements api.Service.
func (n *Node) AwaitChange(ctx context.Context, group, id string, timeout time.Duration) (api.Change, error) {
	a, err := n.lookup(group)
	if err != nil {
		return api.Change{}, err
	}
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != len(commitorder.IntentID{}) {
		return api.Change{}, api.Errorf(api.CodeInvalidArgument, "bad change id %q", id)
	}
	iid := commitorder.IntentID(raw)
	timeout = min(max(timeout, 0), api.MaxAwait)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// A removal done by another admin's Commit shows only in the head:
	// look again now and then.
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		var c api.Change
		var changed chan struct{}
		if err := a.do(ctx, func() error {
			w, err := a.changeNow(iid)
			if err != nil {
				return err
			}
			c, changed = w.c, w.changed
			return nil
		}); err != nil {
			return api.Change{}, err
		}
		if c.State == api.ChangeDone {
			return c, nil
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline.C:
			return c, nil
		case <-ctx.Done():
			return api.Change{}, ctx.Err()
		case <-n.ctx.Done():
			return api.Change{}, api.Errorf(api.CodeUnavailable, "node is closed")
		}
	}
}
