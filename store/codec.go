package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// recordVersion is the first byte of every value this package writes. A
// decoder rejects any other version, so a future encoding change can be
// recognised and migrated instead of being misread.
const recordVersion = 1

// ErrCorrupt marks a record or key on disk that does not decode. Errors
// returned by this package wrap it together with the key space involved.
var ErrCorrupt = errors.New("store: corrupt record")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// enc appends fields to a value. Variable-length fields are prefixed with a
// minimal uvarint length.
type enc struct{ b []byte }

func newEnc(sizeHint int) *enc { return newEncV(recordVersion, sizeHint) }

func newEncV(version byte, sizeHint int) *enc {
	e := &enc{b: make([]byte, 0, sizeHint+1)}
	e.b = append(e.b, version)
	return e
}

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) u8(v uint8)       { e.b = append(e.b, v) }
func (e *enc) fixed(p []byte)   { e.b = append(e.b, p...) }
func (e *enc) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) time(t time.Time) { e.varint(timeToNanos(t)) }

// timeToNanos maps the zero time to 0 so that "no time" round-trips.
func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// dec reads fields written by enc. The first error sticks; callers check
// finish, which also rejects trailing bytes.
type dec struct {
	b    []byte
	what string
	err  error
}

func newDec(b []byte, what string) *dec { return newDecV(b, what, recordVersion) }

func newDecV(b []byte, what string, version byte) *dec {
	d := &dec{b: b, what: what}
	if len(b) == 0 {
		d.fail("empty value")
		return d
	}
	if b[0] != version {
		d.fail("unknown record version %d", b[0])
		return d
	}
	d.b = b[1:]
	return d
}

func (d *dec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corruptf("%s: %s", d.what, fmt.Sprintf(format, args...))
	}
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	// Reject non-minimal encodings so every value has exactly one encoding.
	if n > 1 && d.b[n-1] == 0 {
		d.fail("non-minimal uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("short value")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("short value")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed field of at most max bytes. The result is a
// copy, so it stays valid after Pebble releases the value.
func (d *dec) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("field of %d bytes exceeds limit %d", n, max)
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("short value")
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) time() time.Time { return nanosToTime(d.varint()) }

func (d *dec) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
