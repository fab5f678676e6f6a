package mls

import (
	"errors"
	"testing"
)

// TestSetSecretTreeConfig: bounds set on a restored state apply to its
// secret tree at once, survive serialisation and carry to the next epoch;
// an out-of-range bound is refused and changes nothing.
func TestSetSecretTreeConfig(t *testing.T) {
	tg := newTestGroup(t, testSuite, 7, "alice")
	tg.add("alice", "bob")
	bob := groupRoundTrip(t, tg.members["bob"])
	if got := bob.SecretTreeConfig().MaxSkippedKeys; got != DefaultMaxSkippedKeys {
		t.Fatalf("restored window %d, want the default %d", got, DefaultMaxSkippedKeys)
	}
	want := SecretTreeConfig{MaxForwardGeneration: 1000, MaxSkippedKeys: 1000}
	if err := bob.SetSecretTreeConfig(want); err != nil {
		t.Fatal(err)
	}
	if bob.keys.cfg != want {
		t.Fatalf("secret tree still on %+v", bob.keys.cfg)
	}
	if err := bob.SetSecretTreeConfig(SecretTreeConfig{MaxSkippedKeys: 1<<20 + 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized window: %v", err)
	}
	if got := groupRoundTrip(t, bob).SecretTreeConfig(); got != want {
		t.Fatalf("after a round trip: %+v", got)
	}

	// Alice sends 300 messages; bob gets the last first, then the rest:
	// with 256 kept keys the 44 oldest would be gone.
	alice := tg.members["alice"]
	var msgs [][]byte
	for range 300 {
		m, err := alice.ProtectApplication([]byte("x"), nil, tg.rand)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if _, err := bob.ProcessMessage(msgs[299], ProcessOptions{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs[:299] {
		if _, err := bob.ProcessMessage(m, ProcessOptions{Now: testNow}); err != nil {
			t.Fatalf("message %d after the jump: %v", i, err)
		}
	}

	tg.members["bob"] = bob
	tg.add("alice", "carol")
	if got := tg.members["bob"].SecretTreeConfig(); got != want {
		t.Fatalf("next epoch: %+v", got)
	}
}
