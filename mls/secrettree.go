package mls

import (
	"fmt"
	"math"
)

// RatchetType selects one of a sender's two hash ratchets (RFC 9420,
// Section 9): handshake messages (proposals, commits) and application
// messages use independent ratchets.
type RatchetType uint8

// The two ratchets of each sender.
const (
	HandshakeRatchet RatchetType = iota
	ApplicationRatchet
)

// String names the ratchet as the secret tree's derivation labels do
// ("handshake", "application"; RFC 9420, Section 9.1).
func (r RatchetType) String() string { return r.label() }

func (r RatchetType) label() string {
	if r == HandshakeRatchet {
		return "handshake"
	}
	return "application"
}

// SecretTreeConfig bounds the work and memory a SecretTree spends on
// out-of-order messages. The zero value selects the defaults.
type SecretTreeConfig struct {
	// MaxForwardGeneration is how far ahead of a ratchet's next unused
	// generation a received message may be. Each step costs three key
	// derivations, so this is also the most work one forged or hostile
	// message can force (RFC 9420, Section 9 leaves the bound to the
	// application). Default 1000.
	MaxForwardGeneration uint32
	// MaxSkippedKeys is how many keys of passed-over generations one ratchet
	// keeps for late messages; beyond it the oldest are erased. Zero selects
	// the default, 256; a negative value keeps none.
	MaxSkippedKeys int
}

// Default bounds of SecretTreeConfig.
const (
	DefaultMaxForwardGeneration = 1000
	DefaultMaxSkippedKeys       = 256
)

func (c SecretTreeConfig) withDefaults() SecretTreeConfig {
	if c.MaxForwardGeneration == 0 {
		c.MaxForwardGeneration = DefaultMaxForwardGeneration
	}
	switch {
	case c.MaxSkippedKeys == 0:
		c.MaxSkippedKeys = DefaultMaxSkippedKeys
	case c.MaxSkippedKeys < 0:
		c.MaxSkippedKeys = 0
	}
	return c
}

// maxSecretTreeBound caps both settings: a forward window of 2^20
// generations already lets one message cost seconds of key derivation.
const maxSecretTreeBound = 1 << 20

// Validate rejects bounds so large that they defeat their purpose.
func (c SecretTreeConfig) Validate() error {
	if c.MaxForwardGeneration > maxSecretTreeBound {
		return fmt.Errorf("mls: MaxForwardGeneration %d above %d: %w", c.MaxForwardGeneration, maxSecretTreeBound, ErrTooLarge)
	}
	if c.MaxSkippedKeys > maxSecretTreeBound {
		return fmt.Errorf("mls: MaxSkippedKeys %d above %d: %w", c.MaxSkippedKeys, maxSecretTreeBound, ErrTooLarge)
	}
	return nil
}

// RatchetKey is the key and nonce of one generation of a sender ratchet.
// Whoever holds one must Erase it after use (RFC 9420, Section 9.2).
type RatchetKey struct {
	Generation uint32
	Key        []byte
	Nonce      []byte
}

// Erase zeroes the key and nonce.
func (k *RatchetKey) Erase() {
	clear(k.Key)
	clear(k.Nonce)
	k.Key, k.Nonce = nil, nil
}

// hashRatchet is one sender ratchet (RFC 9420, Section 9.1). It retains the
// ratchet secret of generation next (nil once 2^32 generations are used up)
// and the keys of skipped generations that have not been consumed yet.
type hashRatchet struct {
	next    uint64 // generation of secret; uint64 so that 2^32 is representable
	secret  []byte
	skipped map[uint32]*RatchetKey
}

func (r *hashRatchet) erase() {
	clear(r.secret)
	r.secret = nil
	for g, k := range r.skipped {
		k.Erase()
		delete(r.skipped, g)
	}
}

// senderRatchets are the two ratchets of one leaf, created lazily.
type senderRatchets [2]*hashRatchet

// SecretTree is the per-epoch tree of encryption secrets (RFC 9420,
// Section 9). It derives node secrets lazily from the root
// (encryption_secret) and follows the deletion schedule of Section 9.2:
//
//   - a node secret is erased as soon as both children are derived, so the
//     tree retains only the unexpanded frontier of nodes no sender has used;
//   - a leaf secret is erased once its two ratchets are initialised;
//   - a ratchet secret is erased when the next generation is derived;
//   - a key is erased once consumed and is never handed out twice;
//     passed-over keys are kept (bounded by MaxSkippedKeys) for late
//     messages and erased when used or evicted.
//
// Hostile input cannot change the state: a message's key is committed as
// consumed only after the caller's AEAD open succeeds (see Open).
// A SecretTree is not safe for concurrent use.
type SecretTree struct {
	suite   *Suite
	nLeaves uint32
	cfg     SecretTreeConfig
	nodes   map[NodeIndex][]byte
	senders map[LeafIndex]*senderRatchets
}

// NewSecretTree builds the secret tree of an epoch for a group of nLeaves
// leaves (the width of the ratchet tree, blanks included). It copies
// encryptionSecret; the caller erases its own copy (RFC 9420, Section 9.2
// counts encryption_secret as consumed once the tree exists).
func (s *Suite) NewSecretTree(encryptionSecret []byte, nLeaves uint32, cfg SecretTreeConfig) (*SecretTree, error) {
	if nLeaves == 0 || nLeaves > 1<<31 {
		return nil, fmt.Errorf("mls: secret tree of %d leaves: %w", nLeaves, ErrTooLarge)
	}
	if len(encryptionSecret) != s.nh {
		return nil, fmt.Errorf("mls: encryption secret of %d bytes, want %d: %w", len(encryptionSecret), s.nh, ErrInvalidKey)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &SecretTree{
		suite:   s,
		nLeaves: nLeaves,
		cfg:     cfg.withDefaults(),
		nodes:   map[NodeIndex][]byte{root(nLeaves): append([]byte(nil), encryptionSecret...)},
		senders: make(map[LeafIndex]*senderRatchets),
	}
	return t, nil
}

// NumLeaves is the number of leaves the tree was built for.
func (t *SecretTree) NumLeaves() uint32 { return t.nLeaves }

// Erase zeroes every secret the tree still holds. The tree is unusable
// afterwards.
func (t *SecretTree) Erase() {
	for x, sec := range t.nodes {
		clear(sec)
		delete(t.nodes, x)
	}
	for l, rs := range t.senders {
		for _, r := range rs {
			if r != nil {
				r.erase()
			}
		}
		delete(t.senders, l)
	}
}

// leafSecret expands the tree from the nearest retained ancestor down to
// leaf, erasing each parent once both its children exist, and returns (and
// removes from the tree) the leaf's secret. RFC 9420, Section 9:
//
//	tree_node_[left(N)]_secret  = ExpandWithLabel(tree_node_[N]_secret, "tree", "left", KDF.Nh)
//	tree_node_[right(N)]_secret = ExpandWithLabel(tree_node_[N]_secret, "tree", "right", KDF.Nh)
func (t *SecretTree) leafSecret(leaf LeafIndex) ([]byte, error) {
	target := leaf.NodeIndex()
	// Walk up to the closest ancestor whose secret is still held.
	path := []NodeIndex{target}
	r := root(t.nLeaves)
	for x := target; ; {
		if _, ok := t.nodes[x]; ok {
			break
		}
		if x == r {
			// Both the leaf and all its ancestors are gone: the leaf's
			// ratchets were created earlier and then erased.
			return nil, fmt.Errorf("mls: secret tree leaf %d: %w", leaf, ErrReplay)
		}
		x = parent(x, t.nLeaves)
		path = append(path, x)
	}
	// Expand downwards from path[len-1] to path[0].
	for i := len(path) - 1; i > 0; i-- {
		x := path[i]
		sec := t.nodes[x]
		l, err := t.suite.ExpandWithLabel(sec, "tree", []byte("left"), t.suite.nh)
		if err != nil {
			return nil, err
		}
		rt, err := t.suite.ExpandWithLabel(sec, "tree", []byte("right"), t.suite.nh)
		if err != nil {
			clear(l)
			return nil, err
		}
		clear(sec)
		delete(t.nodes, x)
		t.nodes[left(x)] = l
		t.nodes[right(x)] = rt
	}
	sec := t.nodes[target]
	delete(t.nodes, target)
	return sec, nil
}

// ratchet returns the ratchet of the given leaf and type, creating both of
// the leaf's ratchets on first use (RFC 9420, Section 9):
//
//	handshake_ratchet_secret_[N]_[0]   = ExpandWithLabel(tree_node_[N]_secret, "handshake", "", KDF.Nh)
//	application_ratchet_secret_[N]_[0] = ExpandWithLabel(tree_node_[N]_secret, "application", "", KDF.Nh)
func (t *SecretTree) ratchet(leaf LeafIndex, typ RatchetType) (*hashRatchet, error) {
	if uint32(leaf) >= t.nLeaves {
		return nil, fmt.Errorf("mls: leaf %d of a %d-leaf secret tree: %w", leaf, t.nLeaves, ErrUnknownSender)
	}
	if typ > ApplicationRatchet {
		return nil, fmt.Errorf("mls: ratchet type %d: %w", typ, ErrInvalidMessage)
	}
	if rs, ok := t.senders[leaf]; ok {
		return rs[typ], nil
	}
	sec, err := t.leafSecret(leaf)
	if err != nil {
		return nil, err
	}
	defer clear(sec)
	var rs senderRatchets
	for _, rt := range []RatchetType{HandshakeRatchet, ApplicationRatchet} {
		base, err := t.suite.ExpandWithLabel(sec, rt.label(), nil, t.suite.nh)
		if err != nil {
			for _, r := range rs {
				if r != nil {
					r.erase()
				}
			}
			return nil, err
		}
		rs[rt] = &hashRatchet{secret: base, skipped: make(map[uint32]*RatchetKey)}
	}
	t.senders[leaf] = &rs
	return rs[typ], nil
}

// ratchetStep derives the key, nonce and next secret of one generation
// (RFC 9420, Section 9.1).
func (t *SecretTree) ratchetStep(secret []byte, gen uint32, wantKey bool) (key *RatchetKey, next []byte, err error) {
	s := t.suite
	if wantKey {
		k, err := s.DeriveTreeSecret(secret, "key", gen, s.nk)
		if err != nil {
			return nil, nil, err
		}
		n, err := s.DeriveTreeSecret(secret, "nonce", gen, s.nn)
		if err != nil {
			clear(k)
			return nil, nil, err
		}
		key = &RatchetKey{Generation: gen, Key: k, Nonce: n}
	}
	if uint64(gen)+1 <= math.MaxUint32 {
		if next, err = s.DeriveTreeSecret(secret, "secret", gen, s.nh); err != nil {
			if key != nil {
				key.Erase()
			}
			return nil, nil, err
		}
	}
	return key, next, nil
}

// NextKey consumes the next key of the sender's own ratchet for encrypting
// one message (RFC 9420, Section 9.1). The caller must Erase the key after
// use. A key is handed out once; encryption failures after this call do not
// make it reusable.
func (t *SecretTree) NextKey(leaf LeafIndex, typ RatchetType) (*RatchetKey, error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return nil, err
	}
	if r.secret == nil {
		return nil, fmt.Errorf("mls: leaf %d %s ratchet exhausted: %w", leaf, typ.label(), ErrGenerationTooFar)
	}
	key, next, err := t.ratchetStep(r.secret, uint32(r.next), true)
	if err != nil {
		return nil, err
	}
	clear(r.secret)
	r.secret, r.next = next, r.next+1
	return key, nil
}

// pendingOpen is the ratchet state a received generation would leave
// behind; it is applied only after the message authenticates.
type pendingOpen struct {
	key     *RatchetKey
	skipped []*RatchetKey // generations between the ratchet's next and key's
	secret  []byte        // ratchet secret of key.Generation+1
	fromMap bool          // key came from the skipped set
}

func (p *pendingOpen) discard() {
	for _, k := range p.skipped {
		k.Erase()
	}
	clear(p.secret)
	if !p.fromMap && p.key != nil {
		p.key.Erase()
	}
}

// prepare derives the key of generation gen without changing the ratchet.
func (t *SecretTree) prepare(r *hashRatchet, leaf LeafIndex, typ RatchetType, gen uint32) (*pendingOpen, error) {
	if uint64(gen) < r.next {
		k, ok := r.skipped[gen]
		if !ok {
			return nil, fmt.Errorf("mls: leaf %d %s generation %d: %w", leaf, typ.label(), gen, ErrReplay)
		}
		return &pendingOpen{key: k, fromMap: true}, nil
	}
	if r.secret == nil {
		return nil, fmt.Errorf("mls: leaf %d %s ratchet exhausted: %w", leaf, typ.label(), ErrGenerationTooFar)
	}
	if uint64(gen)-r.next > uint64(t.cfg.MaxForwardGeneration) {
		return nil, fmt.Errorf("mls: leaf %d %s generation %d is %d ahead of %d (limit %d): %w",
			leaf, typ.label(), gen, uint64(gen)-r.next, r.next, t.cfg.MaxForwardGeneration, ErrGenerationTooFar)
	}
	p := &pendingOpen{}
	// Skipped keys older than the retention bound would be evicted at once,
	// so they are not derived at all.
	keepFrom := uint64(0)
	if span := uint64(gen) - r.next; span > uint64(t.cfg.MaxSkippedKeys) {
		keepFrom = uint64(gen) - uint64(t.cfg.MaxSkippedKeys)
	}
	secret := r.secret
	for g := r.next; g <= uint64(gen); g++ {
		key, next, err := t.ratchetStep(secret, uint32(g), g == uint64(gen) || g >= keepFrom)
		if g != r.next {
			clear(secret) // an intermediate secret of this derivation, not the ratchet's
		}
		if err != nil {
			p.secret = nil
			p.discard()
			return nil, err
		}
		if g == uint64(gen) {
			p.key = key
		} else if key != nil {
			p.skipped = append(p.skipped, key)
		}
		secret = next
	}
	p.secret = secret
	return p, nil
}

// commit applies a prepared open: the used key is erased, passed-over keys
// join the skipped set (oldest evicted beyond the bound) and the ratchet
// moves past the used generation.
func (t *SecretTree) commit(r *hashRatchet, p *pendingOpen) {
	gen := p.key.Generation
	p.key.Erase()
	if p.fromMap {
		delete(r.skipped, gen)
		return
	}
	for _, k := range p.skipped {
		r.skipped[k.Generation] = k
	}
	for len(r.skipped) > t.cfg.MaxSkippedKeys {
		oldest := uint32(math.MaxUint32)
		for g := range r.skipped {
			oldest = min(oldest, g)
		}
		r.skipped[oldest].Erase()
		delete(r.skipped, oldest)
	}
	clear(r.secret)
	r.secret, r.next = p.secret, uint64(gen)+1
}

// Open looks up the key of generation gen of a sender's ratchet and calls
// use with it (RFC 9420, Section 9.1). If use returns nil — the message
// authenticated — the key is consumed and erased, passed-over generations
// are kept for late messages and older ratchet secrets are erased
// (Section 9.2). If use fails, the tree is left as it was. A generation
// already consumed (or evicted) fails with ErrReplay; one too far ahead with
// ErrGenerationTooFar; a leaf outside the tree with ErrUnknownSender.
//
// The key passed to use is erased when Open returns; use must not retain it.
func (t *SecretTree) Open(leaf LeafIndex, typ RatchetType, gen uint32, use func(key, nonce []byte) error) error {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return err
	}
	p, err := t.prepare(r, leaf, typ, gen)
	if err != nil {
		return err
	}
	if err := use(p.key.Key, p.key.Nonce); err != nil {
		p.discard()
		return err
	}
	t.commit(r, p)
	return nil
}

// peek is Open that never consumes: use gets the key of generation gen
// and the ratchet is left as it was whatever use returns
// (PrepareApplication).
func (t *SecretTree) peek(leaf LeafIndex, typ RatchetType, gen uint32, use func(key, nonce []byte) error) error {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return err
	}
	p, err := t.prepare(r, leaf, typ, gen)
	if err != nil {
		return err
	}
	defer p.discard()
	return use(p.key.Key, p.key.Nonce)
}

// SenderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's SenderData (RFC 9420, Section 6.3.2):
//
//	ciphertext_sample = ciphertext[0..KDF.Nh-1]
//	sender_data_key   = ExpandWithLabel(sender_data_secret, "key", ciphertext_sample, AEAD.Nk)
//	sender_data_nonce = ExpandWithLabel(sender_data_secret, "nonce", ciphertext_sample, AEAD.Nn)
//
// A ciphertext shorter than Nh is used whole.
func (s *Suite) SenderDataKeyNonce(senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext
	if len(sample) > s.nh {
		sample = sample[:s.nh]
	}
	if key, err = s.ExpandWithLabel(senderDataSecret, "key", sample, s.nk); err != nil {
		return nil, nil, err
	}
	if nonce, err = s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.nn); err != nil {
		clear(key)
		return nil, nil, err
	}
	return key, nonce, nil
}
