package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/account"
	"grove/mls"
)

// identityVersion versions the credential identity encoding; version 2
// appends the account's device certificate (devices.go).
const (
	identityVersion   = 1
	identityVersionV2 = 2
)

// memberIdentity is what a member's BasicCredential identity binds: the
// display name and the libp2p peer ID of the device (ARCHITECTURE.md,
// section 5), so members know how to reach each other and whom to serve
// history. Encoding: "grove-id" || version || vec(name) || vec(peer ID).
type memberIdentity struct {
	Name string
	Peer peer.ID
	// Cert, when set, is the account's certificate of this device
	// (version 2): Name is then the account's (the person's) name.
	Cert *account.Certificate
}

var identityMagic = []byte("grove-id")

func (m memberIdentity) marshal() []byte {
	w := wbuf{b: slices.Clone(identityMagic)}
	if m.Cert == nil {
		w.u8(identityVersion)
	} else {
		w.u8(identityVersionV2)
	}
	w.vec([]byte(m.Name))
	w.vec([]byte(m.Peer))
	if m.Cert != nil {
		// The certificate without what the identity or the leaf already
		// carries (the person's name, the peer id, the signature key), so
		// that an identity stays within store.MaxSenderLen.
		w.raw(m.Cert.Account)
		w.vec([]byte(m.Cert.Device.Name))
		w.u64(uint64(m.Cert.Device.Created.Unix()))
		w.raw(m.Cert.Signature)
	}
	return w.b
}

func parseIdentity(b []byte) (memberIdentity, error) {
	if !bytes.HasPrefix(b, identityMagic) {
		return memberIdentity{}, fmt.Errorf("%w: not a grove identity", ErrMalformed)
	}
	r := rbuf{b: b[len(identityMagic):]}
	v := r.u8("identity version")
	if r.err == nil && v != identityVersion && v != identityVersionV2 {
		return memberIdentity{}, fmt.Errorf("%w: identity version %d", ErrMalformed, v)
	}
	name := r.vec(maxNameLen, "name")
	p := r.vec(128, "peer")
	var cert *account.Certificate
	if v == identityVersionV2 {
		cert = &account.Certificate{Account: account.PublicKey(bytes.Clone(r.fixed(ed25519.PublicKeySize, "account")))}
		cert.Device.Name = string(r.vec(maxDeviceNameLen, "device name"))
		created := r.u64("created")
		cert.Signature = bytes.Clone(r.fixed(ed25519.SignatureSize, "certificate signature"))
		if created > 1<<62 {
			return memberIdentity{}, fmt.Errorf("%w: certificate time", ErrMalformed)
		}
		cert.Device.Created = time.Unix(int64(created), 0).UTC()
	}
	if err := r.done("identity"); err != nil {
		return memberIdentity{}, err
	}
	id, err := peer.IDFromBytes(p)
	if err != nil {
		return memberIdentity{}, fmt.Errorf("%w: peer id: %v", ErrMalformed, err)
	}
	// A name from the network is checked like our own: a credential whose
	// name hides characters is not a Grove identity (names.go).
	if err := checkName(string(name)); err != nil {
		return memberIdentity{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	mi := memberIdentity{Name: string(name), Peer: id}
	if cert != nil {
		// The certificate is for this person and peer by construction; its
		// signature covers the leaf's signature key, which only the leaf
		// knows, so it is checked where the leaf is (verifyDevice).
		// Cert.Device.SignatureKey stays empty here.
		cert.Device.AccountName, cert.Device.Peer = mi.Name, []byte(id)
		if err := checkName(cert.Device.Name); err != nil {
			return memberIdentity{}, fmt.Errorf("%w: device name: %v", ErrMalformed, err)
		}
		mi.Cert = cert
	}
	return mi, nil
}

// maxNameLen bounds display names, maxDeviceNameLen device names (an
// identity with both at their longest is 250 bytes, within
// store.MaxSenderLen).
const (
	maxNameLen       = 64
	maxDeviceNameLen = 32
)

func validName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("display name %q cannot be used: %w (use 1 to %d bytes of visible letters, digits, punctuation and spaces)", name, err, maxNameLen)
	}
	return nil
}

// fingerprint is a member's safety number for out-of-band verification:
// SHA-256("grove fingerprint" || vec(signature key) || vec(identity)),
// first 20 bytes as ten groups of four hex digits. Two devices that show the
// same fingerprint for a member hold the same key for the same identity.
func fingerprint(sigKey, identity []byte) string {
	h := sha256.New()
	h.Write([]byte("grove fingerprint"))
	var l [8]byte
	h.Write(binary.AppendUvarint(l[:0], uint64(len(sigKey))))
	h.Write(sigKey)
	h.Write(binary.AppendUvarint(l[:0], uint64(len(identity))))
	h.Write(identity)
	sum := h.Sum(nil)
	var sb strings.Builder
	for i := 0; i < 20; i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x%02x", sum[i], sum[i+1])
	}
	return sb.String()
}

// ---- group policy ----

// ExtensionPolicy is the private-range GroupContext extension (RFC 9420,
// Section 13.3) that holds Grove's group policy, so that every member reads
// the same policy from the state itself and commitorder judges Commits
// deterministically.
const ExtensionPolicy mls.ExtensionType = 0xF0A1

// Policy versions: 2 adds the group's shared name (a rename, manage.go).
// A policy without a name is written as version 1, so that the policy of
// every group made before renames existed keeps its bytes.
// Version 3 adds the account rotations (accountrotate.go) and the history
// a new member is sent (history.go), and is written only when either is
// set.
const (
	policyVersion     = 1
	policyVersionName = 2
	policyVersionV3   = 3
)

// maxPolicyRotations bounds the rotations a policy holds.
const maxPolicyRotations = 32

// policy: who may add and remove (admins, by credential identity) and how
// many of the last RateWindow canonical commits one member may author.
// Any member may leave and rotate its own keys. Name, when set, is the
// name the group's admins gave it (group rename).
type policy struct {
	Admins    [][]byte
	RateLimit uint8
	Name      string
	// Rotations are the account rotations known to the group, encoded
	// (account.Rotation), in the order committed: members read each
	// account's chain from them (accountrotate.go).
	Rotations [][]byte
	// History is how far back a new member is sent the group's messages
	// by the member that adds it; zero sends nothing.
	History time.Duration
}

func (p *policy) marshal() []byte {
	var w wbuf
	v3 := len(p.Rotations) > 0 || p.History > 0
	switch {
	case v3:
		w.u8(policyVersionV3)
	case p.Name != "":
		w.u8(policyVersionName)
	default:
		w.u8(policyVersion)
	}
	w.u8(p.RateLimit)
	w.u8(byte(len(p.Admins)))
	for _, a := range p.Admins {
		w.vec(a)
	}
	if p.Name != "" || v3 {
		w.vec([]byte(p.Name))
	}
	if v3 {
		w.u8(byte(len(p.Rotations)))
		for _, r := range p.Rotations {
			w.vec(r)
		}
		w.u64(uint64(p.History / time.Second))
	}
	return w.b
}

func unmarshalPolicy(data []byte) (*policy, error) {
	r := rbuf{b: data}
	v := r.u8("policy version")
	if r.err == nil && v != policyVersion && v != policyVersionName && v != policyVersionV3 {
		return nil, fmt.Errorf("%w: policy version %d", ErrMalformed, v)
	}
	p := &policy{RateLimit: r.u8("rate limit")}
	n := int(r.u8("admins"))
	for i := 0; i < n && r.err == nil; i++ {
		p.Admins = append(p.Admins, r.vec(maxIdentity, "admin"))
	}
	if v == policyVersionName {
		p.Name = string(r.vec(maxNameLen, "group name"))
		if r.err == nil && p.Name == "" {
			// Canonical: an unnamed policy is version 1.
			return nil, fmt.Errorf("%w: version 2 policy without a name", ErrMalformed)
		}
	}
	if v == policyVersionV3 {
		p.Name = string(r.vec(maxNameLen, "group name"))
		nr := int(r.u8("rotations"))
		if nr > maxPolicyRotations {
			return nil, fmt.Errorf("%w: policy with %d rotations", ErrMalformed, nr)
		}
		for i := 0; i < nr && r.err == nil; i++ {
			p.Rotations = append(p.Rotations, r.vec(account.MaxRotationBytes, "rotation"))
		}
		secs := r.u64("history")
		if secs > uint64(maxHistoryForNewMembers/time.Second) {
			return nil, fmt.Errorf("%w: policy history of %d seconds", ErrMalformed, secs)
		}
		p.History = time.Duration(secs) * time.Second
		if r.err == nil && len(p.Rotations) == 0 && p.History == 0 {
			// Canonical: a policy without either is version 1 or 2.
			return nil, fmt.Errorf("%w: version 3 policy without rotations or history", ErrMalformed)
		}
	}
	if err := r.done("policy"); err != nil {
		return nil, err
	}
	return p, nil
}

// groupPolicy reads the policy of an epoch; a group without the extension
// has no admins (everyone may add and remove) and the default rate limit.
func groupPolicy(g *mls.Group) *policy {
	ext, ok := g.GroupContext().Extensions.Find(ExtensionPolicy)
	if !ok {
		return &policy{}
	}
	p, err := unmarshalPolicy(ext.Data)
	if err != nil {
		return &policy{}
	}
	return p
}
