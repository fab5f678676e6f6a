package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Key spaces. Each key starts with one of these bytes; the rest of the key is
// made of fixed-size fields or length-prefixed fields so that a prefix of a
// key never collides with another key's fields, and numbers are big-endian so
// that iteration follows numeric order.
const (
	spaceMeta       byte = 0x01 // spaceMeta "v" -> schema version (uint32)
	spaceIdentity   byte = 0x02 // -> identity record
	spaceSetting    byte = 0x03 // name -> setting record
	spaceGroup      byte = 0x10 // group -> GroupMeta
	spaceEpochState byte = 0x11 // group, eid -> EpochState
	spaceEpochMark  byte = 0x12 // group, eid -> EpochMarker
	spaceLog        byte = 0x20 // group, epoch(8), hash(32) -> LogEntry
	spaceLogArrival byte = 0x21 // group, seq(8) -> log reference (epoch, hash, arrival time)
	spaceOutbox     byte = 0x30 // group, msg id(16) -> OutboxEntry
	spaceView       byte = 0x40 // group, time(8), msg id(16)[, sender] -> Message
	spaceViewByID   byte = 0x41 // group, msg id(16) -> time(8)
	spaceDedup      byte = 0x50 // group, msg id(16)[, sender] -> first-seen time, view time
	spacePosting    byte = 0x60 // term, 0x00, time(8), group, msg id(16) -> posting
	spaceSender     byte = 0x61 // sender, time(8), group, msg id(16) -> empty (sender filter)
	spaceIndexStats byte = 0x62 // -> index statistics (documents, total length)
)

// Sizes of the identifiers this package accepts.
const (
	// MaxGroupIDLen bounds group ids, which are opaque bytes chosen by the node.
	MaxGroupIDLen = 64
	// EpochIDLen is the length of an epoch id (eid = MLS-Exporter("grove epoch id", "", 16)).
	EpochIDLen = 16
	// MessageHashLen is the length of a ciphertext hash (SHA-256 of the MLSMessage).
	MessageHashLen = 32
	// MessageIDLen is the length of an application message id.
	MessageIDLen = 16
	// MaxSenderLen bounds a sender identity in the local view.
	MaxSenderLen = 255
	// MaxTextLen bounds the text of a message (view and outbox).
	MaxTextLen = 64 << 10
	// MaxStateLen bounds a serialised epoch state.
	MaxStateLen = 16 << 20
	// MaxMLSMessageLen bounds a logged MLS message.
	MaxMLSMessageLen = 1 << 20
	// MaxSettingNameLen bounds the name of a setting.
	MaxSettingNameLen = 255
	// MaxBlobLen bounds opaque blobs: identity, setting values, group data.
	MaxBlobLen = 1 << 20
)

// EpochID names an MLS epoch state (ARCHITECTURE.md, section 3).
type EpochID [EpochIDLen]byte

// MessageHash names a ciphertext: SHA-256 of the MLSMessage bytes.
type MessageHash [MessageHashLen]byte

// MessageID is the 128-bit application message id carried in the plaintext.
type MessageID [MessageIDLen]byte

// ErrInvalidArgument marks an argument that violates the sizes or rules
// documented on the API; nothing was written.
var ErrInvalidArgument = errors.New("store: invalid argument")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func checkGroup(g []byte) error {
	if len(g) == 0 || len(g) > MaxGroupIDLen {
		return invalidf("group id of %d bytes, want 1..%d", len(g), MaxGroupIDLen)
	}
	return nil
}

// keyBuf builds keys.
type keyBuf []byte

func newKey(space byte, capHint int) keyBuf {
	k := make(keyBuf, 1, capHint+1)
	k[0] = space
	return k
}

func (k keyBuf) group(g []byte) keyBuf {
	k = append(k, byte(len(g)))
	return append(k, g...)
}

func (k keyBuf) u64(v uint64) keyBuf { return binary.BigEndian.AppendUint64(k, v) }

// nanos encodes a signed time so that byte order equals numeric order.
func (k keyBuf) nanos(n int64) keyBuf { return k.u64(uint64(n) ^ (1 << 63)) }

func (k keyBuf) raw(p []byte) keyBuf { return append(k, p...) }

// sender appends a sender identity, length-prefixed (1..MaxSenderLen
// bytes, checked by the caller).
func (k keyBuf) sender(s []byte) keyBuf {
	k = append(k, byte(len(s)))
	return append(k, s...)
}

// keyReader parses keys read back from iteration; like dec, it sticks on the
// first error.
type keyReader struct {
	b   []byte
	err error
}

func (r *keyReader) fail() {
	if r.err == nil {
		r.err = corruptf("malformed key %x", r.b)
	}
}

func (r *keyReader) space(want byte) {
	if len(r.b) < 1 || r.b[0] != want {
		r.fail()
		return
	}
	r.b = r.b[1:]
}

func (r *keyReader) group() []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < 1 || r.b[0] == 0 || int(r.b[0]) > MaxGroupIDLen || len(r.b) < 1+int(r.b[0]) {
		r.fail()
		return nil
	}
	n := int(r.b[0])
	g := append([]byte(nil), r.b[1:1+n]...)
	r.b = r.b[1+n:]
	return g
}

func (r *keyReader) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// sender reads a length-prefixed sender identity.
func (r *keyReader) sender() []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < 1 || r.b[0] == 0 || len(r.b) < 1+int(r.b[0]) {
		r.fail()
		return nil
	}
	n := int(r.b[0])
	s := append([]byte(nil), r.b[1:1+n]...)
	r.b = r.b[1+n:]
	return s
}

// optionalSender reads the sender that ends a key written since keys
// name it, or nothing from an older key that ends before it.
func (r *keyReader) optionalSender() []byte {
	if r.err != nil || len(r.b) == 0 {
		return nil
	}
	return r.sender()
}

func (r *keyReader) u64() uint64 {
	p := r.fixed(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (r *keyReader) nanos() int64 { return int64(r.u64() ^ (1 << 63)) }

func (r *keyReader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return r.err
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

const maxNanos = math.MaxInt64
