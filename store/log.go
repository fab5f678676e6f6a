package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// LogEntry is one MLS message in the ciphertext log.
type LogEntry struct {
	Group   []byte
	Epoch   uint64
	Hash    MessageHash
	Message []byte
	// Seq is the arrival sequence number, unique and increasing per device.
	Seq uint64
	// Arrived is when the device first logged the message.
	Arrived time.Time
}

func logKey(g []byte, epoch uint64, h MessageHash) []byte {
	return newKey(spaceLog, 1+len(g)+8+MessageHashLen).group(g).u64(epoch).raw(h[:])
}

func arrivalKey(g []byte, seq uint64) []byte {
	return newKey(spaceLogArrival, 1+len(g)+8).group(g).u64(seq)
}

// AppendLog records an MLS message of a group seen in the given epoch, keyed
// by its hash. A message already logged is left alone and added is false;
// that is the dedup by message hash.
func (db *DB) AppendLog(group []byte, epoch uint64, hash MessageHash, msg []byte) (added bool, err error) {
	b := db.NewBatch()
	if err := b.AppendLog(group, epoch, hash, msg); err != nil {
		return false, err
	}
	applied, err := b.Commit()
	if err != nil {
		return false, err
	}
	return applied[0], nil
}

func checkLogEntry(group, msg []byte) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if len(msg) == 0 || len(msg) > MaxMLSMessageLen {
		return invalidf("MLS message of %d bytes, want 1..%d", len(msg), MaxMLSMessageLen)
	}
	return nil
}

// LogEntry returns one logged message, or ErrNotFound.
func (db *DB) LogEntry(group []byte, epoch uint64, hash MessageHash) (LogEntry, error) {
	if err := checkGroup(group); err != nil {
		return LogEntry{}, err
	}
	val, err := db.getRecord(logKey(group, epoch, hash))
	if err != nil {
		return LogEntry{}, err
	}
	e := LogEntry{Group: group, Epoch: epoch, Hash: hash}
	if err := decodeLogEntryInto(&e, val); err != nil {
		return LogEntry{}, fmt.Errorf("store: log: %w", err)
	}
	return e, nil
}

// LogByEpoch returns every logged message of a group's epoch in arrival
// order (by Seq). That is an order in which a receiver can decrypt them: an
// MLS member keeps only a bounded number of keys of skipped generations per
// sender (RFC 9420, Section 15.3; mls.SecretTreeConfig.MaxSkippedKeys), so
// hundreds of one sender's messages served in hash order (as the keys lie)
// would lose every message whose key fell out of that window.
func (db *DB) LogByEpoch(group []byte, epoch uint64) ([]LogEntry, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	var out []LogEntry
	prefix := newKey(spaceLog, 1+len(group)+8).group(group).u64(epoch)
	err = db.scan(prefix, func(k, v []byte) error {
		r := keyReader{b: k[len(prefix):]}
		var e LogEntry
		copy(e.Hash[:], r.fixed(MessageHashLen))
		if err := r.done(); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
		e.Group, e.Epoch = group, epoch
		if err := decodeLogEntryInto(&e, v); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
		out = append(out, e)
		return nil
	})
	slices.SortFunc(out, func(a, b LogEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, err
}

// LogSince returns up to limit logged messages of a group that arrived after
// the arrival sequence number afterSeq (0 for the beginning), in arrival
// order. Pass the last entry's Seq as the next cursor.
func (db *DB) LogSince(group []byte, afterSeq uint64, limit int) ([]LogEntry, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, invalidf("limit %d", limit)
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	var refs []LogEntry
	prefix := newKey(spaceLogArrival, 1+len(group)).group(group)
	start := arrivalKey(group, afterSeq+1)
	if afterSeq == ^uint64(0) {
		return nil, nil
	}
	err = db.scanRange(start, prefixEnd(prefix), func(k, v []byte) error {
		if len(refs) >= limit {
			return errStopScan
		}
		r := keyReader{b: k[len(prefix):]}
		seq := r.u64()
		if err := r.done(); err != nil {
			return fmt.Errorf("store: log arrival: %w", err)
		}
		epoch, hash, _, err := decodeLogRef(v)
		if err != nil {
			return fmt.Errorf("store: log arrival: %w", err)
		}
		refs = append(refs, LogEntry{Group: group, Epoch: epoch, Hash: hash, Seq: seq})
		return nil
	})
	if err != nil && err != errStopScan {
		return nil, err
	}
	out := refs[:0]
	for _, ref := range refs {
		val, err := db.get(logKey(group, ref.Epoch, ref.Hash))
		if err != nil {
			return nil, fmt.Errorf("store: log arrival %d points at missing entry: %w", ref.Seq, ErrCorrupt)
		}
		e := ref
		if err := decodeLogEntryInto(&e, val); err != nil {
			return nil, fmt.Errorf("store: log: %w", err)
		}
		if e.Seq != ref.Seq {
			return nil, corruptf("log entry seq %d, arrival index says %d", e.Seq, ref.Seq)
		}
		out = append(out, e)
	}
	return out, nil
}

// PruneLog deletes logged messages that arrived before olderThan and returns
// how many it deleted. It works in batches so a large prune does not build one
// huge batch.
func (db *DB) PruneLog(olderThan time.Time) (int, error) {
	release, err := db.use()
	if err != nil {
		return 0, err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	cutoff := timeToNanos(olderThan)
	deleted := 0
	b := db.pdb.NewBatch()
	defer func() { b.Close() }()
	pending := 0
	err = db.scan([]byte{spaceLogArrival}, func(k, v []byte) error {
		r := keyReader{b: k}
		r.space(spaceLogArrival)
		g := r.group()
		r.u64()
		if err := r.done(); err != nil {
			return fmt.Errorf("store: prune log: %w", err)
		}
		epoch, hash, arrived, err := decodeLogRef(v)
		if err != nil {
			return fmt.Errorf("store: prune log: %w", err)
		}
		if timeToNanos(arrived) >= cutoff {
			return nil
		}
		b.Delete(k, nil)
		b.Delete(logKey(g, epoch, hash), nil)
		pending++
		if pending >= 1000 {
			if err := db.commit(b); err != nil {
				return err
			}
			deleted += pending
			pending = 0
			b.Close()
			b = db.pdb.NewBatch()
		}
		return nil
	})
	if err != nil {
		return deleted, err
	}
	if err := db.commit(b); err != nil {
		return deleted, err
	}
	return deleted + pending, nil
}

func encodeLogEntry(seq uint64, arrived time.Time, msg []byte) []byte {
	e := newEnc(len(msg) + 24)
	e.uvarint(seq)
	e.time(arrived)
	e.bytes(msg)
	return e.b
}

func decodeLogEntryInto(out *LogEntry, val []byte) error {
	d := newDec(val, "log entry")
	out.Seq = d.uvarint()
	out.Arrived = d.time()
	out.Message = d.bytes(MaxMLSMessageLen)
	if d.err == nil && (len(out.Message) == 0 || out.Seq == 0) {
		d.fail("empty message or zero seq")
	}
	return d.finish()
}

func encodeLogRef(epoch uint64, h MessageHash, arrived time.Time) []byte {
	e := newEnc(MessageHashLen + 24)
	e.uvarint(epoch)
	e.fixed(h[:])
	e.time(arrived)
	return e.b
}

func decodeLogRef(val []byte) (epoch uint64, h MessageHash, arrived time.Time, err error) {
	d := newDec(val, "log arrival")
	epoch = d.uvarint()
	copy(h[:], d.fixed(MessageHashLen))
	arrived = d.time()
	return epoch, h, arrived, d.finish()
}

var logSeqKey = []byte{spaceMeta, 's'}

// loadCounters restores the in-memory counters from disk after Open.
func (db *DB) loadCounters() error {
	val, err := db.get(logSeqKey)
	switch {
	case err == ErrNotFound:
		db.logSeq = 0
	case err != nil:
		return err
	case len(val) != 8:
		return corruptf("log sequence of %d bytes", len(val))
	default:
		db.logSeq = binary.BigEndian.Uint64(val)
	}
	st, err := db.loadIndexStats()
	if err != nil {
		return err
	}
	db.stats = st
	if err := db.loadPresenceFilter(); err != nil {
		return err
	}
	return db.loadDocTable()
}
