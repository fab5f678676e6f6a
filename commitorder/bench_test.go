package commitorder

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func benchMembers(n int) []MemberID {
	out := make([]MemberID, n)
	for i := range out {
		out[i] = MemberID(fmt.Sprintf("member-%02d", i))
	}
	return out
}

// steady drives a group through one epoch of a busy steady state: a commit
// by a rotating member, a tip from every member, a message from a few, and
// a second of time. It returns the number of events fed.
func steady(tb testing.TB, g *Group, ms []MemberID, i int, now *time.Duration) int {
	h, ep := g.Head()
	c := mkCommit(h, ep+1, ms[i%len(ms)], ClassUpdate, ms, uint64(i))
	events := 0
	do := func(ev Event) {
		if _, err := g.Step(ev); err != nil {
			tb.Fatal(err)
		}
		events++
	}
	do(c)
	for j, m := range ms {
		do(TipSeen{Member: m, Eid: c.Eid, Epoch: c.Epoch, Root: h, RootEpoch: ep})
		if j%10 == 0 {
			do(AppMessageSeen{Eid: c.Eid, Epoch: c.Epoch, Sender: m})
		}
	}
	*now += time.Second
	do(Tick{Now: at(*now)})
	return events
}

// BenchmarkSteadyState50 measures events per second through the state
// machine of a 50-member group (one op = one epoch: 1 commit, 50 tips,
// 5 messages, 1 tick).
func BenchmarkSteadyState50(b *testing.B) {
	ms := benchMembers(50)
	g, err := New(Config{}, ms[0], genesisOf(ms), t0)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Duration(0)
	for i := range 50 {
		steady(b, g, ms, i, &now)
	}
	events := 0
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		events += steady(b, g, ms, i+50, &now)
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkRetainedBytes50 reports the heap retained per 50-member group at
// steady state and the size of its serialised state.
func BenchmarkRetainedBytes50(b *testing.B) {
	ms := benchMembers(50)
	const groups = 64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		gs := make([]*Group, groups)
		for k := range gs {
			g, err := New(Config{}, ms[k%len(ms)], genesisOf(ms), t0)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Duration(0)
			for i := range 40 {
				steady(b, g, ms, i, &now)
			}
			gs[k] = g
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		enc, _ := gs[0].MarshalBinary()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/groups, "bytes/group")
		b.ReportMetric(float64(len(enc)), "state-bytes")
		b.ReportMetric(float64(len(gs[0].Retained())), "states")
		runtime.KeepAlive(gs)
	}
}

// BenchmarkFloorTick is the floor the others are compared with: one Tick
// through an idle 50-member group (the cheapest full Step: settle runs).
func BenchmarkFloorTick(b *testing.B) {
	ms := benchMembers(50)
	g, err := New(Config{}, ms[0], genesisOf(ms), t0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := g.Step(Tick{Now: at(time.Duration(i))}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimSchedule: one seeded simulation schedule (the default mix:
// 96% groups of 2-7 members over 50-90 rounds, 4% of 10-50 over 30), the
// unit of TestSimulation's budget.
func BenchmarkSimSchedule(b *testing.B) {
	seed := uint64(0)
	for b.Loop() {
		seed++
		if _, err := runSchedule(b, seed, false, false); err != nil {
			b.Fatal(err)
		}
	}
}
