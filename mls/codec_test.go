package mls

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestVarintRejectsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"prefix 11", []byte{0xc0, 0, 0, 0, 0, 0, 0, 0}},
		{"non-minimal 2-byte", []byte{0x40, 0x25}},
		{"non-minimal 4-byte", []byte{0x80, 0x00, 0x3f, 0xff}},
		{"truncated 2-byte", []byte{0x7b}},
		{"truncated 4-byte", []byte{0x9d, 0x7f, 0x3e}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecodeVarint(tc.in); !errors.Is(err, ErrDecode) {
				t.Fatalf("DecodeVarint(%x) = %v, want ErrDecode", tc.in, err)
			}
		})
	}
}

func TestVarintRFCExamples(t *testing.T) {
	// RFC 9420, Section 2.1.2 examples.
	for _, tc := range []struct {
		in   []byte
		want uint32
	}{
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
		{[]byte{0x7b, 0xbd}, 15293},
		{[]byte{0x25}, 37},
	} {
		got, n, err := DecodeVarint(tc.in)
		if err != nil || got != tc.want || n != len(tc.in) {
			t.Fatalf("DecodeVarint(%x) = %d, %d, %v; want %d", tc.in, got, n, err, tc.want)
		}
		if enc := appendVarint(nil, tc.want); !bytes.Equal(enc, tc.in) {
			t.Fatalf("appendVarint(%d) = %x, want %x", tc.want, enc, tc.in)
		}
	}
}

func TestVarintBoundaries(t *testing.T) {
	for _, v := range []uint32{0, 63, 64, 16383, 16384, maxVarint} {
		enc := appendVarint(nil, v)
		got, n, err := DecodeVarint(enc)
		if err != nil || got != v || n != len(enc) {
			t.Fatalf("round trip %d: %x -> %d, %v", v, enc, got, err)
		}
	}
}

func TestUnmarshalAllRejectsTrailingAndTruncated(t *testing.T) {
	read := func(s *cryptobyte.String) bool {
		var b []byte
		return readVarBytes(s, &b)
	}
	if err := unmarshalAll("x", []byte{0x02, 'h', 'i'}, read); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
	if err := unmarshalAll("x", []byte{0x02, 'h', 'i', 0}, read); !errors.Is(err, ErrDecode) {
		t.Fatalf("trailing byte accepted: %v", err)
	}
	if err := unmarshalAll("x", []byte{0x03, 'h', 'i'}, read); !errors.Is(err, ErrDecode) {
		t.Fatalf("truncated vector accepted: %v", err)
	}
}

func TestOptionalRejectsBadPresence(t *testing.T) {
	s := cryptobyte.String([]byte{2})
	var p bool
	if readOptional(&s, &p) {
		t.Fatal("presence octet 2 accepted")
	}
}

func TestVectorElemsNeverLoops(t *testing.T) {
	// An element decoder that consumes nothing must not spin forever.
	s := cryptobyte.String([]byte{0x01, 0x00})
	if readVectorElems(&s, func(*cryptobyte.String) bool { return true }) {
		t.Fatal("zero-progress element decoder accepted")
	}
}

func FuzzVarint(f *testing.F) {
	for _, seed := range [][]byte{{0x25}, {0x7b, 0xbd}, {0x9d, 0x7f, 0x3e, 0x7d}, {0x40, 0x01}, {0xc0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := DecodeVarint(data)
		if err != nil {
			return
		}
		if enc := appendVarint(nil, v); !bytes.Equal(enc, data[:n]) {
			t.Fatalf("decode(%x) = %d, re-encodes as %x", data[:n], v, enc)
		}
	})
}
