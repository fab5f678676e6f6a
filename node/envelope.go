package node

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"grove/mls"
	"grove/p2p"
)

// What the group topic shows to those who are not members (issue 19).
//
// Every group has a group secret: 32 random bytes that its creator puts
// in a GroupContext extension (ExtensionGroupSecret), so that a joiner
// learns it from the GroupInfo inside its Welcome (encrypted to its
// KeyPackage) and every epoch carries it on, whatever the Commits do
// (a GroupContextExtensions proposal, leave.go's handover, copies the
// other extensions). A rejoiner holds it already, and the GroupInfo it
// rejoins from (served only to members over /grove/sync/1) carries it
// too. It is fixed for the group's life: members one epoch apart, or on
// sibling branches, must meet on one topic.
//
// From it come the topic key, which p2p turns into the topic name and
// the DHT rendezvous key (so neither can be computed from the group id,
// which invite codes and MLS framing carry), and the envelope key: every
// gossip payload, MLS message or tip, travels sealed with
// XChaCha20-Poly1305 under the envelope key and padded to a size bucket
// (sealEnvelope), so that a peer on the topic without the secret sees
// random bytes of a few sizes, and the gossip validator drops whatever
// does not open before it is forwarded.
//
// Inside the envelope, every MLS message and tip is sealed again, with a
// key of the epoch it belongs to (epochseal.go), so that a removed member,
// which keeps the group secret, reads nothing of an epoch after its
// removal, not even the MLS framing (group id, epoch number, content
// type, authenticated data), a rejoin's external Commit included (sealed
// with a key served along with the GroupInfo it was made from).
// Handshakes are
// PrivateMessages besides (group_commit.go), so that what sync serves
// and the log holds do not show them either. What each kind of observer
// still learns is listed in the package doc (doc.go).

// ExtensionGroupSecret is the private-range GroupContext extension that
// holds the group secret: a version byte and groupSecretLen bytes.
const ExtensionGroupSecret mls.ExtensionType = 0xF0A2

const (
	groupSecretVersion = 1
	groupSecretLen     = 32
)

// groveExtensions are the non-default extensions Grove's GroupContexts
// carry: every leaf must list them in its capabilities (RFC 9420, Section
// 7.2), or Adds and external joins of it are invalid.
var groveExtensions = []mls.ExtensionType{ExtensionPolicy, ExtensionGroupSecret}

// newGroupSecretExtension returns a fresh group secret extension.
func newGroupSecretExtension() mls.Extension {
	data := make([]byte, 1+groupSecretLen)
	data[0] = groupSecretVersion
	rand.Read(data[1:])
	return mls.Extension{Type: ExtensionGroupSecret, Data: data}
}

// groupSecret returns the group secret of an epoch, or nil when the group
// has none (created before the extension existed, or the extension is
// malformed).
func groupSecret(g *mls.Group) []byte {
	ext, ok := g.GroupContext().Extensions.Find(ExtensionGroupSecret)
	if !ok || len(ext.Data) != 1+groupSecretLen || ext.Data[0] != groupSecretVersion {
		return nil
	}
	return ext.Data[1:]
}

// wireKeys are the keys of a group's gossip, fixed for the actor's life
// (set before it subscribes, read by the validator on p2p's goroutines).
type wireKeys struct {
	topic p2p.GroupID // what p2p names the topic and rendezvous key after
	aead  cipher.AEAD // envelope
}

// newWireKeys derives the wire keys from the group secret. A group
// without one (made before it existed) falls back to its group id, which
// protects nothing against whoever knows the id, but keeps such a group
// working.
func newWireKeys(groupID, secret []byte) (*wireKeys, error) {
	ikm, salt := secret, []byte("grove group secret")
	if ikm == nil {
		ikm, salt = groupID, []byte("grove group id")
	}
	topic, err := hkdf.Key(sha256.New, ikm, salt, "grove topic key", 32)
	if err != nil {
		return nil, fmt.Errorf("node: topic key: %w", err)
	}
	key, err := hkdf.Key(sha256.New, ikm, salt, "grove envelope key", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("node: envelope key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("node: envelope key: %w", err)
	}
	return &wireKeys{topic: p2p.GroupID(topic), aead: aead}, nil
}

// envelopeVersion is the first byte of every envelope, in the clear (the
// same for every group, so it tells nothing): a later format can be told
// apart and ignored rather than taken for garbage.
const envelopeVersion = 1

// Padding buckets: an envelope is minEnvelope bytes or the next power of
// two up to bigBucket, then a multiple of bigBucket. A chat line, a tip
// and a small Commit all look alike; what a size still tells is roughly
// how big a Commit's path (so the group) is, within a factor of two.
const (
	minEnvelope = 256
	bigBucket   = 64 << 10
)

// envelopeOverhead is what sealing adds besides padding: version, nonce,
// the body's length prefix (at most 3 bytes for a body under 2 MiB) and
// the AEAD tag.
const envelopeOverhead = 1 + chacha20poly1305.NonceSizeX + 3 + chacha20poly1305.Overhead

// paddedSize returns the envelope size for a payload of n bytes.
func paddedSize(n int) int {
	need := n + envelopeOverhead
	if need <= minEnvelope {
		return minEnvelope
	}
	if need > bigBucket {
		return (need + bigBucket - 1) / bigBucket * bigBucket
	}
	size := minEnvelope
	for size < need {
		size *= 2
	}
	return size
}

// errEnvelope: a gossip payload that does not open under the group's
// envelope key (not from a holder of the group secret, or corrupted).
var errEnvelope = fmt.Errorf("%w: envelope does not open", ErrMalformed)

// seal wraps a gossip payload: version || nonce || XChaCha20-Poly1305(
// uvarint(len) || payload || zero padding), the version authenticated as
// associated data, the whole paddedSize(len(payload)) bytes long.
func (k *wireKeys) seal(payload []byte) []byte {
	size := paddedSize(len(payload))
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, size)
	out[0] = envelopeVersion
	rand.Read(out[1:])
	plain := make([]byte, 0, size-len(out)-chacha20poly1305.Overhead)
	plain = binary.AppendUvarint(plain, uint64(len(payload)))
	plain = append(plain, payload...)
	plain = plain[:cap(plain)] // zero padding
	return k.aead.Seal(out, out[1:], plain, out[:1])
}

// open unwraps an envelope and returns its payload.
func (k *wireKeys) open(env []byte) ([]byte, error) {
	if len(env) < minEnvelope || env[0] != envelopeVersion {
		return nil, errEnvelope
	}
	nonce := env[1 : 1+chacha20poly1305.NonceSizeX]
	plain, err := k.aead.Open(nil, nonce, env[1+chacha20poly1305.NonceSizeX:], env[:1])
	if err != nil {
		return nil, errEnvelope
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || n > uint64(len(plain)-w) {
		return nil, errEnvelope
	}
	body, pad := plain[w:w+int(n)], plain[w+int(n):]
	for _, b := range pad {
		if b != 0 {
			return nil, errEnvelope
		}
	}
	return body, nil
}
