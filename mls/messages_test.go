package mls

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestWelcomeRoundTrip(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	rnd := rand.NewChaCha8([32]byte{1})
	initPriv, err := s.GenerateHPKEKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := s.GenerateSigningKey(rnd)
	gi := testGroupInfo()
	if err := gi.Sign(signer); err != nil {
		t.Fatal(err)
	}
	welcomeSecret := bytes.Repeat([]byte{4}, 32)
	encGI, err := s.EncryptGroupInfo(welcomeSecret, gi)
	if err != nil {
		t.Fatal(err)
	}
	gs := &GroupSecrets{JoinerSecret: bytes.Repeat([]byte{5}, 32), PathSecret: &PathSecret{PathSecret: []byte{6}}}
	ct, err := s.EncryptGroupSecrets(initPriv.PublicKey(), encGI, gs, rnd)
	if err != nil {
		t.Fatal(err)
	}
	w := &Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{{NewMember: []byte("ref"), EncryptedGroupSecrets: ct}}, EncryptedGroupInfo: encGI}
	if w.Find([]byte("other")) != nil || w.Find([]byte("ref")) == nil {
		t.Fatal("Find by reference")
	}
	got, err := s.DecryptGroupSecrets(initPriv, w.EncryptedGroupInfo, &w.Find([]byte("ref")).EncryptedGroupSecrets)
	if err != nil || !bytes.Equal(got.JoinerSecret, gs.JoinerSecret) || !bytes.Equal(got.PathSecret.PathSecret, []byte{6}) {
		t.Fatalf("group secrets: %+v, %v", got, err)
	}
	held := got.JoinerSecret
	got.Erase()
	if !isZero(held) {
		t.Fatal("GroupSecrets.Erase left the joiner secret")
	}
	// The group secrets are bound to the encrypted group info.
	if _, err := s.DecryptGroupSecrets(initPriv, append(bytes.Clone(encGI), 0), &ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other group info as context: got %v, want ErrDecrypt", err)
	}
	gi2, err := s.DecryptGroupInfo(welcomeSecret, encGI)
	if err != nil {
		t.Fatal(err)
	}
	if err := gi2.VerifySignature(s, signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	gi2.Signer++
	if err := gi2.VerifySignature(s, signer.PublicKey()); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("changed signer index: got %v", err)
	}
	if _, err := s.DecryptGroupInfo(bytes.Repeat([]byte{9}, 32), encGI); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong welcome secret: got %v", err)
	}
}

func TestKeyPackageSignAndRef(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	signer, _ := s.GenerateSigningKey(rand.NewChaCha8([32]byte{2}))
	kp := testKeyPackage()
	kp.LeafNode.SignatureKey = signer.PublicKey()
	if err := kp.Sign(signer); err != nil {
		t.Fatal(err)
	}
	if err := kp.VerifySignature(s); err != nil {
		t.Fatal(err)
	}
	ref1, _ := s.KeyPackageRef(kp)
	kp.InitKey = bytes.Repeat([]byte{0xee}, 32)
	if err := kp.VerifySignature(s); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("changed init key: got %v", err)
	}
	ref2, _ := s.KeyPackageRef(kp)
	if bytes.Equal(ref1, ref2) || len(ref1) != s.HashSize() {
		t.Fatal("KeyPackageRef does not depend on the content")
	}
}

func TestMessageEncodersRejectInconsistentValues(t *testing.T) {
	bad := []wireStruct{
		&Proposal{Type: ProposalTypeAdd},                        // body missing
		&Proposal{Type: 0x0a0a, Remove: &Remove{}},              // unknown type
		&ProposalOrRef{Type: 3},                                 // unknown type
		&MLSMessage{Version: 1, WireFormat: WireFormatWelcome},  // body missing
		&Sender{Type: 9},                                        // unknown sender type
		&FramedContent{ContentType: ContentTypeCommit},          // commit missing
		&FramedContent{ContentType: 7, Sender: MemberSender(0)}, // unknown content type
		&PreSharedKeyID{PSKType: 0},                             // reserved
	}
	for i, v := range bad {
		if _, err := marshal(v.marshal); err == nil {
			t.Errorf("case %d (%T) encoded", i, v)
		}
	}
	if _, err := NewMLSMessage("text"); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("NewMLSMessage of a string: %v", err)
	}
}

func TestMessageDecodersRejectInvalidEnums(t *testing.T) {
	msgs := testMLSMessages(t)
	// Version 2 and wire format 6 are not defined.
	for _, mut := range []func([]byte){
		func(b []byte) { b[1] = 2 },
		func(b []byte) { b[3] = 6 },
		func(b []byte) { b[3] = 0 },
	} {
		b := bytes.Clone(msgs[0])
		mut(b)
		if _, err := UnmarshalMLSMessage(b); !errors.Is(err, ErrDecode) {
			t.Errorf("mutated %x: got %v, want ErrDecode", b[:4], err)
		}
	}
	// PrivateMessage content type 4 is not defined.
	pm := &PrivateMessage{GroupID: []byte{}, ContentType: ContentTypeApplication}
	enc, _ := marshal(pm.marshal)
	enc[1+8] = 4
	if err := unmarshalAll("PrivateMessage", enc, new(PrivateMessage).unmarshal); !errors.Is(err, ErrDecode) {
		t.Errorf("content type 4: got %v", err)
	}
}

func TestTranscriptHashRequiresCommit(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{ContentType: ContentTypeProposal}}
	if _, err := s.ConfirmedTranscriptHash(nil, ac); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("got %v, want ErrInvalidMessage", err)
	}
}
