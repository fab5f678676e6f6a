package mls

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func newTestTree(t *testing.T, nLeaves uint32, cfg SecretTreeConfig) *SecretTree {
	t.Helper()
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	tree, err := s.NewSecretTree(bytes.Repeat([]byte{0x42}, 32), nLeaves, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// keyOf opens generation gen and returns a copy of its key.
func keyOf(t *testing.T, tree *SecretTree, leaf LeafIndex, typ RatchetType, gen uint32) ([]byte, error) {
	t.Helper()
	var got []byte
	err := tree.Open(leaf, typ, gen, func(key, nonce []byte) error {
		got = append([]byte(nil), key...)
		return nil
	})
	return got, err
}

func isZero(b []byte) bool { return len(b) > 0 && bytes.Equal(b, make([]byte, len(b))) }

func TestSecretTreeReplayFails(t *testing.T) {
	tree := newTestTree(t, 4, SecretTreeConfig{})
	if _, err := keyOf(t, tree, 2, ApplicationRatchet, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := keyOf(t, tree, 2, ApplicationRatchet, 0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed generation 0: got %v, want ErrReplay", err)
	}
	// The handshake ratchet of the same leaf is independent.
	if _, err := keyOf(t, tree, 2, HandshakeRatchet, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSecretTreeOutOfOrder(t *testing.T) {
	tree := newTestTree(t, 4, SecretTreeConfig{})
	ref := newTestTree(t, 4, SecretTreeConfig{})
	want := make([][]byte, 6)
	for g := range want {
		k, err := ref.NextKey(1, ApplicationRatchet)
		if err != nil {
			t.Fatal(err)
		}
		want[g] = append([]byte(nil), k.Key...)
		k.Erase()
	}
	for _, g := range []uint32{5, 2, 0, 4} {
		got, err := keyOf(t, tree, 1, ApplicationRatchet, g)
		if err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
		if !bytes.Equal(got, want[g]) {
			t.Fatalf("generation %d: key %x, want %x", g, got, want[g])
		}
	}
	for _, g := range []uint32{5, 2, 0, 4} {
		if _, err := keyOf(t, tree, 1, ApplicationRatchet, g); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of generation %d: got %v, want ErrReplay", g, err)
		}
	}
	r := tree.senders[1][ApplicationRatchet]
	if len(r.skipped) != 2 || r.skipped[1] == nil || r.skipped[3] == nil {
		t.Fatalf("skipped keys %v, want exactly generations 1 and 3", r.skipped)
	}
}

// After a message is decrypted, nothing the tree retains can yield its key
// again: the ratchet has moved past it, it is not among the skipped keys and
// no secret of the leaf or its ancestors remains (RFC 9420, Section 9.2).
func TestSecretTreeConsumedKeyNotDerivable(t *testing.T) {
	tree := newTestTree(t, 8, SecretTreeConfig{})
	var heldKey, heldNonce []byte
	err := tree.Open(5, ApplicationRatchet, 3, func(key, nonce []byte) error {
		heldKey, heldNonce = key, nonce
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !isZero(heldKey) || !isZero(heldNonce) {
		t.Fatalf("consumed key/nonce not zeroed: %x %x", heldKey, heldNonce)
	}
	r := tree.senders[5][ApplicationRatchet]
	if r.next != 4 || r.skipped[3] != nil {
		t.Fatalf("ratchet at %d with skipped %v after consuming 3", r.next, r.skipped)
	}
	leaf := LeafIndex(5).NodeIndex()
	for x := range tree.nodes {
		if x == leaf || isAncestor(x, leaf) {
			t.Fatalf("tree still holds node %d on the path of leaf 5", x)
		}
	}
	if _, err := keyOf(t, tree, 5, ApplicationRatchet, 3); !errors.Is(err, ErrReplay) {
		t.Fatalf("re-deriving generation 3: got %v, want ErrReplay", err)
	}
	// Other leaves are unaffected by the deletion.
	if _, err := keyOf(t, tree, 4, ApplicationRatchet, 3); err != nil {
		t.Fatalf("sibling leaf: %v", err)
	}
}

func TestSecretTreeZeroesDroppedSecrets(t *testing.T) {
	tree := newTestTree(t, 4, SecretTreeConfig{MaxSkippedKeys: 2})
	rootSecret := tree.nodes[root(4)]
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 0); err != nil {
		t.Fatal(err)
	}
	if !isZero(rootSecret) {
		t.Fatal("root secret not zeroed after its children were derived")
	}
	r := tree.senders[0][ApplicationRatchet]
	oldSecret := r.secret
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 6); err != nil {
		t.Fatal(err)
	}
	if !isZero(oldSecret) {
		t.Fatal("ratchet secret of generation 1 not zeroed after advancing")
	}
	// Only the two newest passed-over generations (4, 5) are kept.
	if len(r.skipped) != 2 || r.skipped[4] == nil || r.skipped[5] == nil {
		t.Fatalf("skipped %v, want generations 4 and 5", r.skipped)
	}
	evictable := r.skipped[4]
	heldKey := evictable.Key
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 9); err != nil {
		t.Fatal(err)
	}
	if !isZero(heldKey) {
		t.Fatal("evicted skipped key not zeroed")
	}
	for _, g := range []uint32{1, 4} {
		if _, err := keyOf(t, tree, 0, ApplicationRatchet, g); !errors.Is(err, ErrReplay) {
			t.Fatalf("evicted generation %d: got %v, want ErrReplay", g, err)
		}
	}
	tree.Erase()
	if len(tree.nodes) != 0 || len(tree.senders) != 0 {
		t.Fatal("Erase left secrets behind")
	}
}

func TestSecretTreeFailedOpenChangesNothing(t *testing.T) {
	tree := newTestTree(t, 2, SecretTreeConfig{})
	ref := newTestTree(t, 2, SecretTreeConfig{})
	boom := errors.New("aead failed")
	var seen []byte
	err := tree.Open(1, HandshakeRatchet, 7, func(key, nonce []byte) error {
		seen = key
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if !isZero(seen) {
		t.Fatal("key of failed open not zeroed")
	}
	r := tree.senders[1][HandshakeRatchet]
	if r.next != 0 || len(r.skipped) != 0 {
		t.Fatalf("failed open moved the ratchet to %d with %d skipped", r.next, len(r.skipped))
	}
	got, err := keyOf(t, tree, 1, HandshakeRatchet, 7)
	want, err2 := keyOf(t, ref, 1, HandshakeRatchet, 7)
	if err != nil || err2 != nil || !bytes.Equal(got, want) {
		t.Fatalf("after a failed open: %x %v, want %x %v", got, err, want, err2)
	}
}

func TestSecretTreeGenerationCap(t *testing.T) {
	tree := newTestTree(t, 2, SecretTreeConfig{MaxForwardGeneration: 10})
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 11); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("11 ahead: got %v, want ErrGenerationTooFar", err)
	}
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, math.MaxUint32); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("2^32-1: got %v, want ErrGenerationTooFar", err)
	}
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 10); err != nil {
		t.Fatalf("10 ahead: %v", err)
	}
	// The window moves with the ratchet.
	if _, err := keyOf(t, tree, 0, ApplicationRatchet, 21); err != nil {
		t.Fatalf("10 ahead of 11: %v", err)
	}
	def := newTestTree(t, 2, SecretTreeConfig{})
	if _, err := keyOf(t, def, 0, ApplicationRatchet, DefaultMaxForwardGeneration+1); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("default cap: got %v, want ErrGenerationTooFar", err)
	}
}

func TestSecretTreeRatchetExhaustion(t *testing.T) {
	tree := newTestTree(t, 2, SecretTreeConfig{})
	if _, err := tree.NextKey(0, ApplicationRatchet); err != nil {
		t.Fatal(err)
	}
	// Pretend 2^32-1 generations have passed.
	r := tree.senders[0][ApplicationRatchet]
	r.next = math.MaxUint32
	k, err := tree.NextKey(0, ApplicationRatchet)
	if err != nil || k.Generation != math.MaxUint32 {
		t.Fatalf("last generation: %v, %v", k, err)
	}
	if _, err := tree.NextKey(0, ApplicationRatchet); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("past the last generation: got %v, want ErrGenerationTooFar", err)
	}
}

func TestSecretTreeUnknownSender(t *testing.T) {
	tree := newTestTree(t, 3, SecretTreeConfig{})
	if _, err := keyOf(t, tree, 3, ApplicationRatchet, 0); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("leaf 3 of 3: got %v, want ErrUnknownSender", err)
	}
	if _, err := tree.NextKey(100, HandshakeRatchet); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("leaf 100 of 3: got %v, want ErrUnknownSender", err)
	}
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	if _, err := s.NewSecretTree(make([]byte, 31), 2, SecretTreeConfig{}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short encryption secret: got %v", err)
	}
	for _, cfg := range []SecretTreeConfig{{MaxForwardGeneration: 1<<20 + 1}, {MaxSkippedKeys: 1<<20 + 1}} {
		if _, err := s.NewSecretTree(make([]byte, 32), 2, cfg); !errors.Is(err, ErrTooLarge) {
			t.Errorf("config %+v: got %v, want ErrTooLarge", cfg, err)
		}
	}
}

func TestSecretTreeOwnKeyConsumed(t *testing.T) {
	tree := newTestTree(t, 2, SecretTreeConfig{})
	k, err := tree.NextKey(1, ApplicationRatchet)
	if err != nil {
		t.Fatal(err)
	}
	k.Erase()
	if _, err := keyOf(t, tree, 1, ApplicationRatchet, 0); !errors.Is(err, ErrReplay) {
		t.Fatalf("own sent generation reopened: got %v, want ErrReplay", err)
	}
}
