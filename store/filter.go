package store

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// presenceFilter is an in-memory Bloom filter over the keys whose existence
// writers check before writing (dedup markers, ciphertext log entries). Almost
// every check is for a new message, so "definitely absent" answers save a
// Pebble lookup that would touch every level. It grows by adding filters of
// doubling capacity (a scalable Bloom filter); false positives only cost the
// lookup the filter would have saved. Deleted keys stay in the filter, which
// is harmless for the same reason.
type presenceFilter struct {
	mu     sync.RWMutex
	seed   maphash.Seed
	layers []*bloomLayer
}

type bloomLayer struct {
	bits     []uint64
	capacity int
	n        int
}

const (
	bloomBitsPerKey = 12
	bloomHashes     = 8
)

func newPresenceFilter(capacity int) *presenceFilter {
	f := &presenceFilter{seed: maphash.MakeSeed()}
	f.layers = []*bloomLayer{newBloomLayer(max(capacity, 1024))}
	return f
}

func newBloomLayer(capacity int) *bloomLayer {
	words := (capacity*bloomBitsPerKey + 63) / 64
	return &bloomLayer{bits: make([]uint64, words), capacity: capacity}
}

func (l *bloomLayer) add(h uint64) {
	h1, h2 := uint32(h), uint32(h>>32)|1
	m := uint32(len(l.bits) * 64)
	for i := uint32(0); i < bloomHashes; i++ {
		bit := (h1 + i*h2) % m
		l.bits[bit/64] |= 1 << (bit % 64)
	}
	l.n++
}

func (l *bloomLayer) mayContain(h uint64) bool {
	h1, h2 := uint32(h), uint32(h>>32)|1
	m := uint32(len(l.bits) * 64)
	for i := uint32(0); i < bloomHashes; i++ {
		bit := (h1 + i*h2) % m
		if l.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *presenceFilter) add(keys ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		last := f.layers[len(f.layers)-1]
		if last.n >= last.capacity {
			last = newBloomLayer(last.capacity * 2)
			f.layers = append(f.layers, last)
		}
		last.add(maphash.Bytes(f.seed, k))
	}
}

func (f *presenceFilter) mayContain(k []byte) bool {
	h := maphash.Bytes(f.seed, k)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, l := range f.layers {
		if l.mayContain(h) {
			return true
		}
	}
	return false
}

// hasFiltered is has for keys tracked by the presence filter.
func (db *DB) hasFiltered(key []byte) (bool, error) {
	if !db.present.mayContain(key) {
		return false, nil
	}
	return db.has(key)
}

// loadPresenceFilter fills the filter from the dedup markers and the log's
// arrival index (whose small values name the log keys), not from the log
// itself, whose values are whole MLS messages.
func (db *DB) loadPresenceFilter() error {
	f := newPresenceFilter(0)
	var keys [][]byte
	flush := func() {
		f.add(keys...)
		keys = keys[:0]
	}
	err := db.scan([]byte{spaceDedup}, func(k, v []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		if len(keys) == 4096 {
			flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = db.scan([]byte{spaceLogArrival}, func(k, v []byte) error {
		r := keyReader{b: k}
		r.space(spaceLogArrival)
		g := r.group()
		r.u64()
		if err := r.done(); err != nil {
			return fmt.Errorf("store: log arrival: %w", err)
		}
		epoch, h, _, err := decodeLogRef(v)
		if err != nil {
			return fmt.Errorf("store: log arrival: %w", err)
		}
		keys = append(keys, logKey(g, epoch, h))
		if len(keys) == 4096 {
			flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	flush()
	db.present = f
	return nil
}
