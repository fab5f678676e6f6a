package commitorder

import (
	"bytes"
	"testing"
	"time"
)

// A member welcomed mid-window knows no commit before its genesis, so the
// rate limit's window must not reach below the epoch that added it: else a
// founder that counts the admin's adds as over its share and a joiner that
// does not pick different siblings of one parent, and both finalise theirs
// (testnet concurrent, 12 nodes, seeds 1 and 5: half the group finalised
// the admin's update, half a rival's, and each half Rejoined the other).
func TestRateLimitAgreesWithJoiner(t *testing.T) {
	cfg := Config{RateLimit: 2, RateWindow: 4}
	members := ids("a", "b", "c", "d")
	admins := ids("a")
	gen := genesisOf(members[:2])
	gen.Admins = admins
	// a adds c, then d: two of the last commits are a's, its share. The
	// salt is chosen so that a's rank beats the rival's on d's genesis:
	// only the limited bit can make the rival win.
	var c2, c3 CommitSeen
	rival := MemberID("")
	for salt := uint64(0); rival == ""; salt++ {
		c2 = mkCommit(gen.Eid, 2, "a", ClassAdd, members[:3], salt)
		c3 = mkCommit(c2.Eid, 3, "a", ClassAdd, members, salt)
		ra := RankOf(c3.Eid, "a")
		for _, m := range ids("b", "c") {
			if r := RankOf(c3.Eid, m); bytes.Compare(ra[:], r[:]) < 0 {
				rival = m
			}
		}
	}
	c2.Admins, c3.Admins = admins, admins
	founder, err := New(cfg, "b", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	step(t, founder, c2)
	step(t, founder, c3)
	// d is welcomed into c3's epoch: its genesis, nothing before it.
	joiner, err := New(cfg, "d", Genesis{Eid: c3.Eid, Epoch: 3, Members: members, Admins: admins}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ua := mkCommit(c3.Eid, 4, "a", ClassUpdate, members, 1)
	ur := mkCommit(c3.Eid, 4, rival, ClassUpdate, members, 1)
	ua.Admins, ur.Admins = admins, admins
	for _, g := range []*Group{founder, joiner} {
		step(t, g, Tick{Now: at(time.Millisecond)})
		step(t, g, ua)
		step(t, g, ur)
	}
	hf, _ := founder.Head()
	hj, _ := joiner.Head()
	if hf != hj {
		t.Fatalf("founder's head %x (a's %x, %s's %x), joiner's %x: the rate limit read history the joiner never had",
			hf[:4], ua.Eid[:4], rival, ur.Eid[:4], hj[:4])
	}
	// The founder's state, with a window that restarted at an add, still
	// decodes to the same choice.
	b, err := founder.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(cfg, b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if h, _ := back.Head(); h != hf {
		t.Fatalf("decoded head %x, want %x", h[:4], hf[:4])
	}
}
