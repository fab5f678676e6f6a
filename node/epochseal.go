package node

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"grove/commitorder"
	"grove/mls"
	"grove/store"
)

// Epoch seals: inside the group's envelope (envelope.go), every MLS
// message and tip travels sealed under a key of the epoch it belongs to,
// an exporter output (RFC 9420, Section 8.5, label "grove wire"): an
// application message under its epoch's key, a Commit under its parent's
// (whose members are exactly those who can process it), a tip under the
// key of the epoch it names, and a rejoin's external Commit under the key
// of the epoch it joins from, which members serve with its GroupInfo
// (learnEpochKey); only if none did does it go in the envelope alone.
//
// A receiver tries the keys of its retained epochs, the head first (a
// few AEAD tag checks). A seal none opens comes from an epoch we do not
// hold: ahead of us, or on another branch. It is kept (sealedHeld) and
// tried again whenever we gain an epoch, and a sync is asked of the peer
// that forwarded it: the sync serves the log's MLS messages as they are
// (the stream is private to a member), whose framing then tells
// commitorder what it needs (parentMissing, ciphertextPending), and ends
// with the server's own tip (onSyncedTip). If seals keep arriving that
// none of our keys opens while our head stays the same, the next sync
// reaches below our root (another branch, beyond the window).
//
// Keys outlive their epoch's state (maxEpochKeys of them): a tip of a
// member behind us on our chain is still read as such. The key opens only
// seals; reading a message needs the epoch's secret tree, which is gone.

// sealedPrefix starts a sealed payload, followed by sealedVersion (an
// MLSMessage starts with 0x0001, a plain tip with tipPrefix).
var sealedPrefix = []byte{0xff, 'G', 'S'}

const sealedVersion = 1

// What a seal holds (the first plaintext byte).
const (
	sealedTip = 1 // a signed tip (version 3) naming the sealing epoch
	sealedMLS = 2 // an MLSMessage of the sealing epoch (a Commit: of its parent)
)

// sealedHeader is the prefix and version, authenticated as associated data.
const sealedHeader = 4

func isSealed(data []byte) bool { return bytes.HasPrefix(data, sealedPrefix) }

// errUnsealed: no key this device holds opens a seal.
var errUnsealed = errors.New("node: sealed in an epoch this device does not hold")

// epochKey derives the sealing key of an epoch.
func epochKey(g *mls.Group) (cipher.AEAD, error) {
	key, err := g.Export("grove wire", nil, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("node: epoch key: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

// seal returns sealedPrefix || sealedVersion || nonce ||
// XChaCha20-Poly1305(kind || body).
func seal(aead cipher.AEAD, kind byte, body []byte) []byte {
	out := make([]byte, sealedHeader+aead.NonceSize(), sealedHeader+aead.NonceSize()+1+len(body)+aead.Overhead())
	copy(out, sealedPrefix)
	out[len(sealedPrefix)] = sealedVersion
	rand.Read(out[sealedHeader:])
	plain := make([]byte, 0, 1+len(body))
	plain = append(plain, kind)
	plain = append(plain, body...)
	return aead.Seal(out, out[sealedHeader:], plain, out[:sealedHeader])
}

// unseal opens a seal with aead: errUnsealed when it is not aead's,
// ErrMalformed when it is no seal at all.
func unseal(aead cipher.AEAD, data []byte) (kind byte, body []byte, err error) {
	if !isSealed(data) || len(data) < sealedHeader+aead.NonceSize()+1+aead.Overhead() || data[len(sealedPrefix)] != sealedVersion {
		return 0, nil, fmt.Errorf("%w: sealed payload", ErrMalformed)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, data[sealedHeader:sealedHeader+n], data[sealedHeader+n:], data[:sealedHeader])
	if err != nil {
		return 0, nil, errUnsealed
	}
	return plain[0], plain[1:], nil
}

// epochKeyEntry is the sealing key of an epoch and its number.
type epochKeyEntry struct {
	aead  cipher.AEAD
	epoch uint64
}

// maxEpochKeys bounds the keys of deleted epochs an actor keeps.
const maxEpochKeys = 64

// epochKey returns the sealing key of epoch eid (state g), derived once.
func (a *groupActor) epochKey(eid commitorder.EpochID, g *mls.Group) (cipher.AEAD, error) {
	if k, ok := a.epochKeys[eid]; ok {
		return k.aead, nil
	}
	aead, err := epochKey(g)
	if err != nil {
		return nil, err
	}
	if a.epochKeys == nil {
		a.epochKeys = map[commitorder.EpochID]epochKeyEntry{}
	}
	if len(a.epochKeys) >= maxEpochKeys+len(a.epochs) {
		var oldest commitorder.EpochID
		first := true
		for e, k := range a.epochKeys {
			if _, held := a.epochs[e]; !held && (first || k.epoch < a.epochKeys[oldest].epoch) {
				oldest, first = e, false
			}
		}
		if !first {
			delete(a.epochKeys, oldest)
		}
	}
	a.epochKeys[eid] = epochKeyEntry{aead: aead, epoch: g.Epoch()}
	return aead, nil
}

// sealIn seals an MLS message or tip (kind) under the key of epoch eid
// and wraps it in the group's envelope, ready for the topic.
func (a *groupActor) sealIn(eid commitorder.EpochID, kind byte, body []byte) ([]byte, error) {
	g := a.epochs[eid]
	if g == nil {
		if k, ok := a.epochKeys[eid]; ok {
			return a.wire.seal(seal(k.aead, kind, body)), nil
		}
		return nil, fmt.Errorf("node: seal: epoch %x not held", eid[:4])
	}
	key, err := a.epochKey(eid, g)
	if err != nil {
		return nil, err
	}
	return a.wire.seal(seal(key, kind, body)), nil
}

// publishIn publishes an MLS message or tip of epoch eid, sealed.
func (a *groupActor) publishIn(eid commitorder.EpochID, kind byte, body []byte) error {
	env, err := a.sealIn(eid, kind, body)
	if err != nil {
		a.log.Warn("publish", "err", err)
		return err
	}
	return a.publishEnvelope(env)
}

// openSealed opens a seal with the key of a retained epoch (the head
// first) or a kept key of a deleted one, and returns the epoch that
// opened it. errUnsealed: none does.
func (a *groupActor) openSealed(data []byte) (eid commitorder.EpochID, epoch uint64, kind byte, body []byte, err error) {
	headEid, headG := a.head()
	if headG != nil {
		if key, err := a.epochKey(headEid, headG); err == nil {
			if kind, body, err := unseal(key, data); !errors.Is(err, errUnsealed) {
				return headEid, headG.Epoch(), kind, body, err
			}
		}
	}
	for e, g := range a.epochs {
		if e == headEid {
			continue
		}
		key, err := a.epochKey(e, g)
		if err != nil {
			continue
		}
		if kind, body, err := unseal(key, data); !errors.Is(err, errUnsealed) {
			return e, g.Epoch(), kind, body, err
		}
	}
	for e, k := range a.epochKeys {
		if _, held := a.epochs[e]; held {
			continue
		}
		if kind, body, err := unseal(k.aead, data); !errors.Is(err, errUnsealed) {
			return e, k.epoch, kind, body, err
		}
	}
	return eid, 0, 0, nil, errUnsealed
}

// onSealed takes a sealed MLS message or tip from gossip, forwarded to us
// by from.
func (a *groupActor) onSealed(data []byte, from peer.ID) {
	eid, epoch, kind, body, err := a.openSealed(data)
	if errors.Is(err, errUnsealed) {
		a.unsealable(data, from)
		return
	}
	if err != nil {
		a.reject(rejectMalformed)
		return
	}
	switch kind {
	case sealedTip:
		t, err := unmarshalTip(body)
		if err != nil || t.Version != tipV3 || t.Eid != eid || t.Epoch != epoch {
			// A tip must name the epoch whose key sealed it.
			a.reject(rejectMalformed)
			return
		}
		a.takeTip(t)
	case sealedMLS:
		if isTip(body) || isSealed(body) {
			a.reject(rejectMalformed)
			return
		}
		if _, e, _, err := frameInfo(body); err != nil || e != epoch {
			// Sealed under another epoch than its framing names.
			a.reject(rejectMalformed)
			return
		}
		a.receive(body)
	default:
		a.reject(rejectMalformed)
	}
}

// Bounds of the seals kept for an epoch we may gain (sealedHeld).
const (
	maxSealedHeld      = 256
	maxSealedHeldBytes = 4 << 20
)

// unsealableMisses is how many seals no key opens, while our head stays
// the same and for at least unsealableAge, before a sync reaches below our
// root.
const (
	unsealableMisses = 3
	unsealableAge    = 3 // tip intervals
)

// unsealable keeps a seal that no key we hold opens, for retrySealed, and
// asks from (or other members) for what we miss; see the file comment.
func (a *groupActor) unsealable(data []byte, from peer.ID) {
	for len(a.sealedHeld) > 0 && (len(a.sealedHeld) >= maxSealedHeld || a.sealedHeldBytes+len(data) > maxSealedHeldBytes) {
		// The oldest go first: what they were, the sync brings.
		a.sealedHeldBytes -= len(a.sealedHeld[0])
		a.sealedHeld = a.sealedHeld[1:]
	}
	a.sealedHeld = append(a.sealedHeld, data)
	a.sealedHeldBytes += len(data)
	now := a.n.cfg.Clock.Now()
	if head, _ := a.head(); head != a.missHead {
		a.missHead, a.misses, a.missSince = head, 0, now
	}
	a.misses++
	if a.misses >= unsealableMisses && now.Sub(a.missSince) >= unsealableAge*a.n.cfg.TipInterval {
		a.deepSync = true
		// Again only after as long once more.
		a.misses, a.missSince = 0, now
	}
	a.requestSync(from, false)
}

// retrySealed tries the kept seals again, after we gained an epoch.
func (a *groupActor) retrySealed() {
	if len(a.sealedHeld) == 0 || a.retryingSealed {
		return
	}
	a.retryingSealed = true
	defer func() { a.retryingSealed = false }()
	for {
		var open [][]byte
		kept := a.sealedHeld[:0]
		for _, d := range a.sealedHeld {
			if _, _, _, _, err := a.openSealed(d); errors.Is(err, errUnsealed) {
				kept = append(kept, d)
			} else {
				open = append(open, d)
				a.sealedHeldBytes -= len(d)
			}
		}
		a.sealedHeld = kept
		if len(open) == 0 {
			return
		}
		// Processing them may gain further epochs: loop until nothing
		// more opens.
		for _, d := range open {
			a.onSealed(d, "")
		}
	}
}

// sealedLen bounds a seal: an MLS message of the largest size logged.
const sealedLen = store.MaxMLSMessageLen + sealedHeader + chacha20poly1305.NonceSizeX + 1 + chacha20poly1305.Overhead

// epochKeyBytes is the raw sealing key of an epoch, as serveSync hands it
// to a rejoining member with the epoch's GroupInfo.
func epochKeyBytes(g *mls.Group) ([]byte, error) {
	key, err := g.Export("grove wire", nil, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("node: epoch key: %w", err)
	}
	return key, nil
}

// learnEpochKey keeps the sealing key a member sent with the GroupInfo gi
// of epoch eid, so that the external Commit of our rejoin on that epoch
// goes sealed (publish). A key for an epoch we hold or already have a key
// for is ignored: a lying member must not make us misread our own.
func (n *Node) learnEpochKey(group, gi []byte, eid commitorder.EpochID, key []byte) {
	m, err := mls.UnmarshalMLSMessage(gi)
	if err != nil || m.WireFormat != mls.WireFormatGroupInfo || len(key) != chacha20poly1305.KeySize {
		return
	}
	epoch := m.GroupInfo.GroupContext.Epoch
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return
	}
	a, err := n.lookup(hexOf(group))
	if err != nil {
		return
	}
	a.post(func() {
		if _, held := a.epochs[eid]; held {
			return
		}
		if _, known := a.epochKeys[eid]; known {
			return
		}
		if a.epochKeys == nil {
			a.epochKeys = map[commitorder.EpochID]epochKeyEntry{}
		}
		a.epochKeys[eid] = epochKeyEntry{aead: aead, epoch: epoch}
	})
}

// rejoinSealKey returns the key to seal the external Commit data with:
// that of the epoch its authenticated data names (parentAD), if a member
// sent it with the GroupInfo.
func (a *groupActor) rejoinSealKey(data []byte) (commitorder.EpochID, bool) {
	var eid commitorder.EpochID
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPublicMessage {
		return eid, false
	}
	ad := m.PublicMessage.Content.AuthenticatedData
	if len(ad) != 1+len(eid) || ad[0] != 1 {
		return eid, false
	}
	copy(eid[:], ad[1:])
	k, ok := a.epochKeys[eid]
	return eid, ok && k.epoch == m.PublicMessage.Content.Epoch
}
