package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// RFC 9420, Section 2.1.2: vector lengths are QUIC-style variable-length
// integers that must use the minimum encoding and never the prefix 0b11.
const maxVarint = 1<<30 - 1

// appendVarint appends the minimal MLS varint encoding of n. It panics on
// n > maxVarint, which callers prevent by checking lengths first.
func appendVarint(dst []byte, n uint32) []byte {
	switch {
	case n < 1<<6:
		return append(dst, byte(n))
	case n < 1<<14:
		return append(dst, byte(n>>8)|0x40, byte(n))
	case n <= maxVarint:
		return append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	default:
		panic("mls: varint out of range")
	}
}

// AppendVarint appends the minimal variable-length header for a length n
// (RFC 9420, Section 2.1.2), the inverse of DecodeVarint. It panics on
// n >= 2^30, a length MLS cannot encode.
func AppendVarint(dst []byte, n uint32) []byte { return appendVarint(dst, n) }

// readVarint reads a minimal MLS varint (RFC 9420, Section 2.1.2).
func readVarint(s *cryptobyte.String, out *uint32) bool {
	var first uint8
	if !s.ReadUint8(&first) {
		return false
	}
	prefix := first >> 6
	if prefix == 3 {
		return false
	}
	v := uint32(first & 0x3f)
	n := 1 << prefix
	for i := 1; i < n; i++ {
		var b uint8
		if !s.ReadUint8(&b) {
			return false
		}
		v = v<<8 | uint32(b)
	}
	// Minimum-size encoding check from the RFC's ReadVarint pseudocode.
	if prefix >= 1 && v < 1<<(8*(n/2)-2) {
		return false
	}
	*out = v
	return true
}

// DecodeVarint decodes one variable-length header (RFC 9420, Section 2.1.2)
// and reports how many bytes it used, for callers that frame MLS
// variable-size fields themselves.
func DecodeVarint(data []byte) (value uint32, n int, err error) {
	s := cryptobyte.String(data)
	if !readVarint(&s, &value) {
		return 0, 0, fmt.Errorf("mls: varint: %w", ErrDecode)
	}
	return value, len(data) - len(s), nil
}

// addVarBytes writes opaque v<V>.
func addVarBytes(b *cryptobyte.Builder, v []byte) {
	if len(v) > maxVarint {
		b.SetError(fmt.Errorf("mls: vector of %d bytes: %w", len(v), ErrTooLarge))
		return
	}
	var hdr [4]byte
	b.AddBytes(appendVarint(hdr[:0], uint32(len(v))))
	b.AddBytes(v)
}

// addVarVector writes a vector<V> whose body is produced by f. The body is
// built separately because its length, and so the header size, is unknown
// until it is complete.
func addVarVector(b *cryptobyte.Builder, f func(b *cryptobyte.Builder)) {
	child := cryptobyte.NewBuilder(nil)
	f(child)
	body, err := child.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	addVarBytes(b, body)
}

// readVarVector reads the body of a vector<V> into out, aliasing s.
func readVarVector(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	if !readVarint(s, &n) {
		return false
	}
	var body []byte
	if !s.ReadBytes(&body, int(n)) {
		return false
	}
	*out = body
	return true
}

// readVarBytes reads opaque v<V> into a fresh copy, so decoded structures
// never alias (and so never pin or expose) the caller's buffer.
func readVarBytes(s *cryptobyte.String, out *[]byte) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) {
		return false
	}
	*out = append([]byte(nil), body...)
	return true
}

// readOptional reads the presence octet of optional<T> (RFC 9420, Section
// 2.1.1); values other than 0 and 1 are malformed.
func readOptional(s *cryptobyte.String, present *bool) bool {
	var p uint8
	if !s.ReadUint8(&p) || p > 1 {
		return false
	}
	*present = p == 1
	return true
}

func addOptional(b *cryptobyte.Builder, present bool) {
	if present {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
}

// readBool reads a TLS boolean (one octet, 0 or 1).
func readBool(s *cryptobyte.String, out *bool) bool { return readOptional(s, out) }

// readVectorElems reads a vector<V> of elements decoded by elem, which must
// consume at least one byte per call so that hostile input cannot loop.
func readVectorElems(s *cryptobyte.String, elem func(s *cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) {
		return false
	}
	for !body.Empty() {
		before := len(body)
		if !elem(&body) || len(body) == before {
			return false
		}
	}
	return true
}

// marshal runs f on a fresh builder and returns the bytes.
func marshal(f func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	f(b)
	return b.Bytes()
}

// unmarshalAll decodes data with f and rejects trailing bytes.
func unmarshalAll(what string, data []byte, f func(s *cryptobyte.String) bool) error {
	s := cryptobyte.String(data)
	if !f(&s) {
		return fmt.Errorf("mls: decoding %s: %w", what, ErrDecode)
	}
	if !s.Empty() {
		return fmt.Errorf("mls: decoding %s: %d trailing bytes: %w", what, len(s), ErrDecode)
	}
	return nil
}

// labeledPair encodes the struct { opaque label<V>; opaque value<V>; } shape
// shared by RefHashInput, SignContent and EncryptContext (RFC 9420, Section 5).
func labeledPair(dst []byte, label string, value []byte) []byte {
	dst = appendVarint(dst, uint32(len(label)))
	dst = append(dst, label...)
	dst = appendVarint(dst, uint32(len(value)))
	return append(dst, value...)
}
