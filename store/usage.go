package store

import "fmt"

// Usage is the estimated on-disk size of the database by kind of data, in
// bytes (Pebble's estimate from sstable metadata; data still only in the
// memtable and WAL is not counted).
type Usage struct {
	Index  uint64 // search postings and statistics
	View   uint64 // decrypted messages and dedup markers
	Log    uint64 // ciphertext log and its arrival index
	States uint64 // epoch states and markers
	Other  uint64 // identity, settings, groups, outbox, schema
}

// Total is the sum of all kinds.
func (u Usage) Total() uint64 { return u.Index + u.View + u.Log + u.States + u.Other }

// DiskUsage estimates the on-disk size of each kind of data, e.g. for
// metrics or to show the user what history costs.
func (db *DB) DiskUsage() (Usage, error) {
	release, err := db.use()
	if err != nil {
		return Usage{}, err
	}
	defer release()
	est := func(from, to byte) (uint64, error) {
		n, err := db.pdb.EstimateDiskUsage([]byte{from}, []byte{to})
		if err != nil {
			return 0, fmt.Errorf("store: disk usage: %w", err)
		}
		return n, nil
	}
	var u Usage
	parts := []struct {
		dst      *uint64
		from, to byte
	}{
		{&u.Other, 0x00, spaceEpochState},
		{&u.States, spaceEpochState, spaceLog},
		{&u.Log, spaceLog, spaceOutbox},
		{&u.Other, spaceOutbox, spaceView},
		{&u.View, spaceView, spacePosting},
		{&u.Index, spacePosting, 0xff},
	}
	for _, p := range parts {
		n, err := est(p.from, p.to)
		if err != nil {
			return Usage{}, err
		}
		*p.dst += n
	}
	return u, nil
}
