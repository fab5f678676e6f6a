package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Content operations: what members do to a message after sending it
// (react, edit, delete, read receipts). Each operation is its own record,
// keyed by its target, so that one arriving before its target waits for
// it, one arriving twice is stored once, and the state of a message is a
// fold of its operations in an order that does not depend on arrival
// (the node does the folding; store keeps the records and rewrites the
// view and the index when the fold changes a message's text).
//
//	spaceContent | group | target id(16) | kind(1) | sender | op id(16) -> Op record
//
// The group follows the space byte, like every per-group space, so
// DeleteGroup drops a group's operations with one range.
const spaceContent byte = 0x78

// MaxOpLen bounds an operation's value (an edit holds a message text).
const MaxOpLen = MaxTextLen + 4<<10

// Op is one content operation on a target message.
type Op struct {
	Group  []byte
	Target MessageID
	Kind   uint8 // the node's operation kind, opaque here
	Sender []byte
	ID     MessageID
	Time   time.Time
	Value  []byte // opaque; may hold plaintext (purged by DeleteOps)
}

func opPrefix(g []byte, target MessageID) keyBuf {
	return newKey(spaceContent, 1+len(g)+MessageIDLen+2+MaxSenderLen+MessageIDLen).group(g).raw(target[:])
}

func opKey(o *Op) []byte {
	return opPrefix(o.Group, o.Target).raw([]byte{o.Kind}).sender(o.Sender).raw(o.ID[:])
}

func checkOp(o *Op) error {
	if err := checkGroup(o.Group); err != nil {
		return err
	}
	if err := checkSender(o.Sender); err != nil {
		return err
	}
	if len(o.Value) > MaxOpLen {
		return invalidf("operation of %d bytes exceeds %d", len(o.Value), MaxOpLen)
	}
	return nil
}

func encodeOp(o *Op) []byte {
	e := newEnc(len(o.Value) + 16)
	e.time(o.Time)
	e.bytes(o.Value)
	return e.b
}

func decodeOpEntry(k, v []byte) (Op, error) {
	r := keyReader{b: k}
	r.space(spaceContent)
	var o Op
	o.Group = r.group()
	copy(o.Target[:], r.fixed(MessageIDLen))
	if kb := r.fixed(1); kb != nil {
		o.Kind = kb[0]
	}
	o.Sender = r.sender()
	copy(o.ID[:], r.fixed(MessageIDLen))
	if err := r.done(); err != nil {
		return Op{}, fmt.Errorf("store: content operation: %w", err)
	}
	d := newDec(v, "content operation")
	o.Time = d.time()
	o.Value = d.bytes(MaxOpLen)
	if err := d.finish(); err != nil {
		return Op{}, fmt.Errorf("store: content operation: %w", err)
	}
	return o, nil
}

// PutOp stores an operation unless one with the same target, kind, sender
// and id is stored already (a duplicate: added is false, nothing
// written), or, with replace, overwrites it. With sync false the write
// becomes durable with the next synced write (see Batch.CommitNoSync).
func (db *DB) PutOp(o Op, replace, sync bool) (added bool, err error) {
	if err := checkOp(&o); err != nil {
		return false, err
	}
	release, err := db.use()
	if err != nil {
		return false, err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	k := opKey(&o)
	if !replace {
		if ok, err := db.has(k); err != nil || ok {
			return false, err
		}
	}
	wo := pebble.Sync
	if !sync {
		wo = pebble.NoSync
	}
	if err := db.pdb.Set(k, encodeOp(&o), wo); err != nil {
		return false, fmt.Errorf("store: write: %w", err)
	}
	return true, nil
}

// Ops returns the operations on target in a group, in key order (by kind,
// sender, id).
func (db *DB) Ops(group []byte, target MessageID) ([]Op, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	return db.scanOps(opPrefix(group, target))
}

// GroupOps returns every operation of a group, grouped by target.
func (db *DB) GroupOps(group []byte) ([]Op, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	return db.scanOps(newKey(spaceContent, 1+len(group)).group(group))
}

func (db *DB) scanOps(prefix []byte) ([]Op, error) {
	var out []Op
	err := db.scan(prefix, func(k, v []byte) error {
		o, err := decodeOpEntry(k, v)
		if err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// DeleteOps deletes the operations on target of the given kinds (every
// kind if none is given) and notes them for PurgeDeleted: an edit holds
// the text it replaced a deleted message's with.
func (db *DB) DeleteOps(group []byte, target MessageID, kinds ...uint8) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()
	b := db.pdb.NewBatch()
	defer b.Close()
	if err := db.deleteOpsInto(b, group, target, kinds); err != nil {
		return err
	}
	return db.commit(b)
}

func (db *DB) deleteOpsInto(b *pebble.Batch, group []byte, target MessageID, kinds []uint8) error {
	p := opPrefix(group, target)
	var keys [][]byte
	err := db.scan(p, func(k, _ []byte) error {
		if len(k) > len(p) && (len(kinds) == 0 || slices.Contains(kinds, k[len(p)])) {
			keys = append(keys, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		b.Delete(k, nil)
	}
	if len(keys) > 0 {
		db.notePurge(b, keyRange{slices.Clone(p), prefixEnd(p)})
	}
	return nil
}

// ReplaceText replaces the text of sender's message id in the view and
// the search index (an edit: the old text is no longer found) and adds
// FlagEdited. The old text is noted for PurgeDeleted. It returns
// ErrNotFound if the view holds no such message.
func (db *DB) ReplaceText(group, sender []byte, id MessageID, text string) error {
	if len(text) > MaxTextLen {
		return invalidf("text of %d bytes exceeds %d", len(text), MaxTextLen)
	}
	return db.rewrite(group, sender, id, func(m *Message, b *pebble.Batch) error {
		m.Text = text
		m.Flags |= FlagEdited
		return nil
	})
}

// Tombstone marks sender's message id as deleted for everyone: its text
// is emptied, its metadata replaced by meta, its postings removed, the
// operations on it of purgeKinds and the outbox entries named by outbox
// deleted, all in one synced batch and noted for PurgeDeleted. It returns
// ErrNotFound if the view holds no such message.
func (db *DB) Tombstone(group, sender []byte, id MessageID, meta []byte, purgeKinds []uint8, outbox []MessageID) error {
	if len(meta) > MaxMetaLen {
		return invalidf("metadata of %d bytes exceeds %d", len(meta), MaxMetaLen)
	}
	return db.rewrite(group, sender, id, func(m *Message, b *pebble.Batch) error {
		m.Text, m.Meta, m.Extra = "", slices.Clone(meta), ""
		m.Flags = m.Flags&^FlagEdited | FlagDeleted
		if len(purgeKinds) > 0 {
			if err := db.deleteOpsInto(b, group, id, purgeKinds); err != nil {
				return err
			}
		}
		for _, oid := range outbox {
			k := outboxKey(group, oid)
			b.Delete(k, nil)
			db.notePurge(b, keyRange{k, append(slices.Clone(k), 0)})
		}
		return nil
	})
}

// rewrite loads sender's message id, lets change modify it (and add to
// the batch), and writes it back re-indexed under a new document number.
func (db *DB) rewrite(group, sender []byte, id MessageID, change func(*Message, *pebble.Batch) error) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if err := checkSender(sender); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()
	ms, docs, keys, err := db.lookupMessages(group, id, sender)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return ErrNotFound
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	ix := db.newIndexer(b)
	for i := range ms {
		old := ms[i]
		ix.remove(&old, docs[i])
		m := ms[i]
		if err := change(&m, b); err != nil {
			return err
		}
		if !bytes.Equal(m.Sender, sender) {
			return corruptf("view record of another sender")
		}
		doc := ix.add(&m, m.Time.UnixNano())
		b.Set(keys[i], encodeMessage(&m, doc), nil)
		db.notePurge(b, keyRange{keys[i], append(slices.Clone(keys[i]), 0)})
	}
	if err := ix.finish(); err != nil {
		return err
	}
	if err := db.commit(b); err != nil {
		return err
	}
	ix.publish()
	return nil
}
