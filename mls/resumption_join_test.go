package mls

import (
	"errors"
	"strings"
	"testing"
)

// TestReInitWelcomeMustMatchProposal: a Welcome with a reinit PSK whose
// new group differs from the committed ReInit proposal is refused (RFC
// 9420, Sections 11.2 and 12.4.3.1).
func TestReInitWelcomeMustMatchProposal(t *testing.T) {
	tg := newTestGroup(t, testSuite, 71, "alice")
	tg.add("alice", "bob")
	tg.commit("alice", &CommitOptions{Proposals: []*Proposal{ReInitProposal([]byte("group v2"), testSuite, nil)}}, nil)
	bobKP := newTestKeyPackage(t, testSuite, "bob", tg.rand)
	own := newTestKeyPackage(t, testSuite, "alice", tg.rand)
	// alice sets up a successor under another group id than the ReInit's.
	_, welcome, err := tg.members["alice"].successor(&SuccessorParams{Own: own, KeyPackages: []*KeyPackage{&bobKP.KeyPackage}, Now: testNow, Rand: tg.rand},
		[]byte("not group v2"), testSuite, nil, ResumptionPSKUsageReInit)
	if err != nil {
		t.Fatal(err)
	}
	_, err = JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: bobKP, Now: testNow, Resumption: tg.members["bob"]})
	if !errors.Is(err, ErrInvalidWelcome) || !strings.Contains(err.Error(), "resumption PSK") {
		t.Fatalf("join of a successor that does not match the ReInit: %v", err)
	}

	// A reinit PSK of an epoch that committed no ReInit is refused too.
	tg2 := newTestGroup(t, testSuite, 72, "alice")
	tg2.add("alice", "bob")
	bobKP2 := newTestKeyPackage(t, testSuite, "bob", tg2.rand)
	own2 := newTestKeyPackage(t, testSuite, "alice", tg2.rand)
	_, welcome, err = tg2.members["alice"].successor(&SuccessorParams{Own: own2, KeyPackages: []*KeyPackage{&bobKP2.KeyPackage}, Now: testNow, Rand: tg2.rand},
		[]byte("v2"), testSuite, nil, ResumptionPSKUsageReInit)
	if err != nil {
		t.Fatal(err)
	}
	_, err = JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: bobKP2, Now: testNow, Resumption: tg2.members["bob"]})
	if !errors.Is(err, ErrInvalidWelcome) || !strings.Contains(err.Error(), "resumption PSK") {
		t.Fatalf("join by a reinit PSK without a ReInit: %v", err)
	}
}

// TestBranchWelcomeMembersMustMatch: a branch whose tree holds someone who
// was not a member of the old group is refused (RFC 9420, Section 11.3).
func TestBranchWelcomeMembersMustMatch(t *testing.T) {
	tg := newTestGroup(t, testSuite, 73, "alice")
	tg.add("alice", "bob", "carol")
	bobKP := newTestKeyPackage(t, testSuite, "bob", tg.rand)
	daveKP := newTestKeyPackage(t, testSuite, "dave", tg.rand)
	own := newTestKeyPackage(t, testSuite, "alice", tg.rand)
	_, welcome, err := tg.members["alice"].Branch(&SuccessorParams{Own: own, KeyPackages: []*KeyPackage{&bobKP.KeyPackage, &daveKP.KeyPackage},
		GroupID: []byte("sub"), Now: testNow, Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	_, err = JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: bobKP, Now: testNow, Resumption: tg.members["bob"]})
	if !errors.Is(err, ErrInvalidWelcome) || !strings.Contains(err.Error(), "resumption PSK") {
		t.Fatalf("join of a branch with a stranger: %v", err)
	}
}
