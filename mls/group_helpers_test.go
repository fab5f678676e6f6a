package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

var testNow = time.Unix(1_800_000_000, 0)

// newTestKeyPackage makes a KeyPackage bundle for name with a fresh signing key.
func newTestKeyPackage(t testing.TB, cs CipherSuite, name string, rand *seedRand) *KeyPackageBundle {
	t.Helper()
	s, err := cs.Suite()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.GenerateSigningKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPackage(&KeyPackageParams{
		Suite:      cs,
		Credential: NewBasicCredential([]byte(name)),
		SigningKey: sig,
		NotBefore:  testNow.Add(-time.Hour),
		NotAfter:   testNow.Add(24 * time.Hour),
		Rand:       rand,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// testGroup is a set of members' views of one group, for scenario tests.
type testGroup struct {
	t       testing.TB
	cs      CipherSuite
	rand    *seedRand
	members map[string]*Group // by name
	cfg     Config
}

func newTestGroup(t testing.TB, cs CipherSuite, seed uint64, creator string) *testGroup {
	t.Helper()
	tg := &testGroup{t: t, cs: cs, rand: &seedRand{seed: seed}, members: map[string]*Group{}}
	kp := newTestKeyPackage(t, cs, creator, tg.rand)
	g, err := CreateGroup(&CreateParams{Suite: cs, Own: kp, Rand: tg.rand, Now: testNow, Config: tg.cfg})
	if err != nil {
		t.Fatal(err)
	}
	tg.members[creator] = g
	return tg
}

// commit has committer commit opts, every other member process it, and
// everyone (the committer included) merge. Joiners listed in kps join
// from the Welcome. It returns the committer's staged commit.
func (tg *testGroup) commit(committer string, opts *CommitOptions, joiners map[string]*KeyPackageBundle) *StagedCommit {
	tg.t.Helper()
	g := tg.members[committer]
	if opts.Rand == nil {
		opts.Rand = tg.rand
	}
	if opts.Now.IsZero() {
		opts.Now = testNow
	}
	sc, err := g.Commit(opts)
	if err != nil {
		tg.t.Fatalf("%s commits: %v", committer, err)
	}
	next := map[string]*Group{}
	for name, m := range tg.members {
		if name == committer {
			if _, err := m.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); !errors.Is(err, ErrOwnCommit) {
				tg.t.Fatalf("own commit received back: %v", err)
			}
			n, err := sc.Merge()
			if err != nil {
				tg.t.Fatal(err)
			}
			next[name] = n
			continue
		}
		pm, err := m.ProcessMessage(sc.Message, ProcessOptions{Now: testNow})
		if err != nil {
			tg.t.Fatalf("%s processes %s's commit: %v", name, committer, err)
		}
		if pm.Kind != KindCommit {
			tg.t.Fatalf("kind %d", pm.Kind)
		}
		if pm.Commit.SelfRemoved {
			if _, err := pm.Commit.Merge(); !errors.Is(err, ErrRemoved) {
				tg.t.Fatalf("merge when removed: %v", err)
			}
			continue
		}
		n, err := pm.Commit.Merge()
		if err != nil {
			tg.t.Fatal(err)
		}
		next[name] = n
	}
	for name, kp := range joiners {
		j, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: kp, Now: testNow, Config: tg.cfg})
		if err != nil {
			tg.t.Fatalf("%s joins: %v", name, err)
		}
		next[name] = j
	}
	tg.members = next
	tg.checkAgreement()
	return sc
}

// checkAgreement asserts that every member has the same epoch,
// authenticator, tree hash and exporter output.
func (tg *testGroup) checkAgreement() {
	tg.t.Helper()
	var ref *Group
	var refName string
	for name, g := range tg.members {
		if ref == nil {
			ref, refName = g, name
			continue
		}
		if g.Epoch() != ref.Epoch() || !bytes.Equal(g.EpochAuthenticator(), ref.EpochAuthenticator()) ||
			!bytes.Equal(g.TreeHash(), ref.TreeHash()) || !bytes.Equal(g.tree.TreeHash(), g.ctx.TreeHash) {
			tg.t.Fatalf("%s and %s disagree in epoch %d/%d", name, refName, g.Epoch(), ref.Epoch())
		}
		a, _ := g.Export("test", nil, 16)
		b, _ := ref.Export("test", nil, 16)
		if !bytes.Equal(a, b) {
			tg.t.Fatalf("%s and %s export differently", name, refName)
		}
	}
}

func (tg *testGroup) add(committer string, names ...string) *StagedCommit {
	tg.t.Helper()
	var props []*Proposal
	joiners := map[string]*KeyPackageBundle{}
	for _, n := range names {
		kp := newTestKeyPackage(tg.t, tg.cs, n, tg.rand)
		joiners[n] = kp
		props = append(props, &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}})
	}
	return tg.commit(committer, &CommitOptions{Proposals: props}, joiners)
}

func (tg *testGroup) remove(committer string, names ...string) *StagedCommit {
	tg.t.Helper()
	var props []*Proposal
	for _, n := range names {
		props = append(props, &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: tg.members[n].OwnLeaf()}})
	}
	return tg.commit(committer, &CommitOptions{Proposals: props}, nil)
}

// sendApp has sender protect a message and every other member decrypt it.
func (tg *testGroup) sendApp(sender string, text string) []byte {
	tg.t.Helper()
	msg, err := tg.members[sender].ProtectApplication([]byte(text), nil, tg.rand)
	if err != nil {
		tg.t.Fatal(err)
	}
	for name, g := range tg.members {
		pm, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow})
		if name == sender {
			if !errors.Is(err, ErrOwnMessage) {
				tg.t.Fatalf("own message: %v", err)
			}
			continue
		}
		if err != nil {
			tg.t.Fatalf("%s decrypts %s's message: %v", name, sender, err)
		}
		if pm.Kind != KindApplication || string(pm.ApplicationData) != text || pm.Sender.LeafIndex != tg.members[sender].OwnLeaf() {
			tg.t.Fatalf("%s got %+v", name, pm)
		}
	}
	return msg
}

func memberNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%d", i)
	}
	return out
}

// groupRoundTrip serialises g, restores it, checks the encoding is byte-exact
// and returns the restored Group.
func groupRoundTrip(t testing.TB, g *Group) *Group {
	t.Helper()
	enc, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r, err := UnmarshalGroup(enc)
	if err != nil {
		t.Fatalf("UnmarshalGroup: %v", err)
	}
	r.SetPSKStore(g.cfg.PSKs)
	enc2, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("group state round trip differs (%d vs %d bytes)", len(enc), len(enc2))
	}
	return r
}

// restoreAll replaces every member's state by its serialised copy.
func (tg *testGroup) restoreAll() {
	tg.t.Helper()
	for name, g := range tg.members {
		tg.members[name] = groupRoundTrip(tg.t, g)
	}
}

// externalJoin has name join by external commit from member via's
// GroupInfo; every member processes and merges the commit.
func (tg *testGroup) externalJoin(via, name string, resync bool) {
	tg.t.Helper()
	gi, err := tg.members[via].GroupInfo(true)
	if err != nil {
		tg.t.Fatal(err)
	}
	s, _ := tg.cs.Suite()
	sig, err := s.GenerateSigningKey(tg.rand)
	if err != nil {
		tg.t.Fatal(err)
	}
	j, msg, err := JoinExternal(&ExternalJoinParams{
		GroupInfo: gi, Credential: NewBasicCredential([]byte(name)), SigningKey: sig,
		Resync: resync, Now: testNow, Rand: tg.rand, Config: tg.cfg,
	})
	if err != nil {
		tg.t.Fatalf("%s joins externally: %v", name, err)
	}
	next := map[string]*Group{}
	for n, g := range tg.members {
		pm, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow})
		if err != nil {
			tg.t.Fatalf("%s processes %s's external commit: %v", n, name, err)
		}
		if pm.Commit.SelfRemoved {
			if n != name {
				tg.t.Fatalf("%s removed by %s's external commit", n, name)
			}
			continue
		}
		if next[n], err = pm.Commit.Merge(); err != nil {
			tg.t.Fatal(err)
		}
	}
	next[name] = j
	tg.members = next
	tg.checkAgreement()
}
