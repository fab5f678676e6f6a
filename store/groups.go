package store

import (
	"fmt"
	"time"
)

// GroupMeta is the per-group metadata record.
type GroupMeta struct {
	// Name is a display name (at most MaxSettingNameLen bytes).
	Name string
	// Created is when this device joined or created the group.
	Created time.Time
	// Data is opaque node data (at most MaxBlobLen bytes).
	Data []byte
}

// EpochState is a retained MLS group state, named by its epoch id.
type EpochState struct {
	EID   EpochID
	Epoch uint64
	// State is the serialised MLS group state: secret material.
	State []byte
}

// EpochMark records the fate of an epoch once its state is no longer needed
// for sending.
type EpochMark uint8

const (
	// MarkFinal: the epoch is final; its state has been deleted.
	MarkFinal EpochMark = 1
	// MarkOrphaned: the epoch lost fork choice; its state may be kept only
	// to decrypt messages sent on that branch.
	MarkOrphaned EpochMark = 2
)

// EpochMarker is the persisted fate of an epoch.
type EpochMarker struct {
	EID   EpochID
	Epoch uint64
	Mark  EpochMark
	At    time.Time
}

func groupKey(g []byte) []byte { return newKey(spaceGroup, 1+len(g)).group(g) }

func epochKey(space byte, g []byte, eid EpochID) []byte {
	return newKey(space, 1+len(g)+EpochIDLen).group(g).raw(eid[:])
}

// PutGroup creates or replaces a group's metadata.
func (db *DB) PutGroup(group []byte, meta GroupMeta) error {
	if err := checkGroupMeta(group, meta); err != nil {
		return err
	}
	return db.setRecord(groupKey(group), encodeGroupMeta(meta))
}

func checkGroupMeta(group []byte, meta GroupMeta) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if len(meta.Name) > MaxSettingNameLen || len(meta.Data) > MaxBlobLen {
		return invalidf("group name or data too long")
	}
	return nil
}

// Group returns a group's metadata, or ErrNotFound.
func (db *DB) Group(group []byte) (GroupMeta, error) {
	if err := checkGroup(group); err != nil {
		return GroupMeta{}, err
	}
	val, err := db.getRecord(groupKey(group))
	if err != nil {
		return GroupMeta{}, err
	}
	m, err := decodeGroupMeta(val)
	if err != nil {
		return GroupMeta{}, fmt.Errorf("store: group %x: %w", group, err)
	}
	return m, nil
}

// Groups returns the ids of all groups with metadata, in key order.
func (db *DB) Groups() ([][]byte, error) {
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	var out [][]byte
	err = db.scan([]byte{spaceGroup}, func(k, v []byte) error {
		r := keyReader{b: k}
		r.space(spaceGroup)
		g := r.group()
		if err := r.done(); err != nil {
			return fmt.Errorf("store: groups: %w", err)
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// PutEpochState stores a retained epoch state (synced).
func (db *DB) PutEpochState(group []byte, st EpochState) error {
	if err := checkEpochState(group, st); err != nil {
		return err
	}
	val := encodeEpochState(st)
	defer clear(val)
	return db.setRecord(epochKey(spaceEpochState, group, st.EID), val)
}

func checkEpochState(group []byte, st EpochState) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	if len(st.State) == 0 || len(st.State) > MaxStateLen {
		return invalidf("epoch state of %d bytes, want 1..%d", len(st.State), MaxStateLen)
	}
	return nil
}

// EpochState returns the retained state of an epoch, or ErrNotFound.
func (db *DB) EpochState(group []byte, eid EpochID) (EpochState, error) {
	if err := checkGroup(group); err != nil {
		return EpochState{}, err
	}
	val, err := db.getRecord(epochKey(spaceEpochState, group, eid))
	if err != nil {
		return EpochState{}, err
	}
	st, err := decodeEpochState(val)
	if err == nil && st.EID != eid {
		err = corruptf("epoch state under eid %x names eid %x", eid, st.EID)
	}
	if err != nil {
		return EpochState{}, fmt.Errorf("store: epoch state: %w", err)
	}
	return st, nil
}

// EpochStates returns every retained epoch state of a group, ordered by eid.
func (db *DB) EpochStates(group []byte) ([]EpochState, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	var out []EpochState
	err = db.scan(newKey(spaceEpochState, 1+len(group)).group(group), func(k, v []byte) error {
		st, err := decodeEpochState(v)
		if err != nil {
			return fmt.Errorf("store: epoch states: %w", err)
		}
		out = append(out, st)
		return nil
	})
	return out, err
}

// DeleteEpochState deletes a retained epoch state. The bytes remain on disk
// until PurgeDeleted runs.
func (db *DB) DeleteEpochState(group []byte, eid EpochID) error {
	return db.markEpoch(group, EpochMarker{EID: eid}, true)
}

// FinaliseEpoch deletes the epoch's state and records it as final, in one
// batch. The bytes remain on disk until PurgeDeleted runs.
func (db *DB) FinaliseEpoch(group []byte, eid EpochID, epoch uint64) error {
	return db.markEpoch(group, EpochMarker{EID: eid, Epoch: epoch, Mark: MarkFinal, At: db.opts.Now()}, true)
}

// OrphanEpoch records that an epoch lost fork choice. Its state is kept (to
// decrypt messages sent on that branch) until DeleteEpochState.
func (db *DB) OrphanEpoch(group []byte, eid EpochID, epoch uint64) error {
	return db.markEpoch(group, EpochMarker{EID: eid, Epoch: epoch, Mark: MarkOrphaned, At: db.opts.Now()}, false)
}

func (db *DB) markEpoch(group []byte, m EpochMarker, deleteState bool) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()
	b := db.pdb.NewBatch()
	defer b.Close()
	if deleteState {
		k := epochKey(spaceEpochState, group, m.EID)
		b.Delete(k, nil)
		db.notePurge(b, keyRange{k, append(append([]byte(nil), k...), 0)})
	}
	if m.Mark != 0 {
		b.Set(epochKey(spaceEpochMark, group, m.EID), encodeEpochMarker(m), nil)
	}
	return db.commit(b)
}

// EpochMarker returns the recorded fate of an epoch, or ErrNotFound.
func (db *DB) EpochMarker(group []byte, eid EpochID) (EpochMarker, error) {
	if err := checkGroup(group); err != nil {
		return EpochMarker{}, err
	}
	val, err := db.getRecord(epochKey(spaceEpochMark, group, eid))
	if err != nil {
		return EpochMarker{}, err
	}
	m, err := decodeEpochMarker(val)
	if err == nil && m.EID != eid {
		err = corruptf("epoch marker under eid %x names eid %x", eid, m.EID)
	}
	if err != nil {
		return EpochMarker{}, fmt.Errorf("store: epoch marker: %w", err)
	}
	return m, nil
}

func encodeGroupMeta(m GroupMeta) []byte {
	e := newEnc(len(m.Name) + len(m.Data) + 16)
	e.bytes([]byte(m.Name))
	e.time(m.Created)
	e.bytes(m.Data)
	return e.b
}

func decodeGroupMeta(val []byte) (GroupMeta, error) {
	d := newDec(val, "group meta")
	var m GroupMeta
	m.Name = string(d.bytes(MaxSettingNameLen))
	m.Created = d.time()
	m.Data = d.bytes(MaxBlobLen)
	return m, d.finish()
}

func encodeEpochState(s EpochState) []byte {
	e := newEnc(EpochIDLen + len(s.State) + 16)
	e.fixed(s.EID[:])
	e.uvarint(s.Epoch)
	e.bytes(s.State)
	return e.b
}

func decodeEpochState(val []byte) (EpochState, error) {
	d := newDec(val, "epoch state")
	var s EpochState
	copy(s.EID[:], d.fixed(EpochIDLen))
	s.Epoch = d.uvarint()
	s.State = d.bytes(MaxStateLen)
	if d.err == nil && len(s.State) == 0 {
		d.fail("empty state")
	}
	return s, d.finish()
}

func encodeEpochMarker(m EpochMarker) []byte {
	e := newEnc(EpochIDLen + 24)
	e.fixed(m.EID[:])
	e.uvarint(m.Epoch)
	e.u8(uint8(m.Mark))
	e.time(m.At)
	return e.b
}

func decodeEpochMarker(val []byte) (EpochMarker, error) {
	d := newDec(val, "epoch marker")
	var m EpochMarker
	copy(m.EID[:], d.fixed(EpochIDLen))
	m.Epoch = d.uvarint()
	m.Mark = EpochMark(d.u8())
	m.At = d.time()
	if d.err == nil && m.Mark != MarkFinal && m.Mark != MarkOrphaned {
		d.fail("unknown mark %d", m.Mark)
	}
	return m, d.finish()
}
