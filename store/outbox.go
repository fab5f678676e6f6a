package store

import (
	"errors"
	"fmt"
	"time"
)

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("store: stop scan")

// OutboxState is the delivery state of an outbox entry.
type OutboxState uint8

const (
	// OutboxPending: written, not yet published.
	OutboxPending OutboxState = 1
	// OutboxSent: published in Epoch, which is not yet final.
	OutboxSent OutboxState = 2
	// OutboxConfirmed: Epoch is final; the plaintext may be deleted.
	OutboxConfirmed OutboxState = 3
)

func (s OutboxState) valid() bool { return s >= OutboxPending && s <= OutboxConfirmed }

// OutboxEntry is plaintext a user wrote, kept until its epoch is final so it
// can be re-sent if that epoch is orphaned.
type OutboxEntry struct {
	Group []byte
	ID    MessageID
	State OutboxState
	// Epoch is the epoch the message was (last) sent in; 0 while pending.
	Epoch     uint64
	Plaintext []byte
	Created   time.Time
}

func outboxKey(g []byte, id MessageID) []byte {
	return newKey(spaceOutbox, 1+len(g)+MessageIDLen).group(g).raw(id[:])
}

// PutOutbox writes an outbox entry (synced: losing it would lose what the
// user wrote).
func (db *DB) PutOutbox(e OutboxEntry) error {
	if err := checkOutbox(e); err != nil {
		return err
	}
	return db.setRecord(outboxKey(e.Group, e.ID), encodeOutbox(e))
}

func checkOutbox(e OutboxEntry) error {
	if err := checkGroup(e.Group); err != nil {
		return err
	}
	if !e.State.valid() {
		return invalidf("outbox state %d", e.State)
	}
	if len(e.Plaintext) > MaxTextLen {
		return invalidf("plaintext of %d bytes exceeds %d", len(e.Plaintext), MaxTextLen)
	}
	return nil
}

// SetOutboxState updates the state and epoch of an existing entry; it returns
// ErrNotFound if there is none.
func (db *DB) SetOutboxState(group []byte, id MessageID, state OutboxState, epoch uint64) error {
	if !state.valid() {
		return invalidf("outbox state %d", state)
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	e, err := db.Outbox(group, id)
	if err != nil {
		return err
	}
	e.State, e.Epoch = state, epoch
	return db.setRecord(outboxKey(group, id), encodeOutbox(e))
}

// Outbox returns one outbox entry, or ErrNotFound.
func (db *DB) Outbox(group []byte, id MessageID) (OutboxEntry, error) {
	if err := checkGroup(group); err != nil {
		return OutboxEntry{}, err
	}
	val, err := db.getRecord(outboxKey(group, id))
	if err != nil {
		return OutboxEntry{}, err
	}
	e, err := decodeOutbox(val)
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("store: outbox: %w", err)
	}
	e.Group, e.ID = group, id
	return e, nil
}

// OutboxEntries returns the outbox entries of a group (all groups if group is
// nil) in the given states (all states if none given), in key order. The node
// replays these on restart.
func (db *DB) OutboxEntries(group []byte, states ...OutboxState) ([]OutboxEntry, error) {
	prefix := []byte{spaceOutbox}
	if group != nil {
		if err := checkGroup(group); err != nil {
			return nil, err
		}
		prefix = newKey(spaceOutbox, 1+len(group)).group(group)
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	var out []OutboxEntry
	err = db.scan(prefix, func(k, v []byte) error {
		r := keyReader{b: k}
		r.space(spaceOutbox)
		g := r.group()
		id := r.fixed(MessageIDLen)
		if err := r.done(); err != nil {
			return fmt.Errorf("store: outbox: %w", err)
		}
		e, err := decodeOutbox(v)
		if err != nil {
			return fmt.Errorf("store: outbox: %w", err)
		}
		if len(states) > 0 && !containsState(states, e.State) {
			return nil
		}
		e.Group = g
		copy(e.ID[:], id)
		out = append(out, e)
		return nil
	})
	return out, err
}

func containsState(states []OutboxState, s OutboxState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// DeleteOutbox removes an outbox entry; removing a missing one is not an
// error. The deletion is not synced (it becomes durable with the next
// synced write, see Batch.CommitNoSync): the node deletes an entry once its
// epoch is final, for every message it sends, and losing the deletion in a
// crash only means the message is sent again, which receivers deduplicate
// by its id.
func (db *DB) DeleteOutbox(group []byte, id MessageID) error {
	b := db.NewBatch()
	if err := b.DeleteOutbox(group, id); err != nil {
		return err
	}
	_, err := b.CommitNoSync()
	return err
}

func encodeOutbox(o OutboxEntry) []byte {
	e := newEnc(len(o.Plaintext) + 24)
	e.u8(uint8(o.State))
	e.uvarint(o.Epoch)
	e.time(o.Created)
	e.bytes(o.Plaintext)
	return e.b
}

func decodeOutbox(val []byte) (OutboxEntry, error) {
	d := newDec(val, "outbox entry")
	var o OutboxEntry
	o.State = OutboxState(d.u8())
	o.Epoch = d.uvarint()
	o.Created = d.time()
	o.Plaintext = d.bytes(MaxTextLen)
	if d.err == nil && !o.State.valid() {
		d.fail("unknown state %d", o.State)
	}
	return o, d.finish()
}
