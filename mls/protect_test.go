package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// protectFixture is a two-member epoch: both sides share the epoch secrets
// but keep separate secret trees, as two devices would.
type protectFixture struct {
	suite            *Suite
	gc               *GroupContext
	sender, receiver *MessageProtector
	signers          []*SigningKey
	keyFor           SenderKeyFunc
}

func newProtectFixture(t testing.TB, cs CipherSuite, nLeaves uint32) *protectFixture {
	t.Helper()
	s, err := cs.Suite()
	if err != nil {
		t.Fatal(err)
	}
	gc := &GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: cs, GroupID: []byte("group"), Epoch: 3,
		TreeHash: bytes.Repeat([]byte{1}, s.HashSize()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.HashSize()),
	}
	gcEnc, _ := gc.MarshalBinary()
	ep, err := s.DeriveEpochSecrets(make([]byte, s.HashSize()), nil, nil, gcEnc)
	if err != nil {
		t.Fatal(err)
	}
	f := &protectFixture{suite: s, gc: gc}
	mk := func() *MessageProtector {
		tree, err := s.NewSecretTree(ep.EncryptionSecret, nLeaves, SecretTreeConfig{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.NewMessageProtector(gc, tree, ep.SenderDataSecret, ep.MembershipKey)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.sender, f.receiver = mk(), mk()
	rnd := rand.NewChaCha8([32]byte{byte(nLeaves), byte(cs)})
	verifiers := make([]*VerifyingKey, nLeaves)
	for i := range nLeaves {
		k, err := s.GenerateSigningKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		f.signers = append(f.signers, k)
		verifiers[i], _ = s.ParseVerifyingKey(k.PublicKey())
	}
	f.keyFor = func(ac *AuthenticatedContent) (*VerifyingKey, error) {
		if ac.Content.Sender.Type != SenderTypeMember || uint32(ac.Content.Sender.LeafIndex) >= nLeaves {
			return nil, ErrUnknownSender
		}
		return verifiers[ac.Content.Sender.LeafIndex], nil
	}
	return f
}

func (f *protectFixture) protect(t testing.TB, leaf LeafIndex, msg string) *PrivateMessage {
	t.Helper()
	pm, err := f.sender.ProtectApplication(leaf, f.signers[leaf], []byte(msg), []byte("ad"), 5, &fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// wire round-trips pm through its encoding, as the network would.
func wire(t testing.TB, pm *PrivateMessage) *PrivateMessage {
	t.Helper()
	m, _ := NewMLSMessage(pm)
	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalMLSMessage(enc)
	if err != nil {
		t.Fatal(err)
	}
	return back.PrivateMessage
}

func TestProtectApplicationRoundTrip(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			f := newProtectFixture(t, cs, 3)
			pm := wire(t, f.protect(t, 2, "hello"))
			leaf, data, ad, err := f.receiver.UnprotectApplication(pm, f.keyFor)
			if err != nil {
				t.Fatal(err)
			}
			if leaf != 2 || string(data) != "hello" || string(ad) != "ad" {
				t.Fatalf("got leaf %d data %q ad %q", leaf, data, ad)
			}
		})
	}
}

func TestProtectPadding(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	lens := map[int]int{}
	for _, pad := range []int{0, 5, 100} {
		pm, err := f.sender.ProtectApplication(0, f.signers[0], []byte("same"), nil, pad, &fixedRand{})
		if err != nil {
			t.Fatal(err)
		}
		lens[pad] = len(pm.Ciphertext)
		if _, data, _, err := f.receiver.UnprotectApplication(wire(t, pm), f.keyFor); err != nil || string(data) != "same" {
			t.Fatalf("padding %d: %q, %v", pad, data, err)
		}
	}
	if lens[5]-lens[0] != 5 || lens[100]-lens[0] != 100 {
		t.Fatalf("ciphertext lengths %v do not grow by the padding", lens)
	}
	if _, err := f.sender.ProtectApplication(0, f.signers[0], nil, nil, -1, &fixedRand{}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("negative padding: got %v", err)
	}
}

func TestUnprotectReplayFails(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	pm := f.protect(t, 1, "once")
	if _, err := f.receiver.UnprotectPrivate(wire(t, pm), f.keyFor); err != nil {
		t.Fatal(err)
	}
	if _, err := f.receiver.UnprotectPrivate(wire(t, pm), f.keyFor); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: got %v, want ErrReplay", err)
	}
}

func TestUnprotectOutOfOrder(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	var msgs []*PrivateMessage
	for i := range 4 {
		msgs = append(msgs, f.protect(t, 0, fmt.Sprint(i)))
	}
	for _, i := range []int{3, 1, 0, 2} {
		_, data, _, err := f.receiver.UnprotectApplication(wire(t, msgs[i]), f.keyFor)
		if err != nil || string(data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q, %v", i, data, err)
		}
	}
}

// Hostile messages fail with a typed error and leave the ratchet usable for
// the genuine message afterwards.
func TestUnprotectRejectsTampering(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	genuine := f.protect(t, 1, "genuine")
	cases := []struct {
		name   string
		mutate func(pm *PrivateMessage)
		keyFor SenderKeyFunc
		want   error
	}{
		{"ciphertext", func(pm *PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 }, nil, ErrDecrypt},
		{"sender data", func(pm *PrivateMessage) { pm.EncryptedSenderData[0] ^= 1 }, nil, ErrDecrypt},
		{"authenticated data", func(pm *PrivateMessage) { pm.AuthenticatedData = []byte("other") }, nil, ErrDecrypt},
		{"content type", func(pm *PrivateMessage) { pm.ContentType = ContentTypeProposal }, nil, ErrDecrypt},
		{"epoch", func(pm *PrivateMessage) { pm.Epoch++ }, nil, ErrWrongEpoch},
		{"group", func(pm *PrivateMessage) { pm.GroupID = []byte("other") }, nil, ErrWrongGroup},
		{"signer", func(pm *PrivateMessage) {}, func(ac *AuthenticatedContent) (*VerifyingKey, error) {
			return f.keyFor(&AuthenticatedContent{Content: FramedContent{Sender: MemberSender(0)}})
		}, ErrInvalidSignature},
		{"unknown sender", func(pm *PrivateMessage) {}, func(*AuthenticatedContent) (*VerifyingKey, error) {
			return nil, ErrUnknownSender
		}, ErrUnknownSender},
	}
	for _, c := range cases {
		pm := wire(t, genuine)
		c.mutate(pm)
		keyFor := c.keyFor
		if keyFor == nil {
			keyFor = f.keyFor
		}
		if _, err := f.receiver.UnprotectPrivate(pm, keyFor); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, data, _, err := f.receiver.UnprotectApplication(wire(t, genuine), f.keyFor); err != nil || string(data) != "genuine" {
		t.Fatalf("genuine message after rejected forgeries: %q, %v", data, err)
	}
}

func TestUnprotectSenderOutsideTree(t *testing.T) {
	big := newProtectFixture(t, 1, 8)
	small := newProtectFixture(t, 1, 2) // same epoch secrets, fewer leaves
	pm := big.protect(t, 5, "x")
	if _, err := small.receiver.UnprotectPrivate(wire(t, pm), small.keyFor); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("leaf 5 of 2: got %v, want ErrUnknownSender", err)
	}
}

func TestGenerationTooFarRejected(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	for range DefaultMaxForwardGeneration + 1 {
		k, err := f.sender.tree.NextKey(0, ApplicationRatchet)
		if err != nil {
			t.Fatal(err)
		}
		k.Erase()
	}
	pm := f.protect(t, 0, "late") // generation 1001
	if _, err := f.receiver.UnprotectPrivate(wire(t, pm), f.keyFor); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("got %v, want ErrGenerationTooFar", err)
	}
}

func TestPrivateContentPaddingMustBeZero(t *testing.T) {
	ac := &AuthenticatedContent{Content: FramedContent{ContentType: ContentTypeApplication}}
	// application_data "hi", signature "s", then padding.
	good := []byte{2, 'h', 'i', 1, 's', 0, 0, 0}
	if err := ac.unmarshalPrivateContent(good); err != nil {
		t.Fatal(err)
	}
	bad := []byte{2, 'h', 'i', 1, 's', 0, 1, 0}
	if err := ac.unmarshalPrivateContent(bad); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("nonzero padding: got %v, want ErrInvalidMessage", err)
	}
}

func TestPublicMessageProtection(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	prop := FramedContent{Sender: MemberSender(1), ContentType: ContentTypeProposal,
		Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 0}}}
	ac, err := f.sender.NewAuthenticatedContent(WireFormatPublicMessage, prop, f.signers[1])
	if err != nil {
		t.Fatal(err)
	}
	pm, err := f.sender.ProtectPublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.receiver.UnprotectPublic(pm, f.keyFor); err != nil {
		t.Fatal(err)
	}
	tampered := *pm
	tampered.MembershipTag = bytes.Clone(pm.MembershipTag)
	tampered.MembershipTag[0] ^= 1
	if _, err := f.receiver.UnprotectPublic(&tampered, f.keyFor); !errors.Is(err, ErrInvalidMembershipTag) {
		t.Fatalf("bad membership tag: got %v", err)
	}
	tampered = *pm
	tampered.Content.Proposal = &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 1}}
	if _, err := f.receiver.UnprotectPublic(&tampered, f.keyFor); !errors.Is(err, ErrInvalidMembershipTag) {
		t.Fatalf("changed content: got %v", err)
	}
	app := FramedContent{Sender: MemberSender(1), ContentType: ContentTypeApplication, ApplicationData: []byte("x")}
	ac, _ = f.sender.NewAuthenticatedContent(WireFormatPublicMessage, app, f.signers[1])
	if _, err := f.sender.ProtectPublic(ac); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("application data in PublicMessage: got %v", err)
	}
	// An external sender has no membership tag and signs without the group context.
	ext := FramedContent{Sender: Sender{Type: SenderTypeExternal, SenderIndex: 0}, ContentType: ContentTypeProposal,
		Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 1}}}
	ac, _ = f.sender.NewAuthenticatedContent(WireFormatPublicMessage, ext, f.signers[0])
	pm, err = f.sender.ProtectPublic(ac)
	if err != nil || pm.MembershipTag != nil {
		t.Fatalf("external proposal: %v, tag %x", err, pm.MembershipTag)
	}
	for _, bad := range []FramedContent{
		{Sender: Sender{Type: SenderTypeExternal}, ContentType: ContentTypeCommit, Commit: &Commit{}},
		{Sender: Sender{Type: SenderTypeNewMemberCommit}, ContentType: ContentTypeProposal, Proposal: ext.Proposal},
		{Sender: Sender{Type: SenderTypeNewMemberProposal}, ContentType: ContentTypeProposal, Proposal: ext.Proposal},
	} {
		ac, _ := f.sender.NewAuthenticatedContent(WireFormatPublicMessage, bad, f.signers[0])
		if _, err := f.sender.ProtectPublic(ac); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("sender %d with %v: got %v, want ErrInvalidMessage", bad.Sender.Type, bad.ContentType, err)
		}
		forged := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
		if _, err := f.receiver.UnprotectPublic(forged, f.keyFor); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("receiving sender %d with %v: got %v, want ErrInvalidMessage", bad.Sender.Type, bad.ContentType, err)
		}
	}
	extKey, _ := f.suite.ParseVerifyingKey(f.signers[0].PublicKey())
	if _, err := f.receiver.UnprotectPublic(pm, func(*AuthenticatedContent) (*VerifyingKey, error) { return extKey, nil }); err != nil {
		t.Fatalf("external proposal: %v", err)
	}
}

func TestMessageProtectorErase(t *testing.T) {
	f := newProtectFixture(t, 1, 2)
	sd, mk := f.sender.senderDataSecret, f.sender.membershipKey
	f.sender.Erase()
	if !isZero(sd) || !isZero(mk) {
		t.Fatal("Erase left secrets")
	}
}
