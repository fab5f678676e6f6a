package mls

import (
	"bytes"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// The serialised group state, for the application's store. It is not a
// wire format of RFC 9420; it is versioned so that a later layout can
// still read this one:
//
//	struct {
//	  opaque magic[4] = "MLSG"; uint16 version = 1;
//	  CipherSuite suite; config;
//	  GroupContext context; opaque tree<V>; uint32 own; opaque signature_priv<V>;
//	  NodeKey node_keys<V>;                 // sorted by node
//	  opaque epoch_secrets[8]<V>; opaque interim<V>; opaque confirmation_tag<V>;
//	  SecretTree secret_tree;
//	  CachedProposal proposals<V>; PastEpoch past<V>; ResumptionPSK resumption<V>;
//	  optional<ReInit> reinit;
//	}
//
// Maps are written in key order, so equal states encode to equal bytes.
const (
	groupStateMagic   = "MLSG"
	groupStateVersion = 1
)

// MarshalBinary serialises the whole state of this epoch, secrets
// included; the result must be stored encrypted. UnmarshalGroup restores
// it exactly.
func (g *Group) MarshalBinary() ([]byte, error) {
	if g.erased {
		return nil, ErrErased
	}
	treeEnc, err := g.tree.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return marshal(func(b *cryptobyte.Builder) {
		b.AddBytes([]byte(groupStateMagic))
		b.AddUint16(groupStateVersion)
		b.AddUint16(uint16(g.suite.ID()))
		marshalConfig(b, &g.cfg)
		g.ctx.marshal(b)
		addVarBytes(b, treeEnc)
		b.AddUint32(uint32(g.own))
		addVarBytes(b, g.sigKey.Bytes())
		addVarVector(b, func(b *cryptobyte.Builder) {
			for _, x := range sortedKeys(g.nodeKeys) {
				b.AddUint32(uint32(x))
				addVarBytes(b, g.nodeKeys[x].Bytes())
			}
		})
		for _, sec := range g.secrets.kept() {
			addVarBytes(b, *sec)
		}
		addVarBytes(b, g.interim)
		addVarBytes(b, g.confirmationTag)
		g.keys.marshal(b)
		addVarVector(b, func(b *cryptobyte.Builder) {
			for i := range g.proposals {
				cp := &g.proposals[i]
				addVarBytes(b, cp.ref)
				cp.sender.marshal(b)
				cp.proposal.marshal(b)
				addOptional(b, cp.leafKey != nil)
				if cp.leafKey != nil {
					addVarBytes(b, cp.leafKey.Bytes())
				}
			}
		})
		addVarVector(b, func(b *cryptobyte.Builder) {
			for _, p := range g.past {
				p.ctx.marshal(b)
				enc, err := p.tree.MarshalBinary()
				if err != nil {
					b.SetError(err)
					return
				}
				addVarBytes(b, enc)
				addVarBytes(b, p.senderDataSecret)
				addVarBytes(b, p.membershipKey)
				p.keys.marshal(b)
			}
		})
		addVarVector(b, func(b *cryptobyte.Builder) {
			for _, r := range g.resumption {
				b.AddUint64(r.epoch)
				addVarBytes(b, r.psk)
			}
		})
		addOptional(b, g.reinit != nil)
		if g.reinit != nil {
			g.reinit.marshal(b)
		}
	})
}

// kept lists the epoch secrets a Group retains, in serialisation order.
func (e *EpochSecrets) kept() []*[]byte {
	return []*[]byte{
		&e.SenderDataSecret, &e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey,
		&e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	}
}

func sortedKeys[K ~uint32, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func marshalConfig(b *cryptobyte.Builder, c *Config) {
	b.AddUint32(uint32(int32(c.PastEpochs)))
	b.AddUint32(uint32(int32(c.ResumptionPSKs)))
	b.AddUint32(uint32(int32(c.PaddingBlock)))
	b.AddUint32(c.SecretTree.MaxForwardGeneration)
	b.AddUint32(uint32(int32(c.SecretTree.MaxSkippedKeys)))
}

func unmarshalConfig(s *cryptobyte.String, c *Config) bool {
	var a, r, p, f, k uint32
	if !s.ReadUint32(&a) || !s.ReadUint32(&r) || !s.ReadUint32(&p) || !s.ReadUint32(&f) || !s.ReadUint32(&k) {
		return false
	}
	*c = Config{PastEpochs: int(int32(a)), ResumptionPSKs: int(int32(r)), PaddingBlock: int(int32(p)),
		SecretTree: SecretTreeConfig{MaxForwardGeneration: f, MaxSkippedKeys: int(int32(k))}}
	return true
}

// marshal writes the secret tree's retained state: the unexpanded node
// secrets and each sender's ratchets with their skipped keys.
func (t *SecretTree) marshal(b *cryptobyte.Builder) {
	b.AddUint32(t.nLeaves)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, x := range sortedKeys(t.nodes) {
			b.AddUint32(uint32(x))
			addVarBytes(b, t.nodes[x])
		}
	})
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, l := range sortedKeys(t.senders) {
			b.AddUint32(uint32(l))
			for _, r := range t.senders[l] {
				b.AddUint64(r.next)
				addOptional(b, r.secret != nil)
				if r.secret != nil {
					addVarBytes(b, r.secret)
				}
				addVarVector(b, func(b *cryptobyte.Builder) {
					for _, g := range sortedKeys(r.skipped) {
						k := r.skipped[g]
						b.AddUint32(g)
						addVarBytes(b, k.Key)
						addVarBytes(b, k.Nonce)
					}
				})
			}
		}
	})
}

// unmarshalSecretTree reads a secret tree for a ratchet tree of nLeaves
// leaves, checking every index and length.
func (s *Suite) unmarshalSecretTree(str *cryptobyte.String, nLeaves uint32, cfg SecretTreeConfig) (*SecretTree, bool) {
	t := &SecretTree{suite: s, cfg: cfg.withDefaults(), nodes: map[NodeIndex][]byte{}, senders: map[LeafIndex]*senderRatchets{}}
	if !str.ReadUint32(&t.nLeaves) || t.nLeaves != nLeaves {
		return nil, false
	}
	w := nodeWidth(nLeaves)
	last := int64(-1)
	ok := readVectorElems(str, func(str *cryptobyte.String) bool {
		var x uint32
		var sec []byte
		if !str.ReadUint32(&x) || int64(x) <= last || x >= w || !readVarBytes(str, &sec) || len(sec) != s.nh {
			return false
		}
		last = int64(x)
		t.nodes[NodeIndex(x)] = sec
		return true
	})
	last = -1
	ok = ok && readVectorElems(str, func(str *cryptobyte.String) bool {
		var l uint32
		if !str.ReadUint32(&l) || int64(l) <= last || l >= nLeaves {
			return false
		}
		last = int64(l)
		var rs senderRatchets
		for i := range rs {
			r := &hashRatchet{skipped: map[uint32]*RatchetKey{}}
			var present bool
			if !str.ReadUint64(&r.next) || r.next > 1<<32 || !readOptional(str, &present) {
				return false
			}
			if present && (!readVarBytes(str, &r.secret) || len(r.secret) != s.nh) {
				return false
			}
			lastGen := int64(-1)
			if !readVectorElems(str, func(str *cryptobyte.String) bool {
				k := &RatchetKey{}
				if !str.ReadUint32(&k.Generation) || int64(k.Generation) <= lastGen || uint64(k.Generation) >= r.next ||
					!readVarBytes(str, &k.Key) || len(k.Key) != s.nk || !readVarBytes(str, &k.Nonce) || len(k.Nonce) != s.nn {
					return false
				}
				lastGen = int64(k.Generation)
				r.skipped[k.Generation] = k
				return len(r.skipped) <= max(t.cfg.MaxSkippedKeys, 1)
			}) {
				return false
			}
			rs[i] = r
		}
		t.senders[LeafIndex(l)] = &rs
		return true
	})
	return t, ok
}

// UnmarshalGroup restores a Group serialised by MarshalBinary. Hostile or
// corrupt input yields an error wrapping ErrInvalidState (and ErrDecode
// for malformed encodings); the state's consistency is checked (tree hash
// against the GroupContext, own leaf and signature key, private keys
// against the tree's public keys, secret lengths, secret-tree indices), but
// the tree's signatures are not re-verified: the store is trusted to hold
// what this package wrote. Call SetPSKStore to resolve external PSKs again.
func UnmarshalGroup(data []byte) (*Group, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidState, fmt.Sprintf(format, args...))
	}
	s := cryptobyte.String(data)
	var magic []byte
	var version, suiteID uint16
	if !s.ReadBytes(&magic, 4) || string(magic) != groupStateMagic || !s.ReadUint16(&version) {
		return nil, fail("not a group state: %v", ErrDecode)
	}
	if version != groupStateVersion {
		return nil, fail("state version %d", version)
	}
	if !s.ReadUint16(&suiteID) {
		return nil, fail("%v", ErrDecode)
	}
	suite, err := CipherSuite(suiteID).Suite()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	g := &Group{suite: suite, ctx: new(GroupContext), secrets: new(EpochSecrets), nodeKeys: map[NodeIndex]*HPKEPrivateKey{}}
	var treeEnc, sigRaw []byte
	if !unmarshalConfig(&s, &g.cfg) || !g.ctx.unmarshal(&s) || !readVarBytes(&s, &treeEnc) ||
		!s.ReadUint32((*uint32)(&g.own)) || !readVarBytes(&s, &sigRaw) {
		return nil, fail("%v", ErrDecode)
	}
	if err := g.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if g.ctx.CipherSuite != suite.ID() || g.ctx.Version != ProtocolVersionMLS10 {
		return nil, fail("group context of suite %v version %d", g.ctx.CipherSuite, g.ctx.Version)
	}
	if g.tree, err = UnmarshalRatchetTree(suite, treeEnc); err != nil {
		return nil, fmt.Errorf("%w: tree: %w", ErrInvalidState, err)
	}
	if !bytes.Equal(g.tree.TreeHash(), g.ctx.TreeHash) {
		return nil, fail("tree hash does not match the group context")
	}
	own := g.tree.LeafNode(g.own)
	if own == nil {
		return nil, fail("own leaf %d is blank", g.own)
	}
	if g.sigKey, err = suite.ParseSigningKey(sigRaw); err != nil || !bytes.Equal(g.sigKey.PublicKey(), own.SignatureKey) || !bytes.Equal(g.sigKey.Bytes(), sigRaw) {
		return nil, fail("signature key does not match the own leaf")
	}
	if g.ctxEnc, err = g.ctx.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	parseKey := func(raw []byte) (*HPKEPrivateKey, bool) {
		k, err := suite.ParseHPKEPrivateKey(raw)
		return k, err == nil && bytes.Equal(k.Bytes(), raw)
	}
	last := int64(-1)
	ok := readVectorElems(&s, func(s *cryptobyte.String) bool {
		var x uint32
		var raw []byte
		if !s.ReadUint32(&x) || int64(x) <= last || !readVarBytes(s, &raw) {
			return false
		}
		last = int64(x)
		k, ok := parseKey(raw)
		if !ok || x >= g.tree.width() || !bytes.Equal(g.tree.encryptionKey(NodeIndex(x)), k.PublicKey()) {
			return false
		}
		g.nodeKeys[NodeIndex(x)] = k
		return true
	})
	if !ok {
		return nil, fail("node keys: %v", ErrDecode)
	}
	for _, sec := range g.secrets.kept() {
		if !readVarBytes(&s, sec) || len(*sec) != suite.nh {
			return nil, fail("epoch secrets: %v", ErrDecode)
		}
	}
	if !readVarBytes(&s, &g.interim) || len(g.interim) != suite.nh || !readVarBytes(&s, &g.confirmationTag) {
		return nil, fail("transcript: %v", ErrDecode)
	}
	if g.keys, ok = suite.unmarshalSecretTree(&s, g.tree.LeafCount(), g.cfg.SecretTree); !ok {
		return nil, fail("secret tree: %v", ErrDecode)
	}
	if g.msg, err = suite.NewMessageProtector(g.ctx, g.keys, g.secrets.SenderDataSecret, g.secrets.MembershipKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	ok = readVectorElems(&s, func(s *cryptobyte.String) bool {
		var cp cachedProposal
		cp.proposal = new(Proposal)
		var present bool
		if !readVarBytes(s, &cp.ref) || !cp.sender.unmarshal(s) || !cp.proposal.unmarshal(s) || !readOptional(s, &present) {
			return false
		}
		if present {
			var raw []byte
			if !readVarBytes(s, &raw) {
				return false
			}
			if cp.leafKey, ok = parseKey(raw); !ok {
				return false
			}
		}
		g.proposals = append(g.proposals, cp)
		return len(g.proposals) <= 1<<16
	})
	if !ok {
		return nil, fail("proposals: %v", ErrDecode)
	}
	ok = readVectorElems(&s, func(s *cryptobyte.String) bool {
		p := &pastEpoch{ctx: new(GroupContext), owned: true}
		var enc []byte
		if !p.ctx.unmarshal(s) || !readVarBytes(s, &enc) || !readVarBytes(s, &p.senderDataSecret) ||
			!readVarBytes(s, &p.membershipKey) || len(p.senderDataSecret) != suite.nh || len(p.membershipKey) != suite.nh ||
			p.ctx.CipherSuite != suite.ID() || !bytes.Equal(p.ctx.GroupID, g.ctx.GroupID) || p.ctx.Epoch >= g.ctx.Epoch {
			return false
		}
		var err error
		if p.tree, err = UnmarshalRatchetTree(suite, enc); err != nil || !bytes.Equal(p.tree.TreeHash(), p.ctx.TreeHash) {
			return false
		}
		var ok bool
		if p.keys, ok = suite.unmarshalSecretTree(s, p.tree.LeafCount(), g.cfg.SecretTree); !ok {
			return false
		}
		if p.msg, err = suite.NewMessageProtector(p.ctx, p.keys, p.senderDataSecret, p.membershipKey); err != nil {
			return false
		}
		g.past = append(g.past, p)
		return len(g.past) <= g.cfg.pastEpochs()
	})
	if !ok {
		return nil, fail("past epochs: %v", ErrDecode)
	}
	ok = readVectorElems(&s, func(s *cryptobyte.String) bool {
		var r epochPSK
		if !s.ReadUint64(&r.epoch) || !readVarBytes(s, &r.psk) || len(r.psk) != suite.nh {
			return false
		}
		g.resumption = append(g.resumption, r)
		return len(g.resumption) <= g.cfg.resumptionPSKs()
	})
	if !ok {
		return nil, fail("resumption PSKs: %v", ErrDecode)
	}
	var present bool
	if !readOptional(&s, &present) {
		return nil, fail("%v", ErrDecode)
	}
	if present {
		g.reinit = new(ReInit)
		if !g.reinit.unmarshal(&s) {
			return nil, fail("reinit: %v", ErrDecode)
		}
	}
	if !s.Empty() {
		return nil, fail("trailing bytes: %v", ErrDecode)
	}
	return g, nil
}
