package node

import (
	"bytes"

	"grove/node/api"
	"grove/store"
)

// deferredWrites lets the actor make a run of received messages durable
// with one sync instead of one or two per message (ARCHITECTURE.md section
// 4: writes that belong together, synced where loss would matter).
//
// Between beginWrites and the matching endWrites (nested calls count), the
// view and log writes of received messages are applied at once but without
// a sync (store.Batch.CommitNoSync), and their message events are held.
// The outermost endWrites (or maxHeldEvents held events) syncs once and
// then emits the events, so a received message is still shown only once it
// is durable. Pebble's write-ahead log is a sequence: a crash loses at most
// an unsynced suffix of these writes, never one that a synced write (an
// epoch state, the commit order) followed, so no write reaches the disk
// ahead of one it depends on. A message whose writes are lost that way is
// not logged either, so the next resync processes it again.
type deferredWrites struct {
	depth    int
	unsynced bool
	events   []api.Event
}

func (a *groupActor) beginWrites() { a.writes.depth++ }

func (a *groupActor) endWrites() {
	a.writes.depth--
	if a.writes.depth == 0 {
		a.syncWrites()
	}
}

// maxHeldEvents bounds the events held for one sync: a burst of events
// larger than a subscriber's buffer (defaultSubscriberBuff) would be
// dropped for that subscriber, and a long page should not keep its first
// messages from being shown until its end.
const maxHeldEvents = defaultSubscriberBuff / 2

// syncWrites makes the deferred writes durable, then emits their events.
func (a *groupActor) syncWrites() {
	w := &a.writes
	if !w.unsynced {
		return
	}
	events := w.events
	w.events, w.unsynced = nil, false
	if err := a.n.db.Sync(); err != nil {
		// Not durable: not shown. The messages are in the view and will be
		// listed, but no event claims a delivery the disk has not kept.
		a.log.Error("sync received messages", "err", err)
		return
	}
	for _, ev := range events {
		a.n.emit(ev)
	}
}

// appendLog logs a handled message: deferred inside beginWrites, synced
// otherwise.
func (a *groupActor) appendLog(epoch uint64, h [32]byte, data []byte) (bool, error) {
	if a.writes.depth == 0 {
		return a.n.db.AppendLog(a.id, epoch, store.MessageHash(h), data)
	}
	tx := a.n.db.NewBatch()
	if err := tx.AppendLog(a.id, epoch, store.MessageHash(h), data); err != nil {
		return false, err
	}
	applied, err := tx.CommitNoSync()
	if err != nil {
		return false, err
	}
	a.writes.unsynced = true
	return applied[0], nil
}

// storeReceived adds a received message to the view and index and emits
// its event if it is new: at once (synced), or deferred inside beginWrites.
func (a *groupActor) storeReceived(sm store.Message) error {
	tx := a.n.db.NewBatch()
	if err := tx.AddMessage(sm); err != nil {
		return err
	}
	commit := tx.Commit
	if a.writes.depth > 0 {
		commit = tx.CommitNoSync
	}
	applied, err := commit()
	if err != nil || !applied[0] {
		return err
	}
	if !bytes.Equal(sm.Sender, a.n.selfID) {
		a.n.noteUnread(a.hexID)
	}
	m := a.n.apiMessage(a, sm)
	ev := api.Event{Kind: api.EventMessage, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &m}
	if a.writes.depth == 0 {
		a.n.emit(ev)
		return nil
	}
	a.writes.unsynced = true
	a.writes.events = append(a.writes.events, ev)
	if len(a.writes.events) >= maxHeldEvents {
		a.syncWrites()
	}
	return nil
}

// receiveQueued handles a gossip message and those already queued behind
// it (up to maxHeldEvents) with one sync between them: group commit. When
// messages arrive faster than one sync each can keep up with, as on a busy
// disk, the runs grow and the syncs per message fall instead of the queue.
func (a *groupActor) receiveQueued(data []byte) {
	a.beginWrites()
	defer a.endWrites()
	a.receive(data)
	for range maxHeldEvents - 1 {
		select {
		case data := <-a.inbound:
			a.receive(data)
		default:
			return
		}
	}
}
