package testnet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// healTiming is a daemon's timing (node's defaults: a tip every 5 s,
// GossipSub heartbeat 1 s) except finality, kept short so that the
// group forms in seconds; nothing commits while links are cut.
var healTiming = Timing{
	CommitDelta:   FastTiming.CommitDelta,
	FinalityAge:   FastTiming.FinalityAge,
	FinalityGrace: FastTiming.FinalityGrace,
	TipInterval:   5 * time.Second,
	PersistEvery:  time.Second,
	Heartbeat:     time.Second,
}

// healStats is what one healRun measured.
type healStats struct {
	floor     []time.Duration // send to delivery, no fault
	first     []time.Duration // restore to first delivery, per (cut member, other member)
	converge  []time.Duration // restore to every message sent during the cut delivered everywhere, per cut
	reconnect []time.Duration // restore to the cut member connected to every other member, per cut
}

// healRun forms a group of n in-process nodes over loopback TCP, measures
// delivery with no fault, then cuts members off at the transport one at
// a time (CutLinks: connections closed, dials refused) for hold while
// everyone sends, restores the links and times what follows.
func healRun(tb testing.TB, n, cuts int, hold time.Duration, seed uint64) healStats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := NewCluster(ClusterConfig{Seed: seed, Timing: healTiming})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Nodes: n, Seed: seed, SettleTimeout: 2 * time.Minute},
		members: map[string]*Peer{}, notes: map[string]string{}}
	if err := r.formGroup(n, 1); err != nil {
		tb.Fatal(err)
	}
	var st healStats
	peers := r.memberList()
	// The floor: one message from each member in turn on the healthy
	// network, each awaited before the next.
	for range 2 {
		for _, p := range peers {
			k := len(r.msgs)
			if err := r.send(p); err != nil {
				tb.Fatal(err)
			}
			r.awaitLive(10 * time.Second)
			st.floor = append(st.floor, r.c.rec.latencies(r.pairsFrom(k))...)
		}
	}
	for j := range cuts {
		victim := peers[1+j%(len(peers)-1)]
		if err := c.CutLinks(victim); err != nil {
			tb.Fatal(err)
		}
		k := len(r.msgs)
		until := time.Now().Add(hold)
		for i := 0; time.Now().Before(until); i++ {
			// Everyone else in turn, and the cut member every fourth
			// message (its sends wait in its outbox).
			p := peers[i%len(peers)]
			if i%4 == 3 {
				p = victim
			}
			if err := r.send(p); err != nil {
				tb.Fatal(err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		pairs := r.pairsFrom(k)
		restored := time.Now()
		c.RestoreLinks(victim)
		firstAt := map[string]time.Time{}
		var reconnected, converged time.Time
		for {
			now := time.Now()
			if reconnected.IsZero() && connectedToAll(victim, peers) {
				reconnected = now
			}
			if converged.IsZero() && r.c.rec.missing(pairs) == 0 {
				converged = now
			}
			r.c.rec.firstCross(pairs, victim.Name, restored, firstAt)
			if !converged.IsZero() && !reconnected.IsZero() && len(firstAt) == len(peers)-1 {
				st.converge = append(st.converge, converged.Sub(restored))
				break
			}
			if now.Sub(restored) > 2*time.Minute {
				tb.Fatalf("cut %d (%s): not converged 2 minutes after the restore: %d deliveries missing, first deliveries on %d of %d links",
					j, victim.Name, r.c.rec.missing(pairs), len(firstAt), len(peers)-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		st.reconnect = append(st.reconnect, reconnected.Sub(restored))
		for _, t := range firstAt {
			st.first = append(st.first, t.Sub(restored))
		}
	}
	if pr := r.check(); pr.missing > 0 || pr.duplicates > 0 || !pr.converged {
		tb.Fatalf("after the cuts: %d missing, %d duplicates, converged %v: %v", pr.missing, pr.duplicates, pr.converged, pr.problems)
	}
	return st
}

// pairsFrom returns the (text, receivers) of the messages sent since the
// k-th.
func (r *run) pairsFrom(k int) map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	pairs := map[string][]string{}
	for _, m := range r.msgs[k:] {
		pairs[m.text] = m.receivers
	}
	return pairs
}

// firstCross records in firstAt, per member other than cut, the first
// delivery after since of a message crossing between it and cut (either
// way) among pairs.
func (r *recorder) firstCross(pairs map[string][]string, cut string, since time.Time, firstAt map[string]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	note := func(other string, at time.Time) {
		if at.Before(since) {
			return
		}
		if t, ok := firstAt[other]; !ok || at.Before(t) {
			firstAt[other] = at
		}
	}
	for text, receivers := range pairs {
		if slices.Contains(receivers, cut) {
			// Sent by another member: to cut.
			if at, ok := r.recvAt[cut][text]; ok {
				note(senderOf(text), at)
			}
			continue
		}
		for _, rc := range receivers {
			if at, ok := r.recvAt[rc][text]; ok {
				note(rc, at)
			}
		}
	}
}

// senderOf is the sender's name in a message text of run.sendAt.
func senderOf(text string) string {
	var seq int
	var name string
	fmt.Sscanf(text, "m%05d from %s", &seq, &name)
	return name
}

func connectedToAll(p *Peer, peers []*Peer) bool {
	p.mu.Lock()
	h := p.host
	p.mu.Unlock()
	if h == nil {
		return false
	}
	have := map[string]bool{}
	for _, id := range h.Peers() {
		have[string(id)] = true
	}
	for _, q := range peers {
		if q != p && !have[string(q.ID)] {
			return false
		}
	}
	return true
}

// BenchmarkHealToConvergence cuts members off at the transport (their
// connections closed, every dial refused) for 20 s, longer than a TCP
// connection survives a silent link in the chaos runs' short faults, so
// that the hosts must redial, re-form the GossipSub mesh and sync, while
// every member sends; then restores the links. Reported, over the cuts of
// one run (-benchtime=1x; -count for more):
//
//   - first-p50-ms, first-p99-ms: restore to the first delivery between
//     the cut member and each other member (either way);
//   - reconnect-p50-ms: restore to the cut member connected to all;
//   - converge-p50-ms, converge-max-ms: restore to every message sent
//     during the cut delivered to every member;
//   - floor-p50-ms, floor-p99-ms: send to delivery on the healthy network
//     (the same hosts, before the cuts), and first-p50/floor-p50.
//
// Real sockets on 127.0.0.1, all nodes in this process; daemon timing
// (healTiming).
func BenchmarkHealToConvergence(b *testing.B) {
	for _, n := range []int{6, 12} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for i := range b.N {
				st := healRun(b, n, 4, 20*time.Second, uint64(i+1))
				fl, fi, co, rc := percentiles(st.floor), percentiles(st.first), percentiles(st.converge), percentiles(st.reconnect)
				b.ReportMetric(fi.P50, "first-p50-ms")
				b.ReportMetric(fi.P99, "first-p99-ms")
				b.ReportMetric(rc.P50, "reconnect-p50-ms")
				b.ReportMetric(co.P50, "converge-p50-ms")
				b.ReportMetric(co.Max, "converge-max-ms")
				b.ReportMetric(fl.P50, "floor-p50-ms")
				b.ReportMetric(fl.P99, "floor-p99-ms")
				b.ReportMetric(fi.P50/max(fl.P50, 0.001), "first-p50/floor-p50")
			}
		})
	}
}

// TestHealAfterLinkCut is a short healRun: a member cut off at the
// transport for 12 s gets every message sent meanwhile, both ways, within
// a minute of the restore (generous for a loaded machine; the benchmark
// reports the times).
func TestHealAfterLinkCut(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: cuts a link for 12 s")
	}
	st := healRun(t, 4, 1, 12*time.Second, 1)
	t.Logf("restore to first delivery %v, reconnect %v, converge %v; floor %v", st.first, st.reconnect, st.converge, percentiles(st.floor))
}
