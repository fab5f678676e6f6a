package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// PSKStore resolves external pre-shared keys by their psk_id (RFC 9420,
// Section 8.4). It returns nil when it does not hold the key.
type PSKStore interface {
	PSK(id []byte) []byte
}

// MapPSKStore is an in-memory PSKStore keyed by string(psk_id).
type MapPSKStore map[string][]byte

// PSK implements PSKStore.
func (m MapPSKStore) PSK(id []byte) []byte { return m[string(id)] }

var _ PSKStore = MapPSKStore(nil)

// Config tunes a Group. The zero value selects the defaults; Validate
// rejects nonsense. Everything but PSKs is serialised with the state.
type Config struct {
	// SecretTree bounds out-of-order and skipped message keys per epoch.
	SecretTree SecretTreeConfig
	// PastEpochs is how many previous epochs' message keys a new epoch
	// keeps, so that messages sent just before a commit still decrypt
	// (a grace period). Zero selects DefaultPastEpochs; negative keeps none.
	// The new epoch shares those epochs' secret trees with their own
	// Groups (a key consumed in one is consumed in both); erasing an
	// epoch's Group ends the grace window for its messages.
	PastEpochs int
	// ResumptionPSKs is how many epochs' resumption_psk values (the
	// current one included) are kept for resumption PSK proposals. Zero
	// selects DefaultResumptionPSKs; negative keeps only the current one.
	ResumptionPSKs int
	// PaddingBlock pads the content of every PrivateMessage to a multiple
	// of this many bytes (RFC 9420, Section 6.3). Zero selects
	// DefaultPaddingBlock; negative disables padding.
	PaddingBlock int
	// PSKs resolves external PSKs; nil holds none. Not serialised: set it
	// again with SetPSKStore after UnmarshalGroup.
	PSKs PSKStore
	// CredentialPolicy decides whether a member may replace its leaf by
	// one with another credential (Updates, UpdatePath leaves, resyncing
	// external commits); nil selects SameIdentity. Not serialised: a
	// custom policy must be set again with SetCredentialPolicy after
	// UnmarshalGroup (until then SameIdentity applies).
	CredentialPolicy CredentialPolicy
}

// Defaults of Config.
const (
	DefaultPastEpochs     = 1
	DefaultResumptionPSKs = 4
	DefaultPaddingBlock   = 32
	maxConfigBound        = 1 << 10
)

// Validate rejects bounds beyond what a state may sensibly hold.
func (c Config) Validate() error {
	if err := c.SecretTree.Validate(); err != nil {
		return err
	}
	if c.PastEpochs > maxConfigBound || c.ResumptionPSKs > maxConfigBound || c.PaddingBlock > 1<<16 {
		return fmt.Errorf("mls: group config bound too large: %w", ErrTooLarge)
	}
	return nil
}

func (c Config) pastEpochs() int {
	switch {
	case c.PastEpochs == 0:
		return DefaultPastEpochs
	case c.PastEpochs < 0:
		return 0
	}
	return c.PastEpochs
}

func (c Config) resumptionPSKs() int {
	switch {
	case c.ResumptionPSKs == 0:
		return DefaultResumptionPSKs
	case c.ResumptionPSKs < 0:
		return 1
	}
	return c.ResumptionPSKs
}

func (c Config) padding(contentLen int) int {
	block := c.PaddingBlock
	switch {
	case block == 0:
		block = DefaultPaddingBlock
	case block < 0:
		return 0
	}
	if r := contentLen % block; r != 0 {
		return block - r
	}
	return 0
}

// Group is the state of one member in one epoch of an MLS group (RFC 9420,
// Sections 8-14). A Group is never advanced in place: creating or
// processing a Commit yields a StagedCommit whose Merge returns a new Group
// for the next epoch, and the parent stays usable for its own epoch's
// messages and for sibling commits. The ratchet tree is shared copy on
// write, so a new epoch costs O(log n) memory.
//
// Decrypting a message consumes its key in the epoch's secret tree, which
// is shared with any children that keep this epoch for their grace window;
// caching a proposal adds it to this epoch's cache. Nothing else mutates a
// Group. A Group is not safe for concurrent use.
type Group struct {
	suite *Suite
	cfg   Config

	ctx    *GroupContext
	ctxEnc []byte
	tree   *RatchetTree
	own    LeafIndex
	sigKey *SigningKey
	// nodeKeys are this member's private keys: its leaf's and those of the
	// parent nodes it learnt from path secrets.
	nodeKeys map[NodeIndex]*HPKEPrivateKey

	secrets         *EpochSecrets // EncryptionSecret, JoinerSecret, WelcomeSecret erased
	interim         []byte
	confirmationTag []byte

	msg       *MessageProtector
	keys      *SecretTree
	proposals []cachedProposal
	past      []*pastEpoch
	// resumption holds resumption_psk of this and earlier epochs, newest first.
	resumption []epochPSK
	// reinit is set when this epoch was created by a commit with a ReInit
	// proposal: the group must not be used for messages any more.
	reinit *ReInit
	erased bool
}

// cachedProposal is a proposal received (or sent) in this epoch, kept for
// commits that include it by reference (RFC 9420, Section 12.4).
type cachedProposal struct {
	ref      []byte
	sender   Sender
	proposal *Proposal
	// leafKey is the private key of this member's own Update proposal.
	leafKey *HPKEPrivateKey
}

// pastEpoch is what a new epoch keeps of an older one to decrypt late
// messages: its message protection and its tree for the senders' keys.
type pastEpoch struct {
	ctx  *GroupContext
	tree *RatchetTree
	msg  *MessageProtector
	keys *SecretTree
	// senderDataSecret and membershipKey are kept for serialisation.
	senderDataSecret, membershipKey []byte
	// owned is set when this state holds the only copy (it was restored
	// by UnmarshalGroup); otherwise the epoch's own Group owns the
	// secrets and erases them.
	owned bool
}

type epochPSK struct {
	epoch uint64
	psk   []byte
}

// Member describes one member of the group.
type Member struct {
	Leaf          LeafIndex
	Identity      []byte // the basic credential's identity, or nil
	Credential    Credential
	SignatureKey  []byte
	EncryptionKey []byte
}

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.suite.ID() }

// GroupID returns the group id; callers must not modify it.
func (g *Group) GroupID() []byte { return g.ctx.GroupID }

// Epoch returns the epoch number.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// GroupContext returns a copy of the epoch's GroupContext.
func (g *Group) GroupContext() *GroupContext { return g.ctx.Clone() }

// OwnLeaf returns this member's leaf index.
func (g *Group) OwnLeaf() LeafIndex { return g.own }

// TreeHash returns the tree hash of the epoch's ratchet tree.
func (g *Group) TreeHash() []byte { return bytes.Clone(g.ctx.TreeHash) }

// EpochAuthenticator returns the epoch_authenticator (RFC 9420, Section 8.7).
func (g *Group) EpochAuthenticator() []byte { return bytes.Clone(g.secrets.EpochAuthenticator) }

// ConfirmationTag returns the confirmation tag of the commit that created
// this epoch (empty for the first epoch of a new group).
func (g *Group) ConfirmationTag() []byte { return bytes.Clone(g.confirmationTag) }

// ReInitProposal returns the ReInit this epoch's commit carried, or nil:
// a group with one is closed for messages; create its successor with
// ReInitGroup.
func (g *Group) ReInitProposal() *ReInit { return g.reinit }

// Tree returns the epoch's ratchet tree; callers must not modify it.
func (g *Group) Tree() *RatchetTree { return g.tree }

// SetPSKStore sets the external PSK store (not part of the serialised state).
func (g *Group) SetPSKStore(s PSKStore) { g.cfg.PSKs = s }

// SetCredentialPolicy sets the group's CredentialPolicy (nil selects
// SameIdentity), e.g. after UnmarshalGroup, which cannot restore a
// function. Later epochs inherit it.
func (g *Group) SetCredentialPolicy(p CredentialPolicy) { g.cfg.CredentialPolicy = p }

// SecretTreeConfig returns the secret tree bounds in force in this epoch
// (carried to the epochs that follow it).
func (g *Group) SecretTreeConfig() SecretTreeConfig { return g.cfg.SecretTree.withDefaults() }

// SetSecretTreeConfig replaces the secret tree bounds of this epoch, of the
// past epochs it keeps and of the epochs that follow it. The bounds are
// part of the serialised state, so without this a state restored by
// UnmarshalGroup keeps the ones it was created with, however the
// application's have changed since. Lowering MaxSkippedKeys erases the
// surplus kept keys, oldest first, as the ratchets next move on.
func (g *Group) SetSecretTreeConfig(c SecretTreeConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	c = c.withDefaults()
	g.cfg.SecretTree = c
	if g.keys != nil {
		g.keys.cfg = c
	}
	for _, p := range g.past {
		if p.keys != nil {
			p.keys.cfg = c
		}
	}
	return nil
}

// Members lists the current members in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	for l := LeafIndex(0); uint32(l) < g.tree.LeafCount(); l++ {
		ln := g.tree.LeafNode(l)
		if ln == nil {
			continue
		}
		m := Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey}
		if ln.Credential.Type == CredentialTypeBasic {
			m.Identity = ln.Credential.Identity
		}
		out = append(out, m)
	}
	return out
}

// Member returns the member at leaf l.
func (g *Group) Member(l LeafIndex) (Member, error) {
	ln := g.tree.LeafNode(l)
	if ln == nil {
		return Member{}, fmt.Errorf("mls: leaf %d: %w", l, ErrUnknownMember)
	}
	m := Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey}
	if ln.Credential.Type == CredentialTypeBasic {
		m.Identity = ln.Credential.Identity
	}
	return m, nil
}

// Export is MLS-Exporter(label, context, length) of this epoch (RFC 9420,
// Section 8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	if g.erased {
		return nil, ErrErased
	}
	return g.suite.Export(g.secrets.ExporterSecret, label, context, length)
}

// ExternalPub returns the public key of the epoch's external key pair
// (RFC 9420, Section 8.3).
func (g *Group) ExternalPub() ([]byte, error) {
	if g.erased {
		return nil, ErrErased
	}
	k, err := g.suite.ExternalKeyPair(g.secrets.ExternalSecret)
	if err != nil {
		return nil, err
	}
	defer k.Erase()
	return bytes.Clone(k.PublicKey()), nil
}

// Erase zeroes every secret of this epoch: key schedule secrets, private
// keys, the secret tree and the message protection of this epoch. Past
// epochs retained for the grace window belong to their own Groups and are
// left alone (unless this state was restored by UnmarshalGroup, which
// made them its own). Children of this epoch that keep it for their grace
// window share its secret tree, so erasing it also ends their window for
// this epoch's messages; erasing a child never affects its parent. The
// signing key is shared by all epochs of the member and is not erased.
func (g *Group) Erase() {
	if g.erased {
		return
	}
	g.erased = true
	g.secrets.Erase()
	for _, k := range g.nodeKeys {
		k.Erase()
	}
	g.nodeKeys = nil
	if g.msg != nil {
		g.msg.Erase()
	}
	if g.keys != nil {
		g.keys.Erase()
	}
	for _, p := range g.past {
		if p.owned {
			p.erase()
		}
	}
	g.past = nil
	for _, r := range g.resumption {
		clear(r.psk)
	}
	g.resumption = nil
	g.proposals = nil
}

func (p *pastEpoch) erase() {
	p.msg.Erase()
	p.keys.Erase()
	clear(p.senderDataSecret)
	clear(p.membershipKey)
}

// CreateParams are the inputs of CreateGroup.
type CreateParams struct {
	Suite CipherSuite
	// GroupID is the new group's id; if empty, Nh random bytes are used.
	GroupID []byte
	// Extensions are the GroupContext extensions, e.g. required_capabilities.
	Extensions Extensions
	// KeyPackage is the creator's own key package bundle; its leaf node
	// becomes leaf 0 and its keys are the creator's.
	Own    *KeyPackageBundle
	Config Config
	Rand   io.Reader
	Now    time.Time
}

// CreateGroup creates a one-member group in epoch 0 (RFC 9420, Section 11).
func CreateGroup(p *CreateParams) (*Group, error) {
	s, err := p.Suite.Suite()
	if err != nil {
		return nil, err
	}
	if err := p.Config.Validate(); err != nil {
		return nil, err
	}
	kp := &p.Own.KeyPackage
	if kp.CipherSuite != p.Suite {
		return nil, fmt.Errorf("mls: key package of suite %v for a %v group: %w", kp.CipherSuite, p.Suite, ErrInvalidKeyPackage)
	}
	groupID := bytes.Clone(p.GroupID)
	if len(groupID) == 0 {
		groupID = make([]byte, s.HashSize())
		if _, err := io.ReadFull(p.Rand, groupID); err != nil {
			return nil, fmt.Errorf("mls: group id: %w", err)
		}
	}
	if err := p.Extensions.checkUnique(); err != nil {
		return nil, err
	}
	// RFC 9420, Section 11.1: the creator must itself support what the
	// group requires.
	if err := checkExtensionsSupported(&kp.LeafNode, p.Extensions); err != nil {
		return nil, fmt.Errorf("mls: creating group: %w", err)
	}
	tree := NewRatchetTree(s, kp.LeafNode.Clone())
	ctx := &GroupContext{
		Version:     ProtocolVersionMLS10,
		CipherSuite: p.Suite,
		GroupID:     groupID,
		Epoch:       0,
		TreeHash:    tree.TreeHash(),
		Extensions:  cloneExtensions(p.Extensions),
	}
	ctx.ConfirmedTranscriptHash = []byte{}
	// RFC 9420, Section 8: epoch 0 starts from a random init_secret and the
	// interim transcript hash of an empty confirmation tag.
	initSecret := make([]byte, s.HashSize())
	if _, err := io.ReadFull(p.Rand, initSecret); err != nil {
		return nil, fmt.Errorf("mls: init secret: %w", err)
	}
	defer clear(initSecret)
	commitSecret := make([]byte, s.HashSize())
	if _, err := io.ReadFull(p.Rand, commitSecret); err != nil {
		return nil, fmt.Errorf("mls: commit secret: %w", err)
	}
	defer clear(commitSecret)
	ctxEnc, err := ctx.MarshalBinary()
	if err != nil {
		return nil, err
	}
	secrets, err := s.DeriveEpochSecrets(initSecret, commitSecret, nil, ctxEnc)
	if err != nil {
		return nil, err
	}
	leafKey, err := s.ParseHPKEPrivateKey(p.Own.EncryptionKey.Bytes())
	if err != nil {
		return nil, err
	}
	sig, err := s.ParseSigningKey(p.Own.SigningKey.Bytes())
	if err != nil {
		return nil, err
	}
	interim, err := s.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, nil)
	if err != nil {
		return nil, err
	}
	g := &Group{
		suite:    s,
		cfg:      p.Config,
		ctx:      ctx,
		ctxEnc:   ctxEnc,
		tree:     tree,
		own:      0,
		sigKey:   sig,
		nodeKeys: map[NodeIndex]*HPKEPrivateKey{0: leafKey},
		interim:  interim,
	}
	if err := g.setSecrets(secrets); err != nil {
		return nil, err
	}
	return g, nil
}

// setSecrets installs the epoch secrets: builds the secret tree and message
// protector and erases what the epoch does not keep.
func (g *Group) setSecrets(secrets *EpochSecrets) error {
	s := g.suite
	keys, err := s.NewSecretTree(secrets.EncryptionSecret, g.tree.LeafCount(), g.cfg.SecretTree)
	if err != nil {
		secrets.Erase()
		return err
	}
	secrets.EraseEncryptionSecret()
	secrets.EraseJoiner()
	msg, err := s.NewMessageProtector(g.ctx, keys, secrets.SenderDataSecret, secrets.MembershipKey)
	if err != nil {
		secrets.Erase()
		keys.Erase()
		return err
	}
	g.secrets, g.keys, g.msg = secrets, keys, msg
	g.resumption = append([]epochPSK{{epoch: g.ctx.Epoch, psk: bytes.Clone(secrets.ResumptionPSK)}}, g.resumption...)
	if n := g.cfg.resumptionPSKs(); len(g.resumption) > n {
		for _, r := range g.resumption[n:] {
			clear(r.psk)
		}
		g.resumption = g.resumption[:n:n]
	}
	return nil
}

func cloneExtensions(es Extensions) Extensions {
	out := make(Extensions, len(es))
	for i, e := range es {
		out[i] = Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return out
}

// checkExtensionsSupported checks that a member supports every
// non-default extension of a GroupContext, and whatever its
// required_capabilities extension lists (RFC 9420, Sections 11.1, 12.1.7).
func checkExtensionsSupported(ln *LeafNode, exts Extensions) error {
	for _, e := range exts {
		if !ln.Capabilities.SupportsExtension(e.Type) {
			return fmt.Errorf("extension 0x%04x not supported by a member", uint16(e.Type))
		}
	}
	if e, ok := exts.Find(ExtensionRequiredCapabilities); ok {
		rc, err := UnmarshalRequiredCapabilities(e.Data)
		if err != nil {
			return err
		}
		if err := ln.Capabilities.checkRequired(rc); err != nil {
			return err
		}
	}
	return nil
}

// requiredCapabilities returns the group's required_capabilities, if any.
func requiredCapabilities(exts Extensions) (*RequiredCapabilities, error) {
	e, ok := exts.Find(ExtensionRequiredCapabilities)
	if !ok {
		return nil, nil
	}
	return UnmarshalRequiredCapabilities(e.Data)
}

// leafValidation returns the parameters of leaf validation in this epoch.
func (g *Group) leafValidation(now time.Time, ignoreLifetime bool) (*LeafValidation, error) {
	rc, err := requiredCapabilities(g.ctx.Extensions)
	if err != nil {
		return nil, err
	}
	return &LeafValidation{GroupID: g.ctx.GroupID, Version: g.ctx.Version, RequiredCapabilities: rc, Now: now, IgnoreLifetime: ignoreLifetime}, nil
}

// child returns a shallow copy of g as the starting point of the next
// epoch; every field the transition changes is replaced, never mutated.
func (g *Group) child() *Group {
	c := &Group{
		suite:      g.suite,
		cfg:        g.cfg,
		own:        g.own,
		sigKey:     g.sigKey,
		nodeKeys:   make(map[NodeIndex]*HPKEPrivateKey, len(g.nodeKeys)),
		resumption: cloneResumption(g.resumption),
	}
	for x, k := range g.nodeKeys {
		c.nodeKeys[x] = k.clone()
	}
	// The new epoch keeps this one (and up to K-1 of its own past epochs)
	// for late messages.
	if k := g.cfg.pastEpochs(); k > 0 && g.msg != nil {
		c.past = append(c.past, &pastEpoch{
			ctx: g.ctx, tree: g.tree, msg: g.msg, keys: g.keys,
			senderDataSecret: g.secrets.SenderDataSecret, membershipKey: g.secrets.MembershipKey,
		})
		for _, p := range g.past {
			if len(c.past) >= k {
				break
			}
			c.past = append(c.past, p)
		}
	}
	return c
}

func cloneResumption(rs []epochPSK) []epochPSK {
	out := make([]epochPSK, len(rs))
	for i, r := range rs {
		out[i] = epochPSK{epoch: r.epoch, psk: bytes.Clone(r.psk)}
	}
	return out
}
