package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Batch collects writes that belong together and commits them as one Pebble
// batch with one sync: for instance everything one message changes (its
// outbox entry, its ciphertext in the log, its view record and search
// postings, the epoch state whose key it consumed), or a whole page of
// messages fetched by a resync. Either every write of a committed Batch
// survives a crash or none does, and the batch costs one fsync instead of
// one per record.
//
// Arguments are checked when a write is added; nothing is read or written
// until Commit, so the dedup checks (by message hash for the log, by
// application message id for the view) see the database as of Commit and
// the earlier writes of the same Batch. Message ids are deduplicated per
// sender: see dedupKey. A Batch is not safe for concurrent
// use; it may be committed once. Discard a Batch that will not be committed:
// it holds copies of epoch states, which are secrets.
type Batch struct {
	db        *DB
	ops       []batchOp
	committed bool
}

type batchOpKind uint8

const (
	opAppendLog batchOpKind = iota + 1
	opAddMessage
	opPutEpochState
	opPutGroup
	opPutOutbox
	opSetOutboxState
	opDeleteOutbox
)

// batchOp is one write of a Batch. Which fields are set depends on kind.
type batchOp struct {
	kind  batchOpKind
	group []byte
	// opAppendLog
	epoch uint64
	hash  MessageHash
	msg   []byte
	// opAddMessage
	m Message
	// opPutEpochState, opPutGroup, opPutOutbox: the record, encoded
	key, val []byte
	// opPutOutbox, opSetOutboxState, opDeleteOutbox
	id    MessageID
	state OutboxState
}

// NewBatch returns an empty Batch of writes to db.
func (db *DB) NewBatch() *Batch { return &Batch{db: db} }

// Len returns the number of writes added so far; the next write added gets
// this index in the slice Commit returns.
func (b *Batch) Len() int { return len(b.ops) }

// AppendLog adds AppendLog's write: the MLS message is logged unless its
// hash is already logged for that group and epoch.
func (b *Batch) AppendLog(group []byte, epoch uint64, hash MessageHash, msg []byte) error {
	if err := checkLogEntry(group, msg); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opAppendLog, group: group, epoch: epoch, hash: hash, msg: msg})
	return nil
}

// AddMessage adds AddMessage's write: the message goes into the view and
// the search index unless its id was already seen in the group.
func (b *Batch) AddMessage(m Message) error {
	if err := checkMessage(&m); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opAddMessage, m: m})
	return nil
}

// PutEpochState adds PutEpochState's write. The state is copied (st.State
// may be zeroed by the caller at once); the copy is zeroed by Commit or
// Discard.
func (b *Batch) PutEpochState(group []byte, st EpochState) error {
	if err := checkEpochState(group, st); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opPutEpochState, key: epochKey(spaceEpochState, group, st.EID), val: encodeEpochState(st)})
	return nil
}

// PutGroup adds PutGroup's write.
func (b *Batch) PutGroup(group []byte, meta GroupMeta) error {
	if err := checkGroupMeta(group, meta); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opPutGroup, key: groupKey(group), val: encodeGroupMeta(meta)})
	return nil
}

// PutOutbox adds PutOutbox's write.
func (b *Batch) PutOutbox(e OutboxEntry) error {
	if err := checkOutbox(e); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opPutOutbox, group: e.Group, id: e.ID, key: outboxKey(e.Group, e.ID), val: encodeOutbox(e)})
	return nil
}

// SetOutboxState adds SetOutboxState's write. Unlike DB.SetOutboxState, an
// entry that does not exist at Commit (in the database or earlier in the
// batch) is not an error: the write is skipped and reported as not applied,
// so that the other writes of the batch are not lost over an entry deleted
// meanwhile.
func (b *Batch) SetOutboxState(group []byte, id MessageID, state OutboxState, epoch uint64) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if !state.valid() {
		return invalidf("outbox state %d", state)
	}
	b.ops = append(b.ops, batchOp{kind: opSetOutboxState, group: group, id: id, state: state, epoch: epoch, key: outboxKey(group, id)})
	return nil
}

// DeleteOutbox adds DeleteOutbox's write.
func (b *Batch) DeleteOutbox(group []byte, id MessageID) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	b.ops = append(b.ops, batchOp{kind: opDeleteOutbox, group: group, id: id, key: outboxKey(group, id)})
	return nil
}

// Discard drops the writes of an uncommitted Batch and zeroes the copies of
// epoch states it holds. Discarding a committed Batch does nothing.
func (b *Batch) Discard() {
	b.wipe()
	b.ops = nil
}

func (b *Batch) wipe() {
	for i := range b.ops {
		if b.ops[i].kind == opPutEpochState {
			clear(b.ops[i].val)
		}
	}
}

// Commit applies every write in one Pebble batch and syncs it once. It
// returns, for each write in the order added, whether it changed anything:
// false for a log entry or message that was already stored (the dedup of
// AppendLog and AddMessage) and for a SetOutboxState of a missing entry.
// On error nothing was written. An empty Batch commits without touching the
// disk. A Batch is committed at most once.
func (b *Batch) Commit() (applied []bool, err error) {
	return b.commit(pebble.Sync)
}

// CommitNoSync applies the writes like Commit, atomically and visible to
// every later read, but returns without waiting for the disk: they become
// durable with the next synced write to the database or DB.Sync. The write-
// ahead log is a sequence, so a crash can lose only a suffix of the no-sync
// writes, never one that was followed by a synced write. A caller that
// must not acknowledge a write before it is durable calls DB.Sync first.
func (b *Batch) CommitNoSync() (applied []bool, err error) {
	return b.commit(pebble.NoSync)
}

func (b *Batch) commit(wo *pebble.WriteOptions) (applied []bool, err error) {
	if b.committed {
		return nil, invalidf("batch already committed")
	}
	b.committed = true
	defer b.wipe()
	applied = make([]bool, len(b.ops))
	if len(b.ops) == 0 {
		return applied, nil
	}
	db := b.db
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()

	pb := db.pdb.NewBatch()
	defer pb.Close()
	ix := db.newIndexer(pb)
	now := db.opts.Now()
	seq := db.logSeq
	// Keys of log entries and dedup markers written by this batch, for the
	// dedup of later writes of the same batch and, after the commit, for
	// the presence filter.
	written := map[string]bool{}
	var newKeys [][]byte
	// Outbox entries as this batch leaves them (nil: deleted), so that a
	// SetOutboxState sees an earlier PutOutbox or DeleteOutbox.
	outbox := map[string][]byte{}
	writes := make([]kv, 0, 2*len(b.ops))
	for i := range b.ops {
		op := &b.ops[i]
		switch op.kind {
		case opAppendLog:
			k := logKey(op.group, op.epoch, op.hash)
			dup := written[string(k)]
			if !dup {
				if dup, err = db.hasFiltered(k); err != nil {
					return nil, err
				}
			}
			if dup {
				continue
			}
			seq++
			writes = append(writes,
				kv{k, encodeLogEntry(seq, now, op.msg)},
				kv{arrivalKey(op.group, seq), encodeLogRef(op.epoch, op.hash, now)})
			written[string(k)] = true
			newKeys = append(newKeys, k)
		case opAddMessage:
			m := &op.m
			dk := dedupKey(m.Group, m.ID, m.Sender)
			dup := written[string(dk)]
			if !dup {
				if dup, err = db.seenLocked(dk, m.Group, m.ID); err != nil {
					return nil, err
				}
			}
			if dup {
				continue
			}
			ts := m.Time.UnixNano()
			doc := ix.add(m, ts)
			writes = append(writes,
				kv{viewKey(m.Group, ts, m.ID, m.Sender), encodeMessage(m, doc)},
				kv{dk, encodeDedup(dedupRecord{seen: now, inView: true, ts: ts})})
			written[string(dk)] = true
			newKeys = append(newKeys, dk)
		case opPutEpochState, opPutGroup:
			writes = append(writes, kv{op.key, op.val})
		case opPutOutbox:
			writes = append(writes, kv{op.key, op.val})
			outbox[string(op.key)] = op.val
		case opSetOutboxState:
			cur, ok := outbox[string(op.key)]
			if !ok {
				cur, err = db.get(op.key)
				if err == ErrNotFound {
					cur, err = nil, nil
				}
				if err != nil {
					return nil, err
				}
			}
			if cur == nil {
				continue
			}
			e, err := decodeOutbox(cur)
			if err != nil {
				return nil, fmt.Errorf("store: outbox: %w", err)
			}
			e.State, e.Epoch = op.state, op.epoch
			val := encodeOutbox(e)
			writes = append(writes, kv{op.key, val})
			outbox[string(op.key)] = val
		case opDeleteOutbox:
			writes = append(writes, kv{k: op.key})
			outbox[string(op.key)] = nil
			// The entry holds plaintext. Its group's whole outbox is
			// noted, so that a purge after many sends compacts one
			// range rather than one per message.
			p := newKey(spaceOutbox, 1+len(op.group)).group(op.group)
			db.notePurge(pb, keyRange{p, prefixEnd(p)})
		}
		applied[i] = true
	}
	// Sorted inserts are cheaper for the memtable (see indexer.finish); the
	// sort is stable so that two writes of one key keep their order.
	slices.SortStableFunc(writes, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	for _, w := range writes {
		if w.v == nil {
			pb.Delete(w.k, nil)
		} else {
			pb.Set(w.k, w.v, nil)
		}
	}
	if seq != db.logSeq {
		// The counter is persisted so pruning the newest entries never
		// lets a sequence number be reused (peers page through the log by
		// it).
		pb.Set(logSeqKey, binary.BigEndian.AppendUint64(nil, seq), nil)
	}
	if len(ix.added) > 0 || len(ix.removes) > 0 {
		if err := ix.finish(); err != nil {
			return nil, err
		}
	}
	if err := pb.Commit(wo); err != nil {
		return nil, fmt.Errorf("store: commit: %w", err)
	}
	db.logSeq = seq
	ix.publish()
	db.present.add(newKeys...)
	return applied, nil
}

// Sync makes every write committed before it durable (those of
// CommitNoSync; every other write of this package is synced already).
func (db *DB) Sync() error {
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// kv is one key/value write; a nil value is a deletion.
type kv struct{ k, v []byte }
