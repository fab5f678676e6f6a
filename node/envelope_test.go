package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"grove/commitorder"
	"grove/mls"
)

func TestPaddedSize(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 256}, {256 - envelopeOverhead, 256}, {257 - envelopeOverhead, 512},
		{1024 - envelopeOverhead, 1024}, {1025 - envelopeOverhead, 2048}, {bigBucket - envelopeOverhead, bigBucket},
		{bigBucket - envelopeOverhead + 1, 2 * bigBucket}, {5 * bigBucket, 6 * bigBucket},
	} {
		if got := paddedSize(c.n); got != c.want {
			t.Errorf("paddedSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestEnvelope: a payload comes back whole from an envelope of its bucket
// size; another group's keys, any flipped byte, truncation and non-zero
// padding are refused; the same payload never seals to the same bytes.
func TestEnvelope(t *testing.T) {
	k, err := newWireKeys([]byte("group"), bytes.Repeat([]byte{7}, groupSecretLen))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newWireKeys([]byte("group"), bytes.Repeat([]byte{8}, groupSecretLen))
	byID, _ := newWireKeys([]byte("group"), nil)
	if bytes.Equal(k.topic, other.topic) || bytes.Equal(k.topic, byID.topic) {
		t.Fatal("topic keys of different secrets coincide")
	}
	for _, n := range []int{0, 1, 200, 1000, 70000} {
		p := bytes.Repeat([]byte{0xab}, n)
		env := k.seal(p)
		if len(env) != paddedSize(n) {
			t.Fatalf("%d bytes sealed to %d, want %d", n, len(env), paddedSize(n))
		}
		got, err := k.open(env)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: open: %v", n, err)
		}
		if bytes.Equal(env, k.seal(p)) {
			t.Fatal("two seals of one payload are equal")
		}
		if _, err := other.open(env); !errors.Is(err, errEnvelope) {
			t.Fatalf("another group's key opened it: %v", err)
		}
		for _, i := range []int{0, 1, 30, len(env) - 1} {
			bad := bytes.Clone(env)
			bad[i] ^= 1
			if _, err := k.open(bad); !errors.Is(err, errEnvelope) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
		if _, err := k.open(env[:len(env)-1]); !errors.Is(err, errEnvelope) {
			t.Fatalf("truncated: %v", err)
		}
	}
	// Non-zero padding (only a holder of the key can make it) is refused
	// too, so that an envelope has one plaintext.
	plain := make([]byte, 256-1-chacha20poly1305.NonceSizeX-chacha20poly1305.Overhead)
	plain[0], plain[1], plain[len(plain)-1] = 1, 0xcd, 1
	env := make([]byte, 1+chacha20poly1305.NonceSizeX)
	env[0] = envelopeVersion
	env = k.aead.Seal(env, env[1:], plain, env[:1])
	if _, err := k.open(env); !errors.Is(err, errEnvelope) {
		t.Fatalf("non-zero padding: %v", err)
	}
	plain[len(plain)-1] = 0
	env = env[:1+chacha20poly1305.NonceSizeX]
	env = k.aead.Seal(env, env[1:], plain, env[:1])
	if got, err := k.open(env); err != nil || !bytes.Equal(got, []byte{0xcd}) {
		t.Fatalf("zero padding: %x, %v", got, err)
	}
}

// TestEpochSeal: a seal opens only with its epoch's key and keeps its kind.
func TestEpochSeal(t *testing.T) {
	k1, _ := chacha20poly1305.NewX(bytes.Repeat([]byte{1}, 32))
	k2, _ := chacha20poly1305.NewX(bytes.Repeat([]byte{2}, 32))
	s := seal(k1, sealedMLS, []byte("framing"))
	if kind, body, err := unseal(k1, s); err != nil || kind != sealedMLS || string(body) != "framing" {
		t.Fatalf("unseal: %d %q %v", kind, body, err)
	}
	if _, _, err := unseal(k2, s); !errors.Is(err, errUnsealed) {
		t.Fatalf("another epoch's key: %v", err)
	}
	if _, _, err := unseal(k1, s[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
	bad := bytes.Clone(s)
	bad[len(sealedPrefix)] = sealedVersion + 1
	if _, _, err := unseal(k1, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown version: %v", err)
	}
}

// TestCommitClaimsChecked: a member's Commit must be a PrivateMessage whose
// authenticated data states its parent, class and committer truly (a
// member beyond the window judges forks by these alone). Mallory, a
// member, sends a key update that claims to be a removal (which would beat
// any honest update on the same parent for such a member), and then one in
// the clear: both are invalid everywhere, counted, and the group works on.
func TestCommitClaimsChecked(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "mallory")
	alice, bob, mallory := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	before := groupEpoch(t, alice, g)
	craft := func(private bool, class commitorder.Class) []byte {
		var msg []byte
		headState(t, ctx, mallory, g, func(eid commitorder.EpochID, _, cp *mls.Group) {
			sc, err := cp.Commit(&mls.CommitOptions{ForcePath: true, SkipCached: true, Private: private,
				AuthenticatedData: commitAD(eid, class, commitorder.MemberID(mallory.selfID)), Now: time.Now(), Rand: rand.Reader})
			if err != nil {
				t.Errorf("craft commit: %v", err)
				return
			}
			msg = sc.Message
		})
		if msg == nil {
			t.FailNow()
		}
		return msg
	}
	publishAs(t, ctx, mallory, g, craft(true, commitorder.ClassRemove))
	publishAs(t, ctx, mallory, g, craft(false, commitorder.ClassUpdate))
	eventually(t, 10*time.Second, "both refused", func() error {
		for _, n := range []*Node{alice, bob} {
			if c := n.Metrics().Rejected[string(rejectCommitAD)]; c < 2 {
				return errors.New(n.self.Name + " has not refused both")
			}
		}
		return nil
	})
	time.Sleep(time.Second) // past finality: an accepted commit would be applied
	for _, n := range []*Node{alice, bob} {
		if e := groupEpoch(t, n, g); e != before {
			t.Fatalf("%s moved from epoch %d to %d", n.self.Name, before, e)
		}
	}
	if _, err := alice.Send(ctx, g, "still fine"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "message after the refused commits", func() error { return hasTexts(bob, g, "still fine") })
}

// TestUnsealableBounded: seals that no key opens (a removed member's, or
// of an epoch not held yet) are kept for a retry within bounds, and the
// group works on.
func TestUnsealableBounded(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	a, err := alice.lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := chacha20poly1305.NewX(bytes.Repeat([]byte{3}, 32))
	big := make([]byte, 64<<10)
	if err := a.do(ctx, func() error {
		for i := range 2 * maxSealedHeld {
			body := []byte{byte(i)}
			if i%4 == 0 {
				body = big
			}
			a.onSealed(seal(stranger, sealedMLS, body), "")
			if len(a.sealedHeld) > maxSealedHeld || a.sealedHeldBytes > maxSealedHeldBytes {
				t.Fatalf("after %d: %d seals, %d bytes kept", i+1, len(a.sealedHeld), a.sealedHeldBytes)
			}
		}
		n := 0
		for _, s := range a.sealedHeld {
			n += len(s)
		}
		if n != a.sealedHeldBytes || len(a.sealedHeld) == 0 {
			t.Fatalf("kept %d seals of %d bytes, counted %d", len(a.sealedHeld), n, a.sealedHeldBytes)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g, "still fine"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "message after the junk", func() error { return hasTexts(alice, g, "still fine") })
}
