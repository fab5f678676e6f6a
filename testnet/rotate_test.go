package testnet

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// TestSendRightAfterRotate: a member sends right after another member's
// key update; every member must get the message.
func TestSendRightAfterRotate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := ClusterConfig{Seed: 9}
	if os.Getenv("GROVE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Scenario: "rotate-send", Seed: 9, SettleTimeout: 10 * time.Second},
		members: map[string]*Peer{}, notes: map[string]string{}}
	if err := r.formGroup(5, 1); err != nil {
		t.Fatal(err)
	}
	ps := r.memberList()
	// One member is away (as in the demo), so epochs cannot be witnessed
	// by everyone.
	if err := c.Stop(ps[4]); err != nil {
		t.Fatal(err)
	}
	delete(r.members, ps[4].Name)
	for i := range 40 {
		p := ps[i%4]
		if err := r.send(p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 5 {
			if err := r.rotate(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.settleOrFail("rotations with sends"); err != nil {
		t.Fatal(err)
	}
}
