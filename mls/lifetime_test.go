package mls

import (
	"errors"
	"testing"
	"time"
)

// keyPackageAt returns a KeyPackage valid from an hour before now for a
// day, like newTestKeyPackage at testNow.
func keyPackageAt(t *testing.T, tg *testGroup, name string, now time.Time) *KeyPackageBundle {
	t.Helper()
	s, _ := tg.cs.Suite()
	sig, err := s.GenerateSigningKey(tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPackage(&KeyPackageParams{Suite: tg.cs, Credential: NewBasicCredential([]byte(name)), SigningKey: sig,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestJoinLongAfterMembersWereAdded: the leaves of members added by
// KeyPackages long ago (their lifetimes over) do not stop a later Welcome
// or external join (RFC 9420, Section 7.3 does not require checking the
// lifetimes of a received tree), while a new KeyPackage past its lifetime
// is still refused, by its committer and by receivers. Time is a value.
func TestJoinLongAfterMembersWereAdded(t *testing.T) {
	for _, days := range []int{91, 400} {
		tg := newTestGroup(t, testSuite, 80+uint64(days), "alice")
		tg.add("alice", "bob", "carol") // at testNow; their lifetimes end a day later
		later := testNow.Add(time.Duration(days) * 24 * time.Hour)

		eve := keyPackageAt(t, tg, "eve", later)
		alice := tg.members["alice"]
		sc, err := alice.Commit(&CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: eve.KeyPackage}}}, Now: later, Rand: tg.rand})
		if err != nil {
			t.Fatalf("day %d: add eve: %v", days, err)
		}
		if _, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: eve, Now: later}); err != nil {
			t.Fatalf("day %d: eve joins by Welcome: %v", days, err)
		}
		pm, err := tg.members["bob"].ProcessMessage(sc.Message, ProcessOptions{Now: later})
		if err != nil {
			t.Fatalf("day %d: bob processes eve's add: %v", days, err)
		}
		if _, err := pm.Commit.Merge(); err != nil {
			t.Fatal(err)
		}

		gi, err := tg.members["carol"].GroupInfo(true)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := tg.cs.Suite()
		sig, _ := s.GenerateSigningKey(tg.rand)
		if _, _, err := JoinExternal(&ExternalJoinParams{GroupInfo: gi, Credential: NewBasicCredential([]byte("frank")), SigningKey: sig,
			Now: later, Rand: tg.rand}); err != nil {
			t.Fatalf("day %d: frank joins externally: %v", days, err)
		}

		// A KeyPackage whose lifetime ended is refused.
		old := keyPackageAt(t, tg, "grace", later.Add(-48*time.Hour))
		add := []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: old.KeyPackage}}}
		if _, err := alice.Commit(&CommitOptions{Proposals: add, Now: later, Rand: tg.rand}); !errors.Is(err, ErrInvalidProposal) {
			t.Fatalf("day %d: commit adding an expired KeyPackage: %v", days, err)
		}
		// The same commit made by a client with a wrong clock is refused
		// by a receiver with the right one.
		sc, err = alice.Commit(&CommitOptions{Proposals: add, Now: later.Add(-48 * time.Hour), Rand: tg.rand})
		if err != nil {
			t.Fatal(err)
		}
		before := stateOf(t, tg.members["carol"])
		if _, err := tg.members["carol"].ProcessMessage(sc.Message, ProcessOptions{Now: later}); !errors.Is(err, ErrInvalidProposal) {
			t.Fatalf("day %d: receiving an expired KeyPackage's add: %v", days, err)
		}
		if string(before) != string(stateOf(t, tg.members["carol"])) {
			t.Fatal("state changed by a rejected commit")
		}
	}
}
