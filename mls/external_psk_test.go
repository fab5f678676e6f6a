package mls

import (
	"bytes"
	"errors"
	"testing"
)

// An external commit may inject external PSKs (RFC 9420, Section
// 12.4.3.2): the members need the PSK to process it, the joiner needs it
// to create it, and both reach the same epoch.
func TestJoinExternalWithPSK(t *testing.T) {
	tg := newTestGroup(t, testSuite, 9, "alice")
	alice := tg.members["alice"]
	psk := MapPSKStore{"id": []byte("shared secret")}
	s, _ := testSuite.Suite()
	sig, err := s.GenerateSigningKey(tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := alice.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	params := func(store PSKStore) *ExternalJoinParams {
		return &ExternalJoinParams{GroupInfo: gi, Credential: NewBasicCredential([]byte("bob")), SigningKey: sig,
			PSKs: [][]byte{[]byte("id")}, Config: Config{PSKs: store}, Now: testNow, Rand: tg.rand}
	}
	if _, _, err := JoinExternal(params(nil)); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("joiner without the PSK: %v", err)
	}
	bob, commit, err := JoinExternal(params(psk))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ProcessMessage(commit, ProcessOptions{Now: testNow}); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("member without the PSK: %v", err)
	}
	alice.SetPSKStore(psk)
	pm, err := alice.ProcessMessage(commit, ProcessOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pm.Commit.Proposals); n != 2 || pm.Commit.Proposals[1].Type != ProposalTypePSK {
		t.Fatalf("commit applies %d proposals", n)
	}
	next, err := pm.Commit.Merge()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(next.EpochAuthenticator(), bob.EpochAuthenticator()) {
		t.Fatal("joiner and member disagree")
	}
}
