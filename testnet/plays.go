package testnet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// The scenarios themselves: each play function drives one scenario of
// Scenarios on a formed run (scenario.go holds the run, its checks and
// the report they share).

// floorBlocks is how many blocks of floor and of chat traffic alternate
// in a run with Floor. One: the floor goes first, on idle nodes. With
// three, meant to spread the machine's other load over both sides, a chat
// block that had saturated the nodes left work behind (queued tips,
// anti-entropy, garbage) that slowed the next floor block (floor p50 4-9
// ms instead of 1-2), and the floor must never be slowed down.
const floorBlocks = 1

func playChat(r *run) error {
	parallel := r.o.JoinParallel
	if parallel <= 0 && r.o.Nodes > 9 {
		// One after the other, the admin's ninth Add in a row never
		// happens (see formGroup); all at once, the Adds share commits.
		parallel = r.o.Nodes
	}
	if err := r.formGroup(r.o.Nodes, max(1, parallel)); err != nil {
		return err
	}
	gap := r.o.Gap
	if gap == 0 {
		gap = 2 * time.Millisecond
	}
	senders := r.memberList()
	blocks := 1
	var fl *floorSession
	if r.o.Floor {
		blocks = min(floorBlocks, r.o.Messages)
		var err error
		if fl, err = r.c.openFloor(r.ctx); err != nil {
			return err
		}
		defer fl.close() // on an early return
	}
	r.say("group of %d formed; sending %d messages", r.o.Nodes, r.o.Messages)
	r.trafficStart = time.Now()
	for b := range blocks {
		mb := r.o.Messages*(b+1)/blocks - r.o.Messages*b/blocks
		if fl != nil {
			// The floor block must not pay for the chat block before it:
			// its nodes' periodic flush (PersistEvery) falls before it,
			// and it starts from a collected heap.
			if b > 0 {
				time.Sleep(r.c.cfg.Timing.PersistEvery)
			}
			runtime.GC()
			c0 := cpuTime()
			if err := fl.block(r.ctx, mb, gap); err != nil {
				return err
			}
			r.floorCPU += cpuTime() - c0
			if b == blocks-1 {
				// Its topic's heartbeats are not the chat's to pay for.
				r.floor = ptr(percentiles(fl.latencies()))
				fl.close()
			}
		}
		// Nor the chat block for the garbage of what ran before it.
		runtime.GC()
		t0, c0 := time.Now(), cpuTime()
		if err := r.chatLoad(mb, senders, gap); err != nil {
			return err
		}
		// settle reads every node's whole history ten times a second;
		// while deliveries are still in flight that load would land on
		// the last messages' latency, which the floor (waiting on its
		// subscribers) does not pay. Wait on the event streams first.
		r.awaitLive(r.o.SettleTimeout)
		r.trafficBusy += time.Since(t0)
		r.chatCPU += cpuTime() - c0
	}
	return r.settle("traffic")
}

// playConcurrent: in each round several members commit (key updates) at
// the same moment while others chat; commitorder must settle each round on
// one epoch for everyone.
func playConcurrent(r *run) error {
	if err := r.formGroup(r.o.Nodes, 1); err != nil {
		return err
	}
	rounds := 4
	per := max(1, r.o.Messages/rounds)
	for round := range rounds {
		ms := r.memberList()
		r.c.mu.Lock()
		r.c.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		r.c.mu.Unlock()
		k := min(3, len(ms))
		// Each rotation lands as an epoch of its own, the losers of a
		// fork later, once their requeued update is committed again: the
		// round is over only when all k have, not when the state has been
		// still for a few tip intervals (on a loaded machine a requeued
		// update took longer than that; the report then caught its
		// Commit on some members only, 1 run in 25).
		r.minEpoch = r.check().epoch + uint64(k)
		r.say("round %d: %d members commit at once", round+1, k)
		var wg sync.WaitGroup
		errs := make([]error, k+1)
		for i := range k {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = r.rotate(ms[i]) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[k] = r.chat(per, ms, 2*time.Millisecond) }()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := r.settle("round"); err != nil {
			return err
		}
		if e := r.check().epoch; e < r.minEpoch {
			return fmt.Errorf("round %d: %d rotations requested, the group is on epoch %d, want %d", round+1, k, e, r.minEpoch)
		}
	}
	return nil
}

// playPartition: the group splits in two halves that both chat and commit,
// then the network heals a fixed time later (partitionHold, inside the
// finality window) and everyone must converge on one branch with no
// message lost.
func playPartition(r *run) error {
	if err := r.formGroup(r.o.Nodes, r.o.Nodes); err != nil {
		return err
	}
	ms := r.memberList()
	r.c.mu.Lock()
	r.c.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	r.c.mu.Unlock()
	a, b := ms[:len(ms)/2], ms[len(ms)/2:]
	// The split lasts a fixed time, well inside the finality window,
	// whatever the machine's load: waiting for the halves' sends to finish
	// first held it 1 to 40 s on a loaded machine, past the window, and the
	// run then measured the beyond-window rejoin (its own tests) instead.
	hold := partitionHold(r.c.cfg.Timing.FinalityAge)
	half := max(1, r.o.Messages/2)
	// Each half's messages are due over the first half of the split and
	// handed to the senders when due (chatLoad), so a slow Send does not
	// push the rest out of the split; what a loaded node has not sent by
	// the heal goes out after it.
	gap := hold / time.Duration(2*half)
	r.mu.Lock()
	sent0 := len(r.msgs)
	r.mu.Unlock()
	// Both halves' rotations must land: the losing one is committed again
	// on the winning branch after the heal, so settling at the first calm
	// could catch its Commit on some members only (seed 10 at 12 nodes:
	// node00 on epoch 4, the rest on 5, 0 lost).
	base := r.check().epoch
	r.c.Partition(a, b)
	t0 := time.Now()
	r.say("partitioned into %d and %d nodes for %v", len(a), len(b), hold)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	var rotated [2]time.Duration // since t0, when each half's Rotate returned
	for i, side := range [][]*Peer{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.rotate(side[0]); err != nil {
				errs[i] = err
				return
			}
			rotated[i] = time.Since(t0)
			errs[i] = r.chatLoad(half, side, gap)
		}()
	}
	healed := false
	select {
	case <-time.After(time.Until(t0.Add(hold))):
		healed = true
	case <-r.ctx.Done():
	}
	held := time.Since(t0)
	r.mu.Lock()
	during := len(r.msgs) - sent0
	r.mu.Unlock()
	r.c.Heal()
	wg.Wait()
	if !healed {
		return r.ctx.Err()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	total := len(r.msgs) - sent0
	r.mu.Unlock()
	r.notes["partition"] = fmt.Sprintf("split %d/%d held %.2f s (finality age %v); %d of %d sends done during the split; rotations returned at %.2f s and %.2f s",
		len(a), len(b), held.Seconds(), r.c.cfg.Timing.FinalityAge, during, total, rotated[0].Seconds(), rotated[1].Seconds())
	r.say("healed")
	r.minEpoch = base + 2
	return r.settle("heal")
}

// partitionHold is how long the partition scenario keeps its split: a third
// of the finality age, so that both halves' Commits are still within the
// window when the split heals even if the heal is noticed late.
func partitionHold(finality time.Duration) time.Duration {
	if finality <= 0 {
		return time.Second
	}
	return finality / 3
}

// playOffline: one member goes away while the others send messages and
// rotate keys for many epochs, then returns and must catch up. With
// Options.Floor the run also measures the local floor of that catch-up
// (resyncFloor).
func playOffline(r *run) error {
	if err := r.formGroup(r.o.Nodes, 1); err != nil {
		return err
	}
	ms := r.memberList()
	away := ms[len(ms)-1]
	g, err := groupOf(r.ctx, away.Device(), r.group)
	if err != nil {
		return err
	}
	unread0 := g.Unread
	if err := r.c.Stop(away); err != nil {
		return err
	}
	others := ms[:len(ms)-1]
	r.say("%s went offline; %d messages and %d epochs follow", away.Name, r.o.Messages, r.o.Epochs)
	per := max(1, r.o.Messages/r.o.Epochs)
	sent := 0
	for e := range r.o.Epochs {
		n := per
		if e == r.o.Epochs-1 {
			n = r.o.Messages - sent
		}
		if err := r.chat(n, others, 0); err != nil {
			return err
		}
		sent += n
		if err := r.rotateInTurn(others[e%len(others)], others); err != nil {
			return err
		}
	}
	// Only the returning node is missing anything: wait for the others.
	r.mu.Lock()
	delete(r.members, away.Name)
	r.mu.Unlock()
	if err := r.settle("others"); err != nil {
		return err
	}
	r.mu.Lock()
	r.members[away.Name] = away
	r.mu.Unlock()
	var snap string
	if r.o.Floor {
		snap = filepath.Join(r.c.Dir(), away.Name+"-floor-db")
		if err := snapshotStore(away, snap); err != nil {
			return err
		}
	}
	st := &ResyncStats{Messages: r.o.Messages, Epochs: r.o.Epochs}
	stopProfile := func() {}
	if r.o.profileResync != nil {
		stopProfile = r.o.profileResync()
	}
	t0, c0 := time.Now(), cpuTime()
	if err := r.c.Restart(r.ctx, away); err != nil {
		stopProfile()
		return err
	}
	r.say("%s is back", away.Name)
	err = r.awaitCaughtUp(away, others[0], unread0, r.o.Messages)
	stopProfile()
	if err != nil {
		r.notes["resync"] = err.Error()
		return r.settle("resync") // the report says what is missing
	}
	st.WallS = time.Since(t0).Seconds()
	if r.c.cfg.Processes == nil {
		st.CPUS = (cpuTime() - c0).Seconds()
	}
	r.resync = st
	r.notes["resync"] = fmt.Sprintf("%s caught up on %d messages and %d epochs in %.2f s (incl. restart)",
		away.Name, r.o.Messages, r.o.Epochs, st.WallS)
	if err := r.settle("resync"); err != nil {
		return err
	}
	if snap == "" {
		return nil
	}
	if err := r.resyncFloor(away, snap, st); err != nil {
		return err
	}
	return r.settle("back")
}

// playChurn: members join, leave and are removed while others chat.
// A message sent while membership changes is expected only at members that
// belong to the group both before and after the change.
func playChurn(r *run) error {
	initial := max(3, r.o.Nodes-2)
	if err := r.formGroup(initial, 1); err != nil {
		return err
	}
	per := max(1, r.o.Messages/4)
	// Each step runs a membership change concurrently with chat among the
	// members not affected by it.
	step := func(what string, affected *Peer, change func() error) error {
		r.mu.Lock()
		if affected != nil {
			delete(r.members, affected.Name)
		}
		r.mu.Unlock()
		stable := r.memberList()
		r.say("churn: %s", what)
		var wg sync.WaitGroup
		var cerr, merr error
		wg.Add(1)
		go func() { defer wg.Done(); cerr = r.chat(per, stable, 3*time.Millisecond) }()
		merr = change()
		wg.Wait()
		if err := errors.Join(cerr, merr); err != nil {
			return err
		}
		return r.settle(what)
	}
	// Two newcomers join one after the other.
	for i := initial; i < r.o.Nodes; i++ {
		p, err := r.c.Add(r.ctx, fmt.Sprintf("node%02d", i))
		if err != nil {
			return err
		}
		if err := step(p.Name+" joins", nil, func() error {
			inv, err := r.admin.Device().Invite(r.ctx, r.group)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(r.ctx, r.o.SettleTimeout)
			defer cancel()
			if _, err := p.Device().Join(ctx, inv.Code); err != nil {
				return fmt.Errorf("%s join: %w", p.Name, err)
			}
			return nil
		}); err != nil {
			return err
		}
		r.mu.Lock()
		r.members[p.Name] = p
		r.mu.Unlock()
		if err := r.settle("joined"); err != nil {
			return err
		}
	}
	ms := r.memberList()
	leaver, removed := ms[1], ms[2]
	if err := step(leaver.Name+" leaves", leaver, func() error { return leaver.Device().Leave(r.ctx, r.group) }); err != nil {
		return err
	}
	if err := step(removed.Name+" is removed", removed, func() error {
		return r.admin.Device().Remove(r.ctx, r.group, removed.Name)
	}); err != nil {
		return err
	}
	// The group must really have shrunk everywhere.
	want := len(r.memberList())
	for _, p := range r.memberList() {
		got, err := p.Device().Members(r.ctx, r.group)
		if err != nil {
			return err
		}
		if len(got) != want {
			r.notes["members"] = fmt.Sprintf("%s sees %d members, want %d", p.Name, len(got), want)
			return fmt.Errorf("%s sees %d members, want %d", p.Name, len(got), want)
		}
	}
	return nil
}

// playCrash: members chat while nodes are killed with SIGKILL and
// restarted on their homes, and a member that was never killed rotates its
// keys after each restart. Every other kill hits the member whose send was
// acknowledged last, right after the acknowledgement, which tests that an
// acknowledged message survives its sender's crash. A send counts only once
// the daemon acknowledged it (Send returned OK: the message is durably in
// the outbox); a send cut off by the kill of its node is not counted, since
// the user saw it fail. Every acknowledged message must reach every member,
// killed ones included once they are back, and nobody may see a message
// twice. Kills go on while the traffic lasts (at least two).
func playCrash(r *run) error {
	if r.c.cfg.Processes == nil {
		return ErrNeedsProcesses
	}
	if err := r.formGroup(r.o.Nodes, 1); err != nil {
		return err
	}
	gap := r.o.Gap
	if gap == 0 {
		gap = 10 * time.Millisecond
	}
	r.say("group of %d formed; %d messages while nodes are killed and restarted", r.o.Nodes, r.o.Messages)
	// Every rotation below lands as an epoch of its own; settle waits for
	// all of them (see playConcurrent).
	base, rotations := r.check().epoch, 0
	r.trafficStart = time.Now()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	var unacked, acked int
	var lastMu sync.Mutex
	var last *Peer // the last sender whose send was acknowledged
	trafficDone := make(chan error, 1)
	go func() {
		defer close(trafficDone)
		for range r.o.Messages {
			if ctx.Err() != nil {
				return
			}
			var up []*Peer
			for _, p := range r.memberList() {
				if p.Running() {
					up = append(up, p)
				}
			}
			if len(up) == 0 {
				trafficDone <- errors.New("no member running")
				return
			}
			r.c.mu.Lock()
			p := up[r.c.rng.IntN(len(up))]
			r.c.mu.Unlock()
			ok, err := r.sendUnlessKilled(p)
			if err != nil {
				trafficDone <- err
				return
			}
			if ok {
				acked++
				lastMu.Lock()
				last = p
				lastMu.Unlock()
			} else {
				unacked++
			}
			time.Sleep(gap)
		}
	}()
	ms := r.memberList()
	r.c.mu.Lock()
	r.c.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	r.c.mu.Unlock()
	killed := map[string]bool{}
	kills := 0
	var kerr, terr error
	trafficOver := false
	for kerr == nil && (kills < 2 || !trafficOver) {
		r.c.mu.Lock()
		pause := time.Duration(50+r.c.rng.IntN(150)) * time.Millisecond
		down := time.Duration(100+r.c.rng.IntN(300)) * time.Millisecond
		r.c.mu.Unlock()
		select {
		case err, ok := <-trafficDone:
			if ok {
				terr = err
			}
			trafficOver = true
			if terr != nil {
				kerr = terr
				continue
			}
		case <-time.After(pause):
		}
		victim := ms[kills%len(ms)]
		lastMu.Lock()
		if kills%2 == 1 && last != nil {
			victim = last
		}
		lastMu.Unlock()
		kills++
		r.say("crash %d: SIGKILL %s, down for %v", kills, victim.Name, down)
		if kerr = r.c.Kill(victim); kerr != nil {
			break
		}
		killed[victim.Name] = true
		time.Sleep(down)
		if kerr = r.c.Restart(r.ctx, victim); kerr != nil {
			break
		}
		for _, p := range r.memberList() {
			if !killed[p.Name] {
				if kerr = r.rotate(p); kerr == nil {
					rotations++
				}
				break
			}
		}
	}
	cancel()
	if !trafficOver {
		terr = <-trafficDone
	}
	if err := errors.Join(kerr, terr); err != nil {
		return err
	}
	r.notes["crash"] = fmt.Sprintf("%d SIGKILLs of %d nodes; %d sends acknowledged, %d cut off by a kill (not counted)",
		kills, len(killed), acked, unacked)
	r.minEpoch = base + uint64(rotations)
	return r.settle("traffic")
}

// sendUnlessKilled sends one message from p; a send that fails because p
// was killed meanwhile reports false (not acknowledged, not counted), any
// other failure is an error.
func (r *run) sendUnlessKilled(p *Peer) (bool, error) {
	dev, starts := p.incarnation()
	if dev == nil {
		return false, nil
	}
	r.mu.Lock()
	r.seq++
	text := fmt.Sprintf("m%05d from %s seed %d", r.seq, p.Name, r.o.Seed)
	var rcv []string
	for name := range r.members {
		if name != p.Name {
			rcv = append(rcv, name)
		}
	}
	r.mu.Unlock()
	r.c.rec.sent(text, time.Now())
	if _, err := dev.Send(r.ctx, r.group, text); err != nil {
		if now, s := p.incarnation(); now == nil || s != starts {
			return false, nil
		}
		return false, fmt.Errorf("%s send: %w", p.Name, err)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, sentMsg{text: text, sender: p.Name, receivers: rcv})
	r.mu.Unlock()
	return true, nil
}
