package node

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"grove/store"
)

// TestWelcomeOnlyAfterFinality: when the joiner holds its Welcome, the
// inviter has already finalised the Add's parent epoch (RFC 9420, Section
// 14: no Welcome before its Commit is accepted), and finalised epoch states
// are gone from the store (forward secrecy).
func TestWelcomeOnlyAfterFinality(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice := ns[0]
	ctx := ctxT(t, 20*time.Second)
	gs, _ := alice.Groups(ctx)
	parent, _ := hex.DecodeString(gs[0].EpochID)
	gid, _ := hex.DecodeString(g)
	carol := memNode(t, mn, "carol")
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	m, err := alice.db.EpochMarker(gid, store.EpochID(parent))
	if err != nil || m.Mark != store.MarkFinal {
		t.Fatalf("Welcome arrived but the Add's parent epoch is not final at the inviter: %+v %v", m, err)
	}
	if _, err := alice.db.EpochState(gid, store.EpochID(parent)); err == nil {
		t.Fatal("final epoch state still stored")
	}
	// Retention stays small while the group moves on.
	for range 4 {
		if err := alice.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "old epochs finalised", func() error {
		st, err := alice.db.EpochStates(gid)
		if err != nil {
			return err
		}
		if len(st) > 2 {
			return fmt.Errorf("%d epoch states retained", len(st))
		}
		return nil
	})
}
