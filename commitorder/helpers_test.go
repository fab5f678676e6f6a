package commitorder

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ids(names ...string) []MemberID {
	out := make([]MemberID, len(names))
	for i, n := range names {
		out[i] = MemberID(n)
	}
	return out
}

// mkCommit makes an abstract commit: ids derive from the inputs and a salt.
func mkCommit(parent EpochID, epoch uint64, committer MemberID, class Class, members []MemberID, salt uint64) CommitSeen {
	h := sha256.New()
	h.Write(parent[:])
	h.Write([]byte(committer))
	var b [9]byte
	b[0] = byte(class)
	binary.BigEndian.PutUint64(b[1:], salt)
	h.Write(b[:])
	for _, m := range members {
		h.Write([]byte(m))
		h.Write([]byte{0})
	}
	var c CommitSeen
	h.Sum(c.Cid[:0])
	e := sha256.Sum256(append([]byte("eid"), c.Cid[:]...))
	copy(c.Eid[:], e[:])
	c.Parent, c.Epoch, c.Committer, c.Class, c.Valid = parent, epoch, committer, class, true
	c.Members = slices.Clone(members)
	return c
}

func genesisOf(members []MemberID) Genesis {
	return Genesis{Eid: EpochID{0xee, 1}, Epoch: 1, Members: members}
}

func newGroup(t testing.TB, cfg Config, self MemberID, members []MemberID) *Group {
	t.Helper()
	g, err := New(cfg, self, genesisOf(members), t0)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func step(t testing.TB, g *Group, ev Event) []Effect {
	t.Helper()
	eff, err := g.Step(ev)
	if err != nil {
		t.Fatalf("step %T: %v", ev, err)
	}
	if err := g.checkInvariants(); err != nil {
		t.Fatalf("after %T: %v", ev, err)
	}
	return eff
}

func headIs(t testing.TB, g *Group, want EpochID) {
	t.Helper()
	if h, _ := g.Head(); h != want {
		t.Fatalf("head %v, want %v", h, want)
	}
}

func findEffect[T Effect](eff []Effect) (T, bool) {
	for _, e := range eff {
		if v, ok := e.(T); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}

func effectNames(eff []Effect) string {
	s := ""
	for _, e := range eff {
		s += fmt.Sprintf("%T ", e)
	}
	return s
}

// permutations calls f with every permutation of idx 0..n-1.
func permutations(n int, f func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(slices.Clone(p))
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}
