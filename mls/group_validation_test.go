package mls

import (
	"errors"
	"testing"
	"time"
)

func TestKeyPackageValidation(t *testing.T) {
	rand := &seedRand{seed: 20}
	s, _ := testSuite.Suite()
	kp := newTestKeyPackage(t, testSuite, "kp", rand)
	v := &LeafValidation{Now: testNow}
	if err := ValidateKeyPackage(s, ProtocolVersionMLS10, &kp.KeyPackage, v); err != nil {
		t.Fatal(err)
	}
	if kp.KeyPackage.IsLastResort() {
		t.Fatal("not a last-resort key package")
	}
	for _, c := range kp.KeyPackage.LeafNode.Capabilities.Extensions {
		if c.IsDefault() {
			t.Fatalf("default extension %d listed in capabilities", c)
		}
	}
	if len(kp.KeyPackage.LeafNode.Capabilities.Proposals) != 0 {
		t.Fatal("default proposal types listed in capabilities")
	}
	sig, _ := s.GenerateSigningKey(rand)
	lr, err := NewKeyPackage(&KeyPackageParams{Suite: testSuite, Credential: NewBasicCredential([]byte("lr")), SigningKey: sig,
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour), LastResort: true, Rand: rand})
	if err != nil {
		t.Fatal(err)
	}
	if !lr.KeyPackage.IsLastResort() || !lr.KeyPackage.LeafNode.Capabilities.SupportsExtension(ExtensionLastResort) {
		t.Fatal("last resort marking")
	}
	if err := ValidateKeyPackage(s, ProtocolVersionMLS10, &lr.KeyPackage, v); err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		mutate func(k *KeyPackage)
		v      *LeafValidation
	}{
		"expired":          {nil, &LeafValidation{Now: testNow.Add(48 * time.Hour)}},
		"not yet valid":    {nil, &LeafValidation{Now: testNow.Add(-48 * time.Hour)}},
		"wrong suite":      {func(k *KeyPackage) { k.CipherSuite = MLS_128_DHKEMP256_AES128GCM_SHA256_P256 }, v},
		"wrong version":    {func(k *KeyPackage) { k.Version = 2 }, v},
		"bad signature":    {func(k *KeyPackage) { k.Signature[0] ^= 1 }, v},
		"init is leaf key": {func(k *KeyPackage) { k.InitKey = k.LeafNode.EncryptionKey }, v},
		"leaf source":      {func(k *KeyPackage) { k.LeafNode.Source = LeafNodeSourceUpdate }, v},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			k := kp.KeyPackage
			k.Signature = append([]byte(nil), k.Signature...)
			if c.mutate != nil {
				c.mutate(&k)
			}
			if err := ValidateKeyPackage(s, ProtocolVersionMLS10, &k, c.v); !errors.Is(err, ErrInvalidKeyPackage) {
				t.Fatalf("got %v", err)
			}
		})
	}
	// Lifetime checks are enforced when a commit adds the key package.
	tg := newTestGroup(t, testSuite, 21, "alice")
	_, err = tg.members["alice"].Commit(&CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}},
		Now: testNow.Add(72 * time.Hour), Rand: rand})
	if !errors.Is(err, ErrInvalidProposal) || !errors.Is(err, ErrInvalidKeyPackage) {
		t.Fatalf("expired key package added: %v", err)
	}
}

func TestProposalListValidation(t *testing.T) {
	tg := newTestGroup(t, testSuite, 22, "alice")
	tg.add("alice", "bob", "carol")
	alice := tg.members["alice"]
	kp := newTestKeyPackage(t, testSuite, "dave", tg.rand)
	add := &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}
	rm := func(l LeafIndex) *Proposal { return &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: l}} }
	gce := &Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{}}
	cases := map[string][]*Proposal{
		"duplicate add":          {add, add},
		"remove self":            {rm(alice.OwnLeaf())},
		"remove blank leaf":      {rm(9)},
		"remove twice":           {rm(1), rm(1)},
		"two GCE":                {gce, gce},
		"reinit with others":     {ReInitProposal([]byte("x"), testSuite, nil), rm(1)},
		"external init":          {{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: []byte{1}}}},
		"inline update":          {{Type: ProposalTypeUpdate, Update: &Update{LeafNode: *alice.tree.LeafNode(alice.own)}}},
		"add of existing client": {{Type: ProposalTypeAdd, Add: &Add{KeyPackage: KeyPackage{}}}},
	}
	for name, props := range cases {
		t.Run(name, func(t *testing.T) {
			before := stateOf(t, alice)
			if _, err := alice.Commit(&CommitOptions{Proposals: props, Now: testNow, Rand: tg.rand}); !errors.Is(err, ErrInvalidProposal) {
				t.Fatalf("got %v", err)
			}
			if string(before) != string(stateOf(t, alice)) {
				t.Fatal("failed commit changed the state")
			}
		})
	}
	// A received Remove commit without a path is invalid (Section 12.4).
	sc, err := alice.Commit(&CommitOptions{Proposals: []*Proposal{rm(2)}, Now: testNow, Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := UnmarshalMLSMessage(sc.Message)
	m.PublicMessage.Content.Commit.Path = nil
	ac := m.PublicMessage.AuthenticatedContent()
	if err := ac.sign(alice.sigKey, alice.ctxEnc); err != nil {
		t.Fatal(err)
	}
	m.PublicMessage.Auth = ac.Auth
	if m.PublicMessage.MembershipTag, err = ac.membershipTag(alice.suite, alice.secrets.MembershipKey, alice.ctxEnc); err != nil {
		t.Fatal(err)
	}
	bad, _ := m.MarshalBinary()
	expectRejected(t, "remove without path", tg.members["bob"], bad, ErrInvalidCommit)
	// A commit by reference to an unknown proposal.
	m, _ = UnmarshalMLSMessage(sc.Message)
	m.PublicMessage.Content.Commit.Proposals = []ProposalOrRef{{Type: ProposalOrRefReference, Reference: make([]byte, 32)}}
	ac = m.PublicMessage.AuthenticatedContent()
	ac.sign(alice.sigKey, alice.ctxEnc)
	m.PublicMessage.Auth = ac.Auth
	m.PublicMessage.MembershipTag, _ = ac.membershipTag(alice.suite, alice.secrets.MembershipKey, alice.ctxEnc)
	bad, _ = m.MarshalBinary()
	expectRejected(t, "unknown reference", tg.members["bob"], bad, ErrUnknownProposal)
	// A wrong confirmation tag.
	m, _ = UnmarshalMLSMessage(sc.Message)
	m.PublicMessage.Auth.ConfirmationTag[0] ^= 1
	ac = m.PublicMessage.AuthenticatedContent()
	m.PublicMessage.MembershipTag, _ = ac.membershipTag(alice.suite, alice.secrets.MembershipKey, alice.ctxEnc)
	bad, _ = m.MarshalBinary()
	expectRejected(t, "confirmation tag", tg.members["bob"], bad, ErrInvalidConfirmationTag)
}

func TestProposalsByReference(t *testing.T) {
	tg := newTestGroup(t, testSuite, 23, "alice")
	tg.add("alice", "bob", "carol", "dave")
	// bob proposes removing dave and adding erin; carol commits both by reference.
	kp := newTestKeyPackage(t, testSuite, "erin", tg.rand)
	p1, _, err := tg.members["bob"].Propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: tg.members["dave"].OwnLeaf()}}, true, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	p2, ref2, err := tg.members["bob"].Propose(&Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}, false, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range tg.members {
		for _, p := range [][]byte{p1, p2} {
			pm, err := g.ProcessMessage(p, ProcessOptions{Now: testNow})
			if name == "bob" {
				if !errors.Is(err, ErrOwnMessage) {
					t.Fatalf("own proposal: %v", err)
				}
				continue
			}
			if err != nil || pm.Kind != KindProposal {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	if pm, _ := tg.members["carol"].ProcessMessage(p2, ProcessOptions{Now: testNow}); pm == nil || string(pm.ProposalRef) != string(ref2) {
		t.Fatal("proposal ref mismatch")
	}
	sc := tg.commit("carol", &CommitOptions{}, map[string]*KeyPackageBundle{"erin": kp})
	if len(sc.Proposals) != 2 {
		t.Fatalf("%d proposals committed", len(sc.Proposals))
	}
	if _, ok := tg.members["dave"]; ok {
		t.Fatal("dave still present")
	}
	tg.sendApp("erin", "joined by reference")
}

func TestGroupContextExtensionsAndExternalSender(t *testing.T) {
	tg := newTestGroup(t, testSuite, 24, "alice")
	tg.add("alice", "bob", "carol")
	s, _ := testSuite.Suite()
	server, _ := s.GenerateSigningKey(tg.rand)
	ext, err := ExternalSendersExtension([]ExternalSender{{SignatureKey: server.PublicKey(), Credential: NewBasicCredential([]byte("server"))}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &RequiredCapabilities{CredentialTypes: []CredentialType{CredentialTypeBasic}}
	rcData, _ := rc.MarshalBinary()
	exts := Extensions{ext, {Type: ExtensionRequiredCapabilities, Data: rcData}}
	tg.commit("bob", &CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: exts}}}}, nil)
	if !tg.members["carol"].GroupContext().Extensions.Equal(exts) {
		t.Fatal("extensions not applied")
	}
	// A GCE requiring an extension nobody supports is invalid.
	rc2, _ := (&RequiredCapabilities{ExtensionTypes: []ExtensionType{0xff00}}).MarshalBinary()
	if _, err := tg.members["alice"].Commit(&CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeGroupContextExtensions,
		GroupContextExtensions: &GroupContextExtensions{Extensions: Extensions{{Type: ExtensionRequiredCapabilities, Data: rc2}}}}}, Now: testNow, Rand: tg.rand}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("unsupported required capability: %v", err)
	}
	// The external sender proposes removing carol.
	g := tg.members["alice"]
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{
		GroupID: g.GroupID(), Epoch: g.Epoch(), Sender: Sender{Type: SenderTypeExternal, SenderIndex: 0},
		ContentType: ContentTypeProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: tg.members["carol"].OwnLeaf()}},
	}}
	if err := ac.sign(server, nil); err != nil {
		t.Fatal(err)
	}
	m, _ := NewMLSMessage(&PublicMessage{Content: ac.Content, Auth: ac.Auth})
	msg, _ := m.MarshalBinary()
	for name, g := range tg.members {
		pm, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow})
		if err != nil || pm.Sender.Type != SenderTypeExternal {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A forged external proposal fails.
	ac.Auth.Signature[0] ^= 1
	m, _ = NewMLSMessage(&PublicMessage{Content: ac.Content, Auth: ac.Auth})
	bad, _ := m.MarshalBinary()
	expectRejected(t, "forged external proposal", tg.members["bob"], bad, ErrInvalidSignature)
	tg.commit("alice", &CommitOptions{}, nil)
	if _, ok := tg.members["carol"]; ok {
		t.Fatal("carol not removed by the external proposal")
	}
}

// TestCommitSkipsConflictingCachedProposals: conflicting proposals in the
// cache do not make Commit fail; the committable subset is committed.
func TestCommitSkipsConflictingCachedProposals(t *testing.T) {
	tg := newTestGroup(t, testSuite, 25, "alice")
	tg.add("alice", "bob", "carol", "dave")
	deliver := func(from string, msg []byte) {
		for n, g := range tg.members {
			if n != from {
				if _, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow}); err != nil {
					t.Fatalf("%s: %v", n, err)
				}
			}
		}
	}
	rm := func(n string) *Proposal {
		return &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: tg.members[n].OwnLeaf()}}
	}
	m1, _, _ := tg.members["bob"].Propose(rm("dave"), false, tg.rand)
	deliver("bob", m1)
	m2, _, _ := tg.members["carol"].Propose(rm("dave"), false, tg.rand) // same leaf again
	deliver("carol", m2)
	m3, _, _ := tg.members["bob"].Propose(rm("alice"), false, tg.rand) // alice cannot commit this
	deliver("bob", m3)
	m4, _, _ := tg.members["alice"].ProposeUpdate(false, tg.rand) // alice's own update
	deliver("alice", m4)
	sc := tg.commit("alice", &CommitOptions{}, nil)
	if len(sc.Proposals) != 1 || sc.Proposals[0].Type != ProposalTypeRemove {
		t.Fatalf("committed %d proposals", len(sc.Proposals))
	}
	if _, ok := tg.members["dave"]; ok {
		t.Fatal("dave not removed")
	}
}
