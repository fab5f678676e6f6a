package main

import (
	"bytes"
	"testing"

	"grove/mls"
)

// FuzzDecodeInputs feeds hostile bytes to the decoders the RPCs apply to
// harness input: none may panic, and a KeyPackage that decodes re-encodes
// to an MLSMessage that decodes to the same KeyPackage.
func FuzzDecodeInputs(f *testing.F) {
	b, err := newKeyPackage(1, []byte("alice"), nil)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := encodeKeyPackage(&b.KeyPackage)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kp)
	f.Add(kp[4:])
	f.Add([]byte{0, 1, 0, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := decodeKeyPackage(data); err == nil {
			enc, err := encodeKeyPackage(k)
			if err != nil {
				t.Fatalf("decoded KeyPackage does not encode: %v", err)
			}
			k2, err := decodeKeyPackage(enc)
			if err != nil {
				t.Fatalf("re-encoded KeyPackage does not decode: %v", err)
			}
			a, _ := k.MarshalBinary()
			b, _ := k2.MarshalBinary()
			if !bytes.Equal(a, b) {
				t.Fatal("KeyPackage changed in a round trip")
			}
		}
		_, _ = decodeGroupInfo(data)
	})
}

// FuzzAppendVector: appending to any vector body either fails or yields a
// well-formed vector whose body is the old body followed by the element.
func FuzzAppendVector(f *testing.F) {
	f.Add([]byte{}, []byte{1, 2})
	f.Add([]byte{0}, []byte{})
	f.Add([]byte{2, 9, 9}, []byte{7})
	f.Add([]byte{0x40, 3, 1, 2, 3}, bytes.Repeat([]byte{5}, 70))
	f.Add([]byte{0xc0}, []byte{1})
	f.Fuzz(func(t *testing.T, vector, elem []byte) {
		out, err := appendVector(vector, elem)
		if err != nil {
			return
		}
		l, n, err := mls.DecodeVarint(out)
		if err != nil {
			t.Fatalf("result is no vector: %v", err)
		}
		if int(l) != len(out)-n || !bytes.HasSuffix(out, elem) {
			t.Fatalf("vector %x: length %d of %d bytes", out, l, len(out)-n)
		}
		if len(vector) > 0 {
			_, m, _ := mls.DecodeVarint(vector)
			if !bytes.Equal(out[n:len(out)-len(elem)], vector[m:]) {
				t.Fatal("old elements lost")
			}
		}
	})
}
