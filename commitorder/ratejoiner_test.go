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

// A member back by an external commit (rejoin) starts from it knowing no
// commit before: everyone's rate-limit window must restart there, or a
// member that held the history counts a committer as over its share where
// the rejoiner does not, and the two pick different siblings of one
// parent (the same split as a joiner's, TestRateLimitAgreesWithJoiner).
func TestRateLimitAgreesWithRejoiner(t *testing.T) {
	cfg := Config{RateLimit: 2, RateWindow: 4}
	members := ids("a", "b", "c")
	gen := genesisOf(members)
	// a commits twice (its share), then b rejoins by external commit x. The
	// salt is chosen so that a's rank beats the rival's on x: only the
	// limited bit can make the rival win.
	var u1, u2, x CommitSeen
	rival := MemberID("")
	for salt := uint64(0); rival == ""; salt++ {
		u1 = mkCommit(gen.Eid, 2, "a", ClassUpdate, members, salt)
		u2 = mkCommit(u1.Eid, 3, "a", ClassUpdate, members, salt)
		x = mkCommit(u2.Eid, 4, "b", ClassUpdate, members, salt)
		ra := RankOf(x.Eid, "a")
		for _, m := range ids("b", "c") {
			if r := RankOf(x.Eid, m); bytes.Compare(ra[:], r[:]) < 0 {
				rival = m
			}
		}
	}
	x.External = true
	stayed, err := New(cfg, "c", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	step(t, stayed, u1)
	step(t, stayed, u2)
	step(t, stayed, x)
	rejoiner, err := New(cfg, "b", Genesis{Eid: x.Eid, Epoch: 4, Members: members,
		HasCommit: true, Parent: u2.Eid, Class: ClassUpdate, Committer: "b", Cid: x.Cid, External: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ua := mkCommit(x.Eid, 5, "a", ClassUpdate, members, 1)
	ur := mkCommit(x.Eid, 5, rival, ClassUpdate, members, 1)
	for _, g := range []*Group{stayed, rejoiner} {
		step(t, g, Tick{Now: at(time.Millisecond)})
		step(t, g, ua)
		step(t, g, ur)
	}
	hs, _ := stayed.Head()
	hr, _ := rejoiner.Head()
	if hs != hr || hs != ua.Eid {
		t.Fatalf("head %x where the history was kept, %x at the rejoiner (a's %x, %s's %x)", hs[:4], hr[:4], ua.Eid[:4], rival, ur.Eid[:4])
	}
	// Both states, with a window restarted at the external commit, decode
	// to the same choice.
	for _, g := range []*Group{stayed, rejoiner} {
		b, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(cfg, b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if h, _ := back.Head(); h != ua.Eid {
			t.Fatalf("decoded head %x, want %x", h[:4], ua.Eid[:4])
		}
	}
}
