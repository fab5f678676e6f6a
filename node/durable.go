package node

import (
	"bytes"
	"time"

	"grove/node/api"
	"grove/store"
)

// deferredWrites makes the writes of received messages durable in the
// background of the actor's work instead of one sync each (ARCHITECTURE.md
// section 4: synced where loss would matter).
//
// Between beginWrites and the matching endWrites (nested calls count), the
// view and log writes of received messages are applied at once but without
// a sync (store.Batch.CommitNoSync), and each message's event is emitted as
// soon as its writes are applied: the message is then stored (Log, Search
// and Seen find it), though not yet durable. The writes become durable with
// the next synced write of the database, at the latest at the actor's next
// flush (Config.PersistEvery), which syncs once for all of them.
//
// Why that loses nothing: Pebble's write-ahead log is a sequence, so a
// crash loses at most an unsynced suffix of these writes, never one that a
// synced write (an epoch state, the commit order, an own send) followed,
// and no write reaches the disk ahead of one it depends on. A received
// message whose writes are lost is not logged either; the log is the
// "already processed" marker, so the resync after the restart (and the
// periodic anti-entropy sync) fetches it again from any member's log and
// processes it as new. Its sender made it durable (outbox, view, log, the
// consumed sending key: one synced batch) before publishing it. What a
// crash can cost is that a message shown just before it is missing after
// the restart until that resync brings it back.
//
// Why not one sync per message, as before: in a testnet every message cost
// one fsync per receiver on one disk (nine per message at ten nodes), and
// those fsyncs, not the decryption, were most of the gap between Grove's
// delivery latency and bare GossipSub's (BenchmarkChat; see the commit that
// made this change for the numbers).
type deferredWrites struct {
	depth    int
	unsynced bool
}

func (a *groupActor) beginWrites() { a.writes.depth++ }

func (a *groupActor) endWrites() { a.writes.depth-- }

// syncWrites makes the deferred writes durable (flush calls it).
func (a *groupActor) syncWrites() {
	if !a.writes.unsynced {
		return
	}
	if err := a.n.db.Sync(); err != nil {
		// Still unsynced: the next flush tries again.
		a.log.Error("sync received messages", "err", err)
		return
	}
	a.writes.unsynced = false
}

// appendLog logs a handled message: without a sync inside beginWrites,
// synced otherwise.
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

// storeReceived adds a received message to the view and index and, if it
// is new, emits its event once it is stored: synced first outside
// beginWrites, made durable by the next flush inside.
func (a *groupActor) storeReceived(sm store.Message) error {
	sm.Time = clampSenderTime(sm.Time, a.n.cfg.Clock.Now())
	tx := a.n.db.NewBatch()
	if err := tx.AddMessage(sm); err != nil {
		return err
	}
	commit := tx.Commit
	if a.writes.depth > 0 {
		commit = tx.CommitNoSync
		a.writes.unsynced = true
	}
	applied, err := commit()
	if err != nil || !applied[0] {
		return err
	}
	if !bytes.Equal(sm.Sender, a.n.selfID) {
		a.n.noteUnread(a.hexID)
	}
	m := a.n.apiMessage(a, sm)
	a.n.emit(api.Event{Kind: api.EventMessage, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &m})
	return nil
}

// maxFutureSkew is how far ahead of its receipt a message's sender time may
// be and still be shown and ordered as the sender set it.
const maxFutureSkew = 5 * time.Minute

// clampSenderTime returns the time a received message is shown and ordered
// by: the sender's time, unless that is more than maxFutureSkew ahead of
// its receipt, then the receipt time. The sender's clock is the sender's
// word: without a bound a member could pin a message to the end of every
// view (or, with a copied id, order it anywhere) by dating it years ahead.
// Honest clocks a few minutes fast keep their times. The past is not
// clamped: a device that was offline receives, by sync, messages that are
// legitimately days old, and a receipt-relative bound would re-date them
// all to the moment of the sync.
func clampSenderTime(sent, received time.Time) time.Time {
	if sent.After(received.Add(maxFutureSkew)) {
		return received
	}
	return sent
}
