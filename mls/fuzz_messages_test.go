package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// Fuzz targets for every top-level decoder of network input in the framing
// and message layer. Each asserts no panic and, when the input decodes,
// that re-encoding reproduces it byte for byte.

func fuzzRoundTrip(t *testing.T, what string, data []byte, v wireStruct) bool {
	t.Helper()
	if unmarshalAll(what, data, v.unmarshal) != nil {
		return false
	}
	out, err := marshal(v.marshal)
	if err != nil {
		t.Fatalf("%s decoded but does not encode: %v", what, err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("%s re-encodes differently:\n in %x\nout %x", what, data, out)
	}
	return true
}

func testLeafNode(src LeafNodeSource) LeafNode {
	ln := LeafNode{
		EncryptionKey: bytes.Repeat([]byte{1}, 32), SignatureKey: bytes.Repeat([]byte{2}, 32),
		Credential: NewBasicCredential([]byte("alice")),
		Capabilities: Capabilities{Versions: []ProtocolVersion{1}, CipherSuites: []CipherSuite{1, 3},
			Credentials: []CredentialType{CredentialTypeBasic}},
		Source: src, Extensions: Extensions{{Type: 0xf000, Data: []byte{9}}}, Signature: bytes.Repeat([]byte{3}, 64),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = Lifetime{NotBefore: 1, NotAfter: 2}
	case LeafNodeSourceCommit:
		ln.ParentHash = []byte{4, 5}
	}
	return ln
}

func testKeyPackage() *KeyPackage {
	return &KeyPackage{Version: 1, CipherSuite: 1, InitKey: bytes.Repeat([]byte{6}, 32),
		LeafNode: testLeafNode(LeafNodeSourceKeyPackage), Signature: []byte{7}}
}

func testProposals() []*Proposal {
	return []*Proposal{
		{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *testKeyPackage()}},
		{Type: ProposalTypeUpdate, Update: &Update{LeafNode: testLeafNode(LeafNodeSourceUpdate)}},
		{Type: ProposalTypeRemove, Remove: &Remove{Removed: 7}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageApplication, PSKGroupID: []byte("g"), PSKEpoch: 3, PSKNonce: []byte{1}}}},
		{Type: ProposalTypeReInit, ReInit: &ReInit{GroupID: []byte("g2"), Version: 1, CipherSuite: 3}},
		{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: []byte{8, 9}}},
		{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: Extensions{{Type: 1, Data: []byte("app")}}}},
	}
}

func testCommit() *Commit {
	return &Commit{
		Proposals: []ProposalOrRef{
			{Type: ProposalOrRefProposal, Proposal: testProposals()[2]},
			{Type: ProposalOrRefReference, Reference: bytes.Repeat([]byte{5}, 32)},
		},
		Path: &UpdatePath{LeafNode: testLeafNode(LeafNodeSourceCommit), Nodes: []UpdatePathNode{
			{EncryptionKey: []byte{1}, EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte{2}, Ciphertext: []byte{3}}}},
		}},
	}
}

func testGroupContext() *GroupContext {
	return &GroupContext{Version: 1, CipherSuite: 1, GroupID: []byte("group"), Epoch: 4,
		TreeHash: []byte{1}, ConfirmedTranscriptHash: []byte{2}, Extensions: Extensions{{Type: 3, Data: []byte{}}}}
}

func testGroupInfo() *GroupInfo {
	return &GroupInfo{GroupContext: *testGroupContext(), Extensions: Extensions{{Type: ExtensionExternalPub, Data: []byte{1}}},
		ConfirmationTag: []byte{7}, Signer: 2, Signature: []byte{8}}
}

func testWelcome() *Welcome {
	return &Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{{NewMember: []byte{1},
		EncryptedGroupSecrets: HPKECiphertext{KEMOutput: []byte{2}, Ciphertext: []byte{3}}}}, EncryptedGroupInfo: []byte{4}}
}

func testMLSMessages(t testing.TB) [][]byte {
	t.Helper()
	commit := FramedContent{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderTypeNewMemberCommit},
		ContentType: ContentTypeCommit, Commit: testCommit()}
	prop := FramedContent{GroupID: []byte("g"), Epoch: 1, Sender: MemberSender(3), AuthenticatedData: []byte("ad"),
		ContentType: ContentTypeProposal, Proposal: testProposals()[0]}
	ext := FramedContent{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderTypeExternal, SenderIndex: 1},
		ContentType: ContentTypeProposal, Proposal: testProposals()[2]}
	bodies := []any{
		&PublicMessage{Content: commit, Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}},
		&PublicMessage{Content: prop, Auth: FramedContentAuthData{Signature: []byte{1}}, MembershipTag: []byte{3}},
		&PublicMessage{Content: ext, Auth: FramedContentAuthData{Signature: []byte{1}}},
		&PrivateMessage{GroupID: []byte("g"), Epoch: 2, ContentType: ContentTypeApplication, AuthenticatedData: []byte{1},
			EncryptedSenderData: []byte{2}, Ciphertext: []byte{3}},
		testWelcome(), testGroupInfo(), testKeyPackage(),
	}
	var out [][]byte
	for _, b := range bodies {
		m, err := NewMLSMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, enc)
	}
	return out
}

// officialMessageSeeds returns fields of the first cases of the official
// messages vectors when they are present; fuzz seeds are optional, so a
// missing file is not an error here (TestOfficialVectors reports it).
func officialMessageSeeds(fields ...string) [][]byte {
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "mls-vectors")
	}
	data, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		return nil
	}
	var cases []map[string]string
	if json.Unmarshal(data, &cases) != nil {
		return nil
	}
	var out [][]byte
	for i := 0; i < len(cases) && i < 3; i++ {
		for _, f := range fields {
			if b, err := hex.DecodeString(cases[i][f]); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func FuzzMLSMessage(f *testing.F) {
	for _, s := range testMLSMessages(f) {
		f.Add(s)
	}
	for _, s := range officialMessageSeeds("mls_welcome", "mls_group_info", "mls_key_package",
		"public_message_application", "public_message_proposal", "public_message_commit", "private_message") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m MLSMessage
		fuzzRoundTrip(t, "MLSMessage", data, &m)
		if _, err := UnmarshalMLSMessage(data); err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("decode error not ErrDecode: %v", err)
		}
	})
}

func FuzzProposal(f *testing.F) {
	for _, p := range testProposals() {
		enc, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "Proposal", data, new(Proposal))
	})
}

func FuzzCommit(f *testing.F) {
	enc, err := testCommit().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte{0, 0})
	for _, s := range officialMessageSeeds("commit") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "Commit", data, new(Commit))
	})
}

func FuzzKeyPackage(f *testing.F) {
	enc, _ := testKeyPackage().MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "KeyPackage", data, new(KeyPackage))
	})
}

func FuzzGroupInfo(f *testing.F) {
	enc, _ := testGroupInfo().MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "GroupInfo", data, new(GroupInfo))
	})
}

func FuzzWelcome(f *testing.F) {
	enc, _ := testWelcome().MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "Welcome", data, new(Welcome))
	})
}

func FuzzGroupSecrets(f *testing.F) {
	gs := &GroupSecrets{JoinerSecret: []byte{1}, PathSecret: &PathSecret{PathSecret: []byte{2}},
		PSKs: []PreSharedKeyID{{PSKType: PSKTypeExternal, PSKID: []byte("id"), PSKNonce: []byte{3}}}}
	enc, _ := gs.MarshalBinary()
	f.Add(enc)
	for _, s := range officialMessageSeeds("group_secrets") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "GroupSecrets", data, new(GroupSecrets))
	})
}

func FuzzGroupContext(f *testing.F) {
	enc, _ := testGroupContext().MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "GroupContext", data, new(GroupContext))
	})
}

func FuzzAuthenticatedContent(f *testing.F) {
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{
		GroupID: []byte("g"), Sender: MemberSender(1), ContentType: ContentTypeCommit, Commit: testCommit()},
		Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}}
	enc, _ := ac.MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, "AuthenticatedContent", data, new(AuthenticatedContent))
	})
}

// FuzzPrivateMessageContent decodes decrypted plaintext the way
// UnprotectPrivate does, for each content type.
func FuzzPrivateMessageContent(f *testing.F) {
	f.Add(byte(1), []byte{2, 'h', 'i', 1, 's', 0, 0})
	prop, _ := testProposals()[3].MarshalBinary()
	f.Add(byte(2), append(prop, 1, 's'))
	commit, _ := testCommit().MarshalBinary()
	f.Add(byte(3), append(commit, 1, 's', 1, 't', 0))
	f.Fuzz(func(t *testing.T, ct byte, data []byte) {
		ac := &AuthenticatedContent{Content: FramedContent{ContentType: ContentType(ct)}}
		if err := ac.unmarshalPrivateContent(data); err != nil {
			return
		}
		// Re-encoding the content and auth must reproduce the prefix of the
		// plaintext; the rest is zero padding.
		b := cryptobyte.NewBuilder(nil)
		ac.Content.marshalBody(b)
		ac.Auth.marshal(b, ac.Content.ContentType)
		out, err := b.Bytes()
		if err != nil || !bytes.Equal(out, data[:len(out)]) {
			t.Fatalf("PrivateMessageContent re-encodes as %x (%v), input %x", out, err, data)
		}
	})
}

// FuzzUnprotectPrivate feeds hostile PrivateMessages to a receiver: no
// panic, and anything other than the genuine seed must fail.
func FuzzUnprotectPrivate(f *testing.F) {
	fx := newProtectFixture(f, 1, 4)
	genuine := fx.protect(f, 2, "genuine")
	m, _ := NewMLSMessage(genuine)
	genuineEnc, _ := m.MarshalBinary()
	f.Add(genuineEnc)
	f.Add(genuineEnc[:len(genuineEnc)-1])
	gcEnc, _ := fx.gc.MarshalBinary()
	ep, _ := fx.suite.DeriveEpochSecrets(make([]byte, fx.suite.HashSize()), nil, nil, gcEnc)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := UnmarshalMLSMessage(data)
		if err != nil || msg.PrivateMessage == nil {
			return
		}
		tree, _ := fx.suite.NewSecretTree(ep.EncryptionSecret, 4, SecretTreeConfig{})
		p, _ := fx.suite.NewMessageProtector(fx.gc, tree, ep.SenderDataSecret, ep.MembershipKey)
		ac, err := p.UnprotectPrivate(msg.PrivateMessage, fx.keyFor)
		if err != nil {
			return
		}
		if string(ac.Content.ApplicationData) != "genuine" || ac.Content.Sender.LeafIndex != 2 {
			t.Fatalf("forged message accepted: %+v", ac.Content)
		}
		if _, err := p.UnprotectPrivate(msg.PrivateMessage, fx.keyFor); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay accepted: %v", err)
		}
	})
}

// FuzzUnprotectPublic feeds hostile PublicMessages to a member: no panic,
// and nothing but the genuine seed verifies.
func FuzzUnprotectPublic(f *testing.F) {
	fx := newProtectFixture(f, 1, 4)
	content := FramedContent{Sender: MemberSender(1), ContentType: ContentTypeProposal,
		Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 2}}}
	ac, err := fx.sender.NewAuthenticatedContent(WireFormatPublicMessage, content, fx.signers[1])
	if err != nil {
		f.Fatal(err)
	}
	pm, err := fx.sender.ProtectPublic(ac)
	if err != nil {
		f.Fatal(err)
	}
	m, _ := NewMLSMessage(pm)
	genuine, _ := m.MarshalBinary()
	f.Add(genuine)
	for _, s := range testMLSMessages(f)[:3] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := UnmarshalMLSMessage(data)
		if err != nil || msg.PublicMessage == nil {
			return
		}
		if _, err := fx.receiver.UnprotectPublic(msg.PublicMessage, fx.keyFor); err == nil && !bytes.Equal(data, genuine) {
			t.Fatalf("forged PublicMessage verified: %x", data)
		}
	})
}
