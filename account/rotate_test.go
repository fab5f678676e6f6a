package account

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// A rotation keeps the devices it lists: their certificates under the old
// key stay good, any other certificate of the old key (one its thief
// makes) is ErrOldKey, and certificates of the new key are good.
func TestRotationKeepsListedDevices(t *testing.T) {
	old, next := newKey(t), newKey(t)
	laptop, _ := old.Certify(testDevice("laptop"))
	phone, _ := old.Certify(testDevice("phone"))
	r, err := old.Rotate(next, 1, []*Certificate{laptop}, time.Unix(1_800_000_100, 0))
	if err != nil {
		t.Fatal(err)
	}
	enc := r.Marshal()
	got, err := ParseRotation(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), enc) {
		t.Fatal("parse then marshal differs")
	}
	var rs Rotations
	if added, err := rs.Add(got); err != nil || !added {
		t.Fatalf("Add = %v, %v", added, err)
	}
	if k, err := rs.Accept(laptop); err != nil || !k.Equal(next.Public()) {
		t.Fatalf("kept laptop: %v (key %v)", err, k)
	}
	if _, err := rs.Accept(phone); !errors.Is(err, ErrOldKey) {
		t.Fatalf("phone left out of the rotation: %v, want ErrOldKey", err)
	}
	stolen, _ := old.Certify(testDevice("thief"))
	if _, err := rs.Accept(stolen); !errors.Is(err, ErrOldKey) {
		t.Fatalf("certificate made with the old key after the rotation: %v", err)
	}
	tablet, _ := next.Certify(testDevice("tablet"))
	if k, err := rs.Accept(tablet); err != nil || !k.Equal(next.Public()) {
		t.Fatalf("new key's certificate: %v", err)
	}
	if !rs.Current(old.Public()).Equal(next.Public()) {
		t.Fatal("Current does not follow the chain")
	}
}

// Only the key being replaced can rotate it, the new key must sign too,
// and the first rotation away from a key wins.
func TestRotationRefusals(t *testing.T) {
	old, next, thief := newKey(t), newKey(t), newKey(t)
	laptop, _ := old.Certify(testDevice("laptop"))
	at := time.Unix(1_800_000_100, 0)

	// Signed by someone else than the old key.
	forged, _ := thief.Rotate(next, 1, nil, at)
	forged.Old = old.Public()
	var rs Rotations
	if _, err := rs.Add(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("rotation signed by another key: %v", err)
	}
	// A new key that did not sign (claiming someone else's key).
	r, _ := old.Rotate(next, 1, []*Certificate{laptop}, at)
	claimed := *r
	claimed.New = thief.Public()
	if _, err := rs.Add(&claimed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("rotation to a key that did not sign: %v", err)
	}
	if _, err := rs.Add(r); err != nil {
		t.Fatal(err)
	}
	if added, err := rs.Add(r); added || err != nil {
		t.Fatalf("the same rotation again: %v, %v", added, err)
	}
	// The thief of the old key names a key of its own: refused.
	competing, _ := old.Rotate(thief, 1, nil, at.Add(time.Second))
	if _, err := rs.Add(competing); !errors.Is(err, ErrCompetingRotation) {
		t.Fatalf("competing rotation: %v", err)
	}
	// The next rotation must continue the sequence.
	third := newKey(t)
	bad, _ := next.Rotate(third, 1, nil, at)
	if _, err := rs.Add(bad); !errors.Is(err, ErrCompetingRotation) {
		t.Fatalf("rotation with a stale sequence: %v", err)
	}
	good, _ := next.Rotate(third, 2, []*Certificate{laptop}, at)
	if _, err := rs.Add(good); err != nil {
		t.Fatal(err)
	}
	if k, err := rs.Accept(laptop); err != nil || !k.Equal(third.Public()) {
		t.Fatalf("laptop after two rotations: %v", err)
	}
	if len(rs.Chain(next.Public())) != 2 {
		t.Fatalf("chain of %d", len(rs.Chain(next.Public())))
	}
}

func TestParseRotationHostile(t *testing.T) {
	old, next := newKey(t), newKey(t)
	laptop, _ := old.Certify(testDevice("laptop"))
	r, _ := old.Rotate(next, 1, []*Certificate{laptop}, time.Unix(1_800_000_100, 0))
	enc := r.Marshal()
	for i := 0; i < len(enc); i++ {
		if _, err := ParseRotation(enc[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := ParseRotation(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	for i := range enc {
		b := bytes.Clone(enc)
		b[i] ^= 1
		if got, err := ParseRotation(b); err == nil && got.Verify() == nil {
			t.Fatalf("flipped byte %d still verifies", i)
		}
	}
}

func FuzzParseRotation(f *testing.F) {
	old, next := newKey(f), newKey(f)
	laptop, _ := old.Certify(testDevice("laptop"))
	r, _ := old.Rotate(next, 1, []*Certificate{laptop}, time.Unix(1_800_000_100, 0))
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRotation(data)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), data) {
			t.Fatal("parse then marshal differs")
		}
	})
}
