package store

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

var identityKey = []byte{spaceIdentity}

// SetIdentity stores the device identity (an opaque blob chosen by the node,
// e.g. its serialised peer key and credential), replacing any previous one.
func (db *DB) SetIdentity(identity []byte) error {
	if len(identity) == 0 || len(identity) > MaxBlobLen {
		return invalidf("identity of %d bytes, want 1..%d", len(identity), MaxBlobLen)
	}
	return db.setRecord(identityKey, encodeBlob(identity))
}

// Identity returns the device identity, or ErrNotFound.
func (db *DB) Identity() ([]byte, error) {
	val, err := db.getRecord(identityKey)
	if err != nil {
		return nil, err
	}
	b, err := decodeBlob(val)
	if err != nil {
		return nil, fmt.Errorf("store: identity: %w", err)
	}
	return b, nil
}

func settingKey(name string) []byte {
	return newKey(spaceSetting, len(name)).raw([]byte(name))
}

func checkSettingName(name string) error {
	if len(name) == 0 || len(name) > MaxSettingNameLen {
		return invalidf("setting name of %d bytes, want 1..%d", len(name), MaxSettingNameLen)
	}
	return nil
}

// SetSetting stores a named setting; value is opaque (at most MaxBlobLen).
func (db *DB) SetSetting(name string, value []byte) error {
	if err := checkSettingName(name); err != nil {
		return err
	}
	if len(value) > MaxBlobLen {
		return invalidf("setting value of %d bytes exceeds %d", len(value), MaxBlobLen)
	}
	return db.setRecord(settingKey(name), encodeBlob(value))
}

// Setting returns a named setting, or ErrNotFound.
func (db *DB) Setting(name string) ([]byte, error) {
	if err := checkSettingName(name); err != nil {
		return nil, err
	}
	val, err := db.getRecord(settingKey(name))
	if err != nil {
		return nil, err
	}
	b, err := decodeBlob(val)
	if err != nil {
		return nil, fmt.Errorf("store: setting %q: %w", name, err)
	}
	return b, nil
}

// DeleteSetting removes a named setting; removing a missing one is not an error.
func (db *DB) DeleteSetting(name string) error {
	if err := checkSettingName(name); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()
	// Settings may hold secrets (keys the node keeps there), so the
	// deletion is purged like an epoch state's.
	k := settingKey(name)
	b := db.pdb.NewBatch()
	defer b.Close()
	b.Delete(k, nil)
	db.notePurge(b, keyRange{k, append(slices.Clone(k), 0)})
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: delete setting: %w", err)
	}
	return nil
}

func encodeBlob(b []byte) []byte {
	e := newEnc(len(b) + 4)
	e.bytes(b)
	return e.b
}

func decodeBlob(val []byte) ([]byte, error) {
	d := newDec(val, "blob")
	b := d.bytes(MaxBlobLen)
	return b, d.finish()
}

func (db *DB) setRecord(key, val []byte) error {
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	if err := db.pdb.Set(key, val, pebble.Sync); err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	return nil
}

func (db *DB) getRecord(key []byte) ([]byte, error) {
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	return db.get(key)
}
