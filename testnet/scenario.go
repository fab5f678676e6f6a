package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Options selects and sizes a scenario run.
type Options struct {
	Scenario string
	Nodes    int
	Seed     uint64
	// Messages is how many chat messages the scenario sends in total.
	Messages int
	// Epochs is how many key rotations the offline scenario makes while a
	// node is away. Default 5.
	Epochs int
	// Dir keeps the nodes' homes there instead of a removed temp dir.
	Dir string
	// Timing defaults to FastTiming (chat and scale: scaleTiming, slower with
	// more nodes).
	Timing Timing
	// SettleTimeout bounds each wait for delivery and convergence.
	// Default 60s.
	SettleTimeout time.Duration
	// Floor makes chat and scale also measure the same traffic over bare
	// GossipSub on the same hosts (Report.FloorLatencyMS), and offline the
	// local floor of the returning node's resync (Report.Resync).
	Floor bool
	// JoinParallel is how many invitees of chat and scale join at once.
	// Default 1 (one after the other).
	JoinParallel int
	// Gap paces chat messages. Default 2ms.
	Gap time.Duration
	// Logger receives the nodes' diagnostics (default: discarded).
	Logger *slog.Logger
	// Narrate, if set, receives a line per step (the human summary still
	// comes from Report.WriteSummary).
	Narrate io.Writer
	// Processes, if set, runs each node as its own process (required by
	// crash).
	Processes *Processes

	// profileResync, if set, is started when the offline scenario's node
	// returns and the function it returns called once it caught up
	// (BenchmarkResync's CPU profile of the catch-up alone).
	profileResync func() (stop func())
}

// Scenarios lists the scenario names Run accepts.
var Scenarios = []string{"chat", "concurrent", "partition", "offline", "churn", "scale", "crash"}

// ErrUnknownScenario is returned for a scenario name not in Scenarios.
var ErrUnknownScenario = errors.New("testnet: unknown scenario")

// ErrNeedsProcesses is returned by scenarios that need separate processes
// (crash: SIGKILL of a node) when run in one process.
var ErrNeedsProcesses = errors.New("testnet: scenario needs --processes")

// RunScenario plays one scenario on a fresh cluster and reports.
func RunScenario(ctx context.Context, o Options) (*Report, error) {
	if o.Nodes < 2 {
		return nil, fmt.Errorf("testnet: need at least 2 nodes, got %d", o.Nodes)
	}
	if o.Messages <= 0 {
		o.Messages = 10 * o.Nodes
	}
	if o.Epochs <= 0 {
		o.Epochs = 5
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 60 * time.Second
	}
	play, ok := map[string]func(*run) error{
		"chat": playChat, "scale": playChat, "concurrent": playConcurrent, "partition": playPartition,
		"offline": playOffline, "churn": playChurn,
		"crash": playCrash,
	}[o.Scenario]
	if !ok {
		return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknownScenario, o.Scenario, Scenarios)
	}
	if o.Scenario == "crash" && o.Processes == nil {
		return nil, ErrNeedsProcesses
	}
	if o.Timing == (Timing{}) {
		o.Timing = FastTiming
		if o.Scenario == "partition" {
			// The split must heal within the finality window for both
			// halves to converge (a longer split leaves the losing half
			// on a dead branch by design: commitorder's Rejoin).
			o.Timing.FinalityAge = 3 * time.Second
		}
		if o.Scenario == "scale" || o.Scenario == "chat" {
			// chat is one group on one machine as well; at 30 nodes
			// FastTiming's tips alone took a third of the CPU and slowed
			// even the GossipSub floor measured beside it (p50 77-111 ms).
			o.Timing = scaleTiming(o.Nodes)
		}
	}
	c, err := NewCluster(ClusterConfig{Dir: o.Dir, Seed: o.Seed, Timing: o.Timing, Logger: o.Logger, Processes: o.Processes})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: o, members: map[string]*Peer{}, notes: map[string]string{}}
	start := time.Now()
	if err := play(r); err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", o.Scenario, err)
	}
	rep := r.report()
	rep.DurationS = time.Since(start).Seconds()
	return rep, nil
}

// scaleTiming is the chat and scale scenarios' timing for n nodes: FastTiming for
// small groups; for large ones, tips and finality slow down with n, so
// that n nodes sharing this machine's cores are not loaded n times more
// per node than the devices of a real group (node's defaults: a tip per
// 5 s, finality after 2 minutes).
//
// Tips: every member signs one per interval and every member verifies
// every tip (twice: GossipSub's message signature and the tip's own), so in
// one process a group's tips cost n*n verifications per interval. At
// FastTiming's 200 ms that was 8,000 tips verified twice per second at 40
// nodes, two thirds of all CPU: the run took five minutes, p99 26 s. The
// whole group's tips are kept to scaleTipsPerSecond.
//
// Finality: a member that has not caught up with claims of epochs it does
// not know within FinalityAge takes its branch for lost (commitorder's
// Rejoin). At 60 nodes a joiner of the formation's join storm, on two
// cores, could not process its Welcome and the next Commit within
// FastTiming's 1.5 s and was stranded. The age grows by scaleAgePerNode.
func scaleTiming(n int) Timing {
	t := FastTiming
	t.TipInterval = max(t.TipInterval, time.Duration(n)*time.Second/scaleTipsPerSecond)
	t.FinalityAge = max(t.FinalityAge, time.Duration(n)*scaleAgePerNode)
	return t
}

const (
	// scaleTipsPerSecond bounds the tips of a scale run's whole group.
	scaleTipsPerSecond = 25
	// scaleAgePerNode is a scale run's finality age per node.
	scaleAgePerNode = 100 * time.Millisecond
)

// run is the state of one scenario: the group, who is a member, and every
// message sent with the members that should receive it.
type run struct {
	c       *Cluster
	ctx     context.Context
	o       Options
	group   string
	admin   *Peer
	mu      sync.Mutex
	members map[string]*Peer
	msgs    []sentMsg
	seq     int
	notes   map[string]string
	floor   *Percentiles
	resync  *ResyncStats

	trafficStart, trafficEnd time.Time
	// trafficBusy: time spent chatting (each block from its first send
	// to its last live delivery), when the floor's blocks come between.
	trafficBusy time.Duration
	// minEpoch: settle also waits until the members are on this epoch or
	// a later one (the Commits a scenario requested have all landed).
	minEpoch uint64
	// chatCPU and floorCPU: this process's CPU time over the chat blocks
	// (as trafficBusy) and over the floor's blocks.
	chatCPU, floorCPU time.Duration
}

type sentMsg struct {
	text      string
	sender    string
	receivers []string // members when it was sent, sender excluded
}

func (r *run) say(format string, args ...any) {
	if r.o.Narrate != nil {
		fmt.Fprintf(r.o.Narrate, format+"\n", args...)
	}
}

func (r *run) memberList() []*Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Peer, 0, len(r.members))
	for _, p := range r.c.Peers() {
		if r.members[p.Name] != nil {
			out = append(out, p)
		}
	}
	return out
}

// formGroup starts n peers; the first creates the group and invites the
// others, which join `parallel` at a time.
//
// Known limit (a finding of this testnet, not worked around here): joined
// one after the other, the tenth member never gets in — its Join waits
// for a Welcome until the deadline. The admin authors every Add, and
// commitorder lets a member author at most 8 of the last 16 commits
// (node.DefaultCommitRate, commitorder.DefaultRateWindow), so the ninth
// Add in a row is never proposed and the joiner is not told.
func (r *run) formGroup(n, parallel int) error {
	for i := range n {
		if _, err := r.c.Add(r.ctx, fmt.Sprintf("node%02d", i)); err != nil {
			return err
		}
	}
	peers := r.c.Peers()
	if r.c.lab != nil {
		t0 := time.Now()
		if err := r.c.awaitDiscovery(r.ctx, r.o.SettleTimeout); err != nil {
			return err
		}
		r.notes["discovery"] = fmt.Sprintf("%d nodes in separate network namespaces found each other by mDNS in %.1f s", n, time.Since(t0).Seconds())
	}
	r.admin = peers[0]
	g, err := r.admin.Device().CreateGroup(r.ctx, "testnet")
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	r.group = g.ID
	r.members[r.admin.Name] = r.admin
	return r.join(peers[1:], parallel)
}

// join invites and joins peers into the group.
func (r *run) join(peers []*Peer, parallel int) error {
	parallel = max(1, parallel)
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		inv, err := r.admin.Device().Invite(r.ctx, r.group)
		if err != nil {
			return fmt.Errorf("invite %s: %w", p.Name, err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(r.ctx, r.o.SettleTimeout)
			defer cancel()
			if _, err := p.Device().Join(ctx, inv.Code); err != nil {
				errs[i] = fmt.Errorf("%s join: %w", p.Name, err)
				return
			}
			r.mu.Lock()
			r.members[p.Name] = p
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return r.settle("group formed")
}

// send sends one uniquely numbered message from p.
func (r *run) send(p *Peer) error { return r.sendAt(p, time.Now()) }

// sendAt is send for a message that was due at the given time: its latency
// counts from then.
func (r *run) sendAt(p *Peer, due time.Time) error {
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
	r.c.rec.sent(text, due)
	if _, err := p.Device().Send(r.ctx, r.group, text); err != nil {
		return fmt.Errorf("%s send: %w", p.Name, err)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, sentMsg{text: text, sender: p.Name, receivers: rcv})
	r.mu.Unlock()
	return nil
}

// chat sends m messages from the given senders in a random order, the
// i-th at start + i*gap (the floor's schedule, see pace), not gap after
// the previous Send returned: a slow Send must not lighten the load.
func (r *run) chat(m int, senders []*Peer, gap time.Duration) error {
	if r.trafficStart.IsZero() {
		r.trafficStart = time.Now()
	}
	start := time.Now()
	for i := range m {
		pace(start, i, gap)
		r.c.mu.Lock()
		p := senders[r.c.rng.IntN(len(senders))]
		r.c.mu.Unlock()
		if err := r.send(p); err != nil {
			return err
		}
	}
	return nil
}

// chatLoad is chat as people make it: message i is due at start + i*gap
// from a random sender and is handed to that sender's device when it is
// due, whether or not the device has finished sending the previous one (a
// chat app does not stop its user typing while a message goes out; the
// node queues them on its group's actor). Its latency counts from when it
// was due, so a send stuck behind a slow one is counted rather than hidden
// (a sender that waits for each Send before scheduling the next measures
// only the messages it manages to send: coordinated omission).
func (r *run) chatLoad(m int, senders []*Peer, gap time.Duration) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for i := range m {
		pace(start, i, gap)
		r.c.mu.Lock()
		p := senders[r.c.rng.IntN(len(senders))]
		r.c.mu.Unlock()
		due := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.sendAt(p, due); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pace waits until the i-th message of a run started at start is due:
// start + i*gap. Chat and the floor share it so that both offer the same
// load whatever a send costs (sleeping gap after each send would stretch
// the slower one's schedule by its own send time).
func pace(start time.Time, i int, gap time.Duration) {
	if gap <= 0 {
		return
	}
	if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
		time.Sleep(d)
	}
}

// awaitLive waits, without calling any node, until the recorder has seen
// a live delivery event for every (message, receiver) pair sent so far, or
// for at most timeout or liveIdle without progress (a delivery missed live
// is then found by settle).
func (r *run) awaitLive(timeout time.Duration) {
	r.mu.Lock()
	pairs := make(map[string][]string, len(r.msgs))
	for _, m := range r.msgs {
		pairs[m.text] = m.receivers
	}
	r.mu.Unlock()
	deadline := time.Now().Add(timeout)
	lastMissing, lastProgress := -1, time.Now()
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		missing := r.c.rec.missing(pairs)
		if missing == 0 {
			return
		}
		if missing != lastMissing {
			lastMissing, lastProgress = missing, time.Now()
		} else if time.Since(lastProgress) > liveIdle {
			return // what is left arrives by resync: settle's business
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveIdle is how long awaitLive waits without any new live delivery.
const liveIdle = 2 * time.Second

// progress is a check of the current state against expectations.
type progress struct {
	missing    int
	converged  bool
	epoch      uint64
	delivered  int
	expected   int
	duplicates int
	problems   []string
}

// check reads every member's history and group state.
func (r *run) check() progress {
	var pr progress
	members := r.memberList()
	have := make(map[string]map[string]int, len(members))
	var epochID string
	pr.converged = true
	for _, p := range members {
		n := p.Device()
		if n == nil {
			pr.converged = false
			pr.problems = append(pr.problems, p.Name+" is not running")
			continue
		}
		ms, err := n.Log(r.ctx, r.group, 1<<30)
		if err != nil {
			pr.converged = false
			pr.problems = append(pr.problems, fmt.Sprintf("%s log: %v", p.Name, err))
			continue
		}
		h := make(map[string]int, len(ms))
		for _, m := range ms {
			h[m.Text]++
		}
		have[p.Name] = h
		g, err := groupOf(r.ctx, n, r.group)
		if err != nil {
			pr.converged = false
			pr.problems = append(pr.problems, fmt.Sprintf("%s: %v", p.Name, err))
			continue
		}
		if epochID == "" {
			epochID, pr.epoch = g.EpochID, g.Epoch
		} else if g.EpochID != epochID {
			pr.converged = false
			pr.problems = append(pr.problems, fmt.Sprintf("%s on epoch %d %.8s, %s on %d %.8s",
				members[0].Name, pr.epoch, epochID, p.Name, g.Epoch, g.EpochID))
		}
	}
	for _, h := range have {
		for _, c := range h {
			if c > 1 {
				pr.duplicates += c - 1
			}
		}
	}
	r.mu.Lock()
	msgs := slices.Clone(r.msgs)
	r.mu.Unlock()
	for _, m := range msgs {
		for _, rc := range m.receivers {
			h, ok := have[rc]
			if !ok {
				if r.members[rc] != nil { // a member we could not read
					pr.expected++
					pr.missing++
				}
				continue
			}
			pr.expected++
			if h[m.text] > 0 {
				pr.delivered++
			} else {
				pr.missing++
				if pr.missing <= 3 {
					pr.problems = append(pr.problems, fmt.Sprintf("%s lacks %q", rc, m.text))
				}
			}
		}
	}
	return pr
}

// settle waits until every member holds every expected message and all
// are on one canonical epoch, at least minEpoch.
func (r *run) settle(what string) error {
	deadline := time.Now().Add(r.o.SettleTimeout)
	// A commit just requested (Rotate, Remove) may not have reached anyone
	// yet, so one good check is not enough: the state must hold for a few
	// tip intervals, long enough for any pending commit to show.
	stable := 3 * r.c.cfg.Timing.TipInterval
	var goodSince, firstGood time.Time
	for {
		pr := r.check()
		if pr.missing == 0 && pr.converged && pr.epoch >= r.minEpoch {
			if goodSince.IsZero() {
				goodSince = time.Now()
			}
			if firstGood.IsZero() {
				firstGood = goodSince
			}
			if time.Since(goodSince) >= stable {
				if what == "traffic" {
					r.trafficEnd = firstGood
				}
				return nil
			}
		} else {
			goodSince = time.Time{}
		}
		if time.Now().After(deadline) {
			return nil // the report says what is missing
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *run) report() *Report {
	pr := r.check()
	if pr.converged && pr.epoch < r.minEpoch {
		// One epoch, but not every requested Commit landed on it.
		pr.converged = false
		pr.problems = append(pr.problems, fmt.Sprintf("on epoch %d, want at least %d: requested Commits did not land", pr.epoch, r.minEpoch))
	}
	rep := &Report{Scenario: r.o.Scenario, Mode: r.c.mode(), Nodes: len(r.c.Peers()), Seed: r.o.Seed,
		Delivered: pr.delivered, Expected: pr.expected, Lost: pr.missing, DuplicatesShown: pr.duplicates,
		Epochs: pr.epoch, ForksResolved: r.c.rec.maxForks(), Converged: pr.converged,
		PeakRSSMB: r.c.peakRSSMB(), Notes: r.notes, Problems: pr.problems}
	r.mu.Lock()
	rep.Sent = len(r.msgs)
	pairs := make(map[string][]string, len(r.msgs))
	for _, m := range r.msgs {
		pairs[m.text] = m.receivers
	}
	r.mu.Unlock()
	rep.LatencyMS = percentiles(r.c.rec.latencies(pairs))
	rep.FloorLatencyMS = r.floor
	if r.c.cfg.Processes == nil && r.floor != nil && r.floor.Samples > 0 && pr.delivered > 0 {
		// In one process only: with --processes the work is in the
		// node processes.
		rep.CPUPerDeliveryUS = float64(r.chatCPU.Microseconds()) / float64(pr.delivered)
		rep.FloorCPUPerDeliveryUS = float64(r.floorCPU.Microseconds()) / float64(r.floor.Samples)
	}
	rep.Resync = r.resync
	if d := r.trafficBusy.Seconds(); d > 0 {
		rep.ThroughputPerS = float64(pr.delivered) / d
	} else if d := r.trafficEnd.Sub(r.trafficStart).Seconds(); d > 0 && !r.trafficStart.IsZero() && !r.trafficEnd.IsZero() {
		rep.ThroughputPerS = float64(pr.delivered) / d
	}
	if len(rep.Notes) == 0 {
		rep.Notes = nil
	}
	return rep
}

func (r *run) rotate(p *Peer) error {
	if err := p.Device().Rotate(r.ctx, r.group); err != nil {
		return fmt.Errorf("%s rotate: %w", p.Name, err)
	}
	return nil
}

// rotateInTurn rotates p's keys and waits until every peer in on is past
// the epoch p was on, all on one epoch: the rotation has been committed
// and is the group's. Rotate only queues the update, so rotations by
// different members issued back to back race, and the Commits that lose
// the race stay in every log next to the winners (commitorder settles
// such a fork; the concurrent scenario plays it). A scenario that means
// one Commit per rotation, as offline does, rotates in turn.
func (r *run) rotateInTurn(p *Peer, on []*Peer) error {
	g, err := groupOf(r.ctx, p.Device(), r.group)
	if err != nil {
		return fmt.Errorf("%s rotate: %w", p.Name, err)
	}
	if err := r.rotate(p); err != nil {
		return err
	}
	deadline := time.Now().Add(r.o.SettleTimeout)
	for {
		eid, done := "", true
		for _, q := range on {
			qg, err := groupOf(r.ctx, q.Device(), r.group)
			if err != nil || qg.Epoch <= g.Epoch || (eid != "" && qg.EpochID != eid) {
				done = false
				break
			}
			eid = qg.EpochID
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's rotation from epoch %d not on every member within %v", p.Name, g.Epoch, r.o.SettleTimeout)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
