package account

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Rotation errors.
var (
	// ErrOldKey: a device certificate signed by an account key that has
	// been rotated away, for a device the rotation did not keep (a device
	// the old key's thief certified, or one revoked before the rotation).
	ErrOldKey = errors.New("account: certificate is signed by a replaced account key")
	// ErrCompetingRotation: a second rotation away from a key whose first
	// rotation is already known (first seen wins), or one that does not
	// continue the account's chain.
	ErrCompetingRotation = errors.New("account: competing rotation of the account key")
)

const (
	rotationVersion = 1
	rotationLabel   = "grove account rotation"
	maxKept         = 64
	// MaxRotationBytes bounds an encoded rotation.
	MaxRotationBytes = 1 + 33 + 33 + 8 + 8 + 1 + maxKept*(3+maxSigKey+1+maxPeer) + 65 + 65
)

// KeptDevice names a device that a rotation keeps: its MLS signature key
// and peer id, as its certificate under the old key certifies them.
type KeptDevice struct {
	SignatureKey []byte
	Peer         []byte
}

// Rotation is an account's statement that its key Old is replaced by New.
// Both keys sign it: Old to show the account's holder made it, New to show
// the new key is held by the same party (nobody can claim someone else's
// key as theirs). Kept lists the devices the account still owns: their
// certificates under Old (which their MLS credentials carry, unchanged)
// stay valid; every other certificate under Old is refused from then on.
// Seq is 1 for the first rotation away from an account's original key and
// one more for each next one.
//
//	struct {
//	    uint8 version = 1;
//	    opaque old<32>;
//	    opaque new<32>;
//	    uint64 seq;
//	    uint64 at;                       // Unix seconds
//	    KeptDevice kept<0..64>;          // u8 count; each: signature_key<2-byte len>, peer<1-byte len>
//	    opaque old_signature<64>;        // over "grove account rotation" || all above
//	    opaque new_signature<64>;        // the same bytes
//	} AccountRotation;
type Rotation struct {
	Old, New PublicKey
	Seq      uint64
	At       time.Time
	Kept     []KeptDevice
	OldSig   []byte
	NewSig   []byte
}

func (r *Rotation) tbs(b *cryptobyte.Builder) {
	b.AddUint8(rotationVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Old) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.New) })
	b.AddUint64(r.Seq)
	b.AddUint64(uint64(r.At.Unix()))
	b.AddUint8(uint8(len(r.Kept)))
	for _, k := range r.Kept {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(k.SignatureKey) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(k.Peer) })
	}
}

func (r *Rotation) signedBytes() ([]byte, error) {
	if len(r.Kept) > maxKept {
		return nil, fmt.Errorf("%w: rotation keeps %d devices, at most %d", ErrMalformed, len(r.Kept), maxKept)
	}
	b := cryptobyte.NewBuilder([]byte(rotationLabel))
	r.tbs(b)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

// Rotate signs the replacement of k by next, keeping the devices that keep
// certifies (certificates of k's account; revoked ones are the caller's to
// leave out). seq is the rotation's place in the account's chain (1 for
// the first).
func (k *Key) Rotate(next *Key, seq uint64, keep []*Certificate, at time.Time) (*Rotation, error) {
	if seq == 0 {
		return nil, fmt.Errorf("account: rotate: sequence numbers start at 1")
	}
	if next.Public().Equal(k.Public()) {
		return nil, fmt.Errorf("account: rotate: the new key is the old one")
	}
	r := &Rotation{Old: k.Public(), New: next.Public(), Seq: seq, At: time.Unix(at.Unix(), 0).UTC()}
	for _, c := range keep {
		if !c.Account.Equal(k.Public()) {
			// A device certified by an earlier key of the chain, kept by
			// an earlier rotation, is kept again by its keys alone.
			if err := c.Verify(); err != nil {
				return nil, fmt.Errorf("account: rotate: %w", err)
			}
		}
		if r.keeps(c.Device.SignatureKey, c.Device.Peer) {
			continue
		}
		r.Kept = append(r.Kept, KeptDevice{SignatureKey: bytes.Clone(c.Device.SignatureKey), Peer: bytes.Clone(c.Device.Peer)})
	}
	msg, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	r.OldSig = ed25519.Sign(k.priv, msg)
	r.NewSig = ed25519.Sign(next.priv, msg)
	return r, nil
}

func (r *Rotation) keeps(sigKey, peer []byte) bool {
	for _, k := range r.Kept {
		if bytes.Equal(k.SignatureKey, sigKey) && bytes.Equal(k.Peer, peer) {
			return true
		}
	}
	return false
}

// Keeps reports whether the rotation keeps the device c certifies.
func (r *Rotation) Keeps(c *Certificate) bool { return r.keeps(c.Device.SignatureKey, c.Device.Peer) }

// Marshal encodes the rotation.
func (r *Rotation) Marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	r.tbs(b)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.OldSig) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.NewSig) })
	return b.BytesOrPanic()
}

// ParseRotation decodes a rotation; Verify checks its signatures.
func ParseRotation(data []byte) (*Rotation, error) {
	if len(data) > MaxRotationBytes {
		return nil, fmt.Errorf("%w: rotation of %d bytes", ErrMalformed, len(data))
	}
	s := cryptobyte.String(data)
	var (
		ver, n          uint8
		old, nw, os, ns cryptobyte.String
		seq, at         uint64
	)
	if !s.ReadUint8(&ver) {
		return nil, fmt.Errorf("%w: rotation truncated", ErrMalformed)
	}
	if ver != rotationVersion {
		return nil, fmt.Errorf("%w: rotation version %d", ErrMalformed, ver)
	}
	if !s.ReadUint8LengthPrefixed(&old) || !s.ReadUint8LengthPrefixed(&nw) || !s.ReadUint64(&seq) || !s.ReadUint64(&at) || !s.ReadUint8(&n) {
		return nil, fmt.Errorf("%w: rotation truncated", ErrMalformed)
	}
	if n > maxKept {
		return nil, fmt.Errorf("%w: rotation keeps %d devices", ErrMalformed, n)
	}
	r := &Rotation{Old: PublicKey(bytes.Clone(old)), New: PublicKey(bytes.Clone(nw)), Seq: seq, At: time.Unix(int64(at), 0).UTC()}
	for i := 0; i < int(n); i++ {
		var sk, peer cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&sk) || !s.ReadUint8LengthPrefixed(&peer) {
			return nil, fmt.Errorf("%w: rotation truncated", ErrMalformed)
		}
		if len(sk) == 0 || len(sk) > maxSigKey || len(peer) == 0 || len(peer) > maxPeer {
			return nil, fmt.Errorf("%w: rotation device fields", ErrMalformed)
		}
		r.Kept = append(r.Kept, KeptDevice{SignatureKey: bytes.Clone(sk), Peer: bytes.Clone(peer)})
	}
	if !s.ReadUint8LengthPrefixed(&os) || !s.ReadUint8LengthPrefixed(&ns) {
		return nil, fmt.Errorf("%w: rotation truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after rotation", ErrMalformed, len(s))
	}
	switch {
	case len(old) != ed25519.PublicKeySize || len(nw) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("%w: rotation key length", ErrMalformed)
	case len(os) != ed25519.SignatureSize || len(ns) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: rotation signature length", ErrMalformed)
	case seq == 0 || at > 1<<62:
		return nil, fmt.Errorf("%w: rotation sequence or time out of range", ErrMalformed)
	}
	r.OldSig, r.NewSig = bytes.Clone(os), bytes.Clone(ns)
	return r, nil
}

// Verify checks that both the old and the new key signed r.
func (r *Rotation) Verify() error {
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if len(r.Old) != ed25519.PublicKeySize || len(r.New) != ed25519.PublicKeySize ||
		!ed25519.Verify(ed25519.PublicKey(r.Old), msg, r.OldSig) {
		return fmt.Errorf("%w: rotation is not signed by the key it replaces", ErrBadSignature)
	}
	if !ed25519.Verify(ed25519.PublicKey(r.New), msg, r.NewSig) {
		return fmt.Errorf("%w: rotation is not signed by its new key", ErrBadSignature)
	}
	if r.Old.Equal(r.New) {
		return fmt.Errorf("%w: rotation to the same key", ErrMalformed)
	}
	return nil
}

// Rotations is a set of verified rotations, the chains of any number of
// accounts. The zero value is empty. Not safe for concurrent use.
//
// The tie rule: the first rotation away from a key wins. A later one from
// the same key (the old key's thief naming a key of its own) is
// ErrCompetingRotation, and so is one whose Seq does not continue the
// chain it extends.
type Rotations struct {
	list []*Rotation
}

// from returns the known rotation away from k, or nil.
func (rs *Rotations) from(k PublicKey) *Rotation {
	for _, r := range rs.list {
		if r.Old.Equal(k) {
			return r
		}
	}
	return nil
}

// into returns the known rotation to k, or nil.
func (rs *Rotations) into(k PublicKey) *Rotation {
	for _, r := range rs.list {
		if r.New.Equal(k) {
			return r
		}
	}
	return nil
}

// Check verifies r and tells whether Add would take it: nil for a new
// rotation that continues its chain, ErrCompetingRotation otherwise.
// Seen reports that r is already known (then err is nil).
func (rs *Rotations) Check(r *Rotation) (seen bool, err error) {
	if err := r.Verify(); err != nil {
		return false, err
	}
	if o := rs.from(r.Old); o != nil {
		if o.New.Equal(r.New) && o.Seq == r.Seq {
			return true, nil
		}
		return false, fmt.Errorf("%w: key %s was already replaced by %s", ErrCompetingRotation, r.Old.Fingerprint(), o.New.Fingerprint())
	}
	want := uint64(1)
	if p := rs.into(r.Old); p != nil {
		want = p.Seq + 1
	}
	if r.Seq != want {
		return false, fmt.Errorf("%w: rotation %d where %d continues the chain", ErrCompetingRotation, r.Seq, want)
	}
	if rs.into(r.New) != nil || rs.from(r.New) != nil {
		return false, fmt.Errorf("%w: the new key is already in a chain", ErrCompetingRotation)
	}
	return false, nil
}

// Add verifies r and keeps it; it reports whether r was new.
func (rs *Rotations) Add(r *Rotation) (bool, error) {
	seen, err := rs.Check(r)
	if err != nil || seen {
		return false, err
	}
	rs.list = append(rs.list, r)
	return true, nil
}

// Current follows k's chain to the account's current key (k itself when
// it was never rotated).
func (rs *Rotations) Current(k PublicKey) PublicKey {
	for i := 0; i <= len(rs.list); i++ {
		r := rs.from(k)
		if r == nil {
			return k
		}
		k = r.New
	}
	return k // a cycle, which Add refuses: stop anywhere
}

// Latest is the last rotation of k's chain, nil if none.
func (rs *Rotations) Latest(k PublicKey) *Rotation {
	var last *Rotation
	for i := 0; i <= len(rs.list); i++ {
		r := rs.from(k)
		if r == nil {
			return last
		}
		last, k = r, r.New
	}
	return last
}

// Accept checks a device certificate against the known rotations and
// returns the current key of its account: a certificate of a key that was
// never rotated away, or of an earlier key of the chain for a device the
// latest rotation keeps, is accepted; any other certificate of a replaced
// key is ErrOldKey. It does not verify c's signature.
func (rs *Rotations) Accept(c *Certificate) (PublicKey, error) {
	last := rs.Latest(c.Account)
	if last == nil {
		return c.Account, nil
	}
	if !last.Keeps(c) {
		return nil, fmt.Errorf("%w: device %q of account %s (now %s)", ErrOldKey, c.Device.Name, c.Account.Fingerprint(), last.New.Fingerprint())
	}
	return last.New, nil
}

// List returns the kept rotations, oldest added first.
func (rs *Rotations) List() []*Rotation { return rs.list }

// Chain returns the rotations of k's chain, the first first.
func (rs *Rotations) Chain(k PublicKey) []*Rotation {
	// Back to the start, then forward.
	for i := 0; i <= len(rs.list); i++ {
		p := rs.into(k)
		if p == nil {
			break
		}
		k = p.Old
	}
	var out []*Rotation
	for i := 0; i <= len(rs.list); i++ {
		r := rs.from(k)
		if r == nil {
			break
		}
		out, k = append(out, r), r.New
	}
	return out
}

// AddChecked keeps r, already verified by whoever stored it (a group's
// policy, whose every Commit members check, or this device's own store),
// under the chain rules of Add but without checking its signatures again.
func (rs *Rotations) AddChecked(r *Rotation) error {
	if o := rs.from(r.Old); o != nil {
		if o.New.Equal(r.New) {
			return nil
		}
		return fmt.Errorf("%w: key %s was already replaced", ErrCompetingRotation, r.Old.Fingerprint())
	}
	rs.list = append(rs.list, r)
	return nil
}
