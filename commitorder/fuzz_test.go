package commitorder

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// seedStates returns encoded states of groups in varied situations.
func seedStates(tb testing.TB) [][]byte {
	ms := ids("a", "b", "c")
	g0 := genesisOf(ms).Eid
	var out [][]byte
	add := func(g *Group) {
		b, err := g.MarshalBinary()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	g := newGroup(tb, Config{}, "a", ms)
	add(g)
	x := mkCommit(g0, 2, "a", ClassUpdate, ms, 1)
	x.Own, x.Intents, x.Welcome = true, []IntentID{{1}}, true
	y := mkCommit(g0, 2, "b", ClassRemove, ids("a", "b"), 1)
	step(tb, g, IntentQueued{ID: IntentID{2}, Class: ClassAdd})
	step(tb, g, x)
	step(tb, g, OutboxAdded{ID: MsgID{3}, Eid: x.Eid})
	step(tb, g, TipSeen{Member: "c", Eid: EpochID{9}, Epoch: 7, Root: EpochID{8}, RootEpoch: 5})
	step(tb, g, mkCommit(EpochID{5}, 4, "c", ClassUpdate, ms, 1))
	add(g)
	step(tb, g, y)
	step(tb, g, AppMessageSeen{Eid: y.Eid, Epoch: 2, Sender: "b"})
	add(g)
	step(tb, g, Tick{Now: at(time.Hour)})
	add(g)
	return out
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range seedStates(f) {
		f.Add(s)
		f.Add(toV1(s))
		f.Add(toV2(s))
	}
	f.Add([]byte("GCO\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Unmarshal(Config{}, data)
		if err != nil {
			if g != nil {
				t.Fatal("state returned with error")
			}
			return
		}
		// Decoded state is structurally sound and re-encodes byte for byte.
		if err := g.checkStructure(); err != nil {
			t.Fatalf("decoded state violates invariants: %v", err)
		}
		out, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, upgraded(data)) {
			t.Fatalf("round trip differs:\n%x\n%x", data, out)
		}
		// And it keeps working.
		if _, err := g.Step(Tick{Now: at(time.Hour)}); err != nil && err != ErrDone {
			t.Fatal(err)
		}
	})
}

func TestMarshalRoundTrip(t *testing.T) {
	for i, s := range seedStates(t) {
		g, err := Unmarshal(Config{}, s)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		out, _ := g.MarshalBinary()
		if !bytes.Equal(out, s) {
			t.Fatalf("%d: round trip differs", i)
		}
		// Truncations and trailing bytes are rejected with ErrCorrupt.
		for _, bad := range [][]byte{s[:len(s)-1], append(append([]byte{}, s...), 0)} {
			if _, err := Unmarshal(Config{}, bad); err == nil {
				t.Fatalf("%d: accepted corrupt state", i)
			}
		}
	}
}

// toV1 rewrites a current state as version 1 would have stored it (no
// behind-since or foreign-since time, no fresh flag).
func toV1(s []byte) []byte {
	g, err := Unmarshal(Config{}, s)
	if err != nil {
		panic(err)
	}
	g.behindSince, g.fresh, g.foreignAt = 0, false, 0
	b, _ := g.MarshalBinary()
	v1 := b[:len(b)-16]
	v1[3] = codecVersionV1
	return v1
}

// toV2 rewrites a current state as version 2 would have stored it (no
// foreign-since time).
func toV2(s []byte) []byte {
	g, err := Unmarshal(Config{}, s)
	if err != nil {
		panic(err)
	}
	g.foreignAt = 0
	b, _ := g.MarshalBinary()
	v2 := b[:len(b)-8]
	v2[3] = codecVersionV2
	return v2
}

// upgraded is what a decoded state re-encodes to: versions 1 and 2 gain
// the later fields, zero.
func upgraded(data []byte) []byte {
	if len(data) < 4 || (data[3] != codecVersionV1 && data[3] != codecVersionV2) {
		return data
	}
	out := slices.Clone(data)
	if data[3] == codecVersionV1 {
		out = binary.BigEndian.AppendUint64(out, 0)
	}
	out[3] = codecVersion
	return binary.BigEndian.AppendUint64(out, 0)
}

// TestUnmarshalVersion1: states stored in versions 1 and 2 still decode,
// to the same group (head, root, retained epochs, outbox), and re-encode
// as the current version with "not catching up" (version 1) and "not
// waiting for a fork's commits" (both).
func TestUnmarshalVersion1(t *testing.T) {
	for i, s := range seedStates(t) {
		if s[3] != codecVersion {
			t.Fatalf("%d: seed state is not the current version", i)
		}
		g2, err := Unmarshal(Config{}, s)
		if err != nil {
			t.Fatal(err)
		}
		g1, err := Unmarshal(Config{}, toV1(s))
		if err != nil {
			t.Fatalf("%d: version 1 rejected: %v", i, err)
		}
		if g1.head.eid != g2.head.eid || g1.root.eid != g2.root.eid || !slices.Equal(g1.Retained(), g2.Retained()) || len(g1.outbox) != len(g2.outbox) || g1.behindSince != 0 {
			t.Fatalf("%d: version 1 decodes to a different group", i)
		}
		out, _ := g1.MarshalBinary()
		if !bytes.Equal(out, upgraded(toV1(s))) || len(out) != len(s) {
			t.Fatalf("%d: version 1 does not re-encode as the current state", i)
		}
		g2b, err := Unmarshal(Config{}, toV2(s))
		if err != nil {
			t.Fatalf("%d: version 2 rejected: %v", i, err)
		}
		if g2b.head.eid != g2.head.eid || g2b.root.eid != g2.root.eid || g2b.behindSince != g2.behindSince || g2b.foreignAt != 0 {
			t.Fatalf("%d: version 2 decodes to a different group", i)
		}
		out, _ = g2b.MarshalBinary()
		if !bytes.Equal(out, upgraded(toV2(s))) || len(out) != len(s) {
			t.Fatalf("%d: version 2 does not re-encode as the current state", i)
		}
	}
	// A version 2 state cut to version 1 length but still labelled 2 is
	// corrupt, as is an unknown version.
	ms := ids("a", "b", "c")
	j := mkCommit(EpochID{7}, 5, "a", ClassAdd, ms, 1)
	joiner, err := New(Config{}, "c", Genesis{Eid: j.Eid, Epoch: 5, Members: ms, HasCommit: true, Parent: j.Parent, Class: j.Class, Committer: j.Committer, Cid: j.Cid}, t0)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := joiner.MarshalBinary()
	if g, _ := Unmarshal(Config{}, js); g == nil || !g.fresh {
		t.Fatal("a joiner's state should decode as fresh")
	}
	if g, _ := Unmarshal(Config{}, toV1(js)); g == nil || g.fresh || g.behindSince != 0 {
		t.Fatal("version 1 state should decode as not fresh and not catching up")
	}
	s := seedStates(t)[1]
	if binary.BigEndian.Uint64(s[len(s)-16:len(s)-8]) == 0 {
		t.Fatal("seed state 1 should be catching up (a tip ahead of it)")
	}
	if _, err := Unmarshal(Config{}, s[:len(s)-8]); err == nil {
		t.Fatal("accepted a truncated version 3 state")
	}
	bad := slices.Clone(s)
	bad[3] = 4
	if _, err := Unmarshal(Config{}, bad); err == nil {
		t.Fatal("accepted version 4")
	}
}

// FuzzEvents drives a group with an event sequence decoded from the input:
// no panic, invariants after every step, and the state survives a round
// trip at every point.
func FuzzEvents(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add(bytes.Repeat([]byte{0, 0, 3, 1, 6, 2}, 20))
	f.Add(bytes.Repeat([]byte{1, 2, 0, 5, 4, 3, 2, 1, 7}, 30))
	f.Add(bytes.Repeat([]byte{0, 1, 2, 3, 9, 0, 1, 2, 3, 4, 5, 8, 1, 2, 3, 0, 5, 200}, 20))
	f.Fuzz(runEvents)
}

func runEvents(t *testing.T, data []byte) {
	{
		ms := ids("a", "b", "c", "d")
		g, err := New(Config{Depth: 3, HardDepth: 6, MaxAge: time.Minute, Grace: time.Second, RateLimit: 2, RateWindow: 4, MaxHeld: 8, History: 4}, "a", genesisOf(ms), t0)
		if err != nil {
			t.Fatal(err)
		}
		known := []EpochID{genesisOf(ms).Eid}
		epochs := map[EpochID]uint64{known[0]: 1}
		now := time.Duration(0)
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		for steps := 0; len(data) > 0 && steps < 200; steps++ {
			op := next() % 10
			pick := known[int(next())%len(known)]
			m := ms[int(next())%len(ms)]
			var ev Event
			switch op {
			case 0, 1: // a commit on a known epoch
				var sub []MemberID
				mask := next()
				for i, x := range ms {
					if mask&(1<<i) != 0 || x == m {
						sub = append(sub, x)
					}
				}
				c := mkCommit(pick, epochs[pick]+1, m, Class(next()%3), sub, uint64(next()))
				c.Valid = next()%8 != 0
				c.Own = m == "a" && next()%2 == 0
				ev = c
				known = append(known, c.Eid)
				epochs[c.Eid] = c.Epoch
			case 2:
				ev = ParentMissing{Parent: EpochID{next()}, ParentEpoch: uint64(next()), Cid: CommitID{next()}, Class: Class(next() % 3), Committer: m}
			case 3:
				ev = AppMessageSeen{Eid: pick, Epoch: epochs[pick], Sender: m}
			case 4:
				ev = TipSeen{Member: m, Eid: pick, Epoch: epochs[pick], Root: known[int(next())%len(known)]}
				tip := ev.(TipSeen)
				tip.RootEpoch = epochs[tip.Root]
				ev = tip
			case 5:
				now += time.Duration(next()) * 100 * time.Millisecond
				ev = Tick{Now: at(now)}
			case 6:
				ev = IntentQueued{ID: IntentID{next()}, Class: Class(next() % 3)}
			case 7:
				ev = OutboxAdded{ID: MsgID{next()}, Eid: pick}
			case 8: // a ciphertext for an epoch we may not hold
				ev = CiphertextPending{Eid: EpochID{next(), next()}, Epoch: uint64(next())}
			case 9: // a heartbeat naming epochs we do not know
				ep := uint64(next())
				ev = TipSeen{Member: m, Eid: EpochID{0xaa, next()}, Epoch: ep + uint64(next()%4), Root: EpochID{0xbb, next()}, RootEpoch: ep}
			}
			_, err := g.Step(ev)
			if err == ErrDone {
				return
			}
			// Errors are allowed (hostile or stale input); the state must
			// stay consistent either way.
			if err := g.checkInvariants(); err != nil {
				t.Fatalf("step %d %T: %v", steps, ev, err)
			}
			b, err := g.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			r, err := Unmarshal(g.cfg, b)
			if err != nil {
				t.Fatalf("step %d: own state does not decode: %v", steps, err)
			}
			b2, _ := r.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("step %d: round trip differs", steps)
			}
		}
	}
}

// TestRandomEventSequences runs FuzzEvents' body on seeded random inputs.
// It found that finalising (which moves the root and so changes whose
// final-claims count) must be followed by recomputing the chain.
func TestRandomEventSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		data := make([]byte, 600)
		for j := range data {
			data[j] = byte(r.IntN(256))
		}
		runEvents(t, data)
	}
}
