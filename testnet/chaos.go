package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"grove/node/api"
)

// ChaosOptions configures the chaos scenario: real `grove up` daemons, one
// per network namespace, driven only through their local API sockets while
// a seeded schedule injects network faults, crashes and membership churn.
type ChaosOptions struct {
	// Nodes is the number of daemons (2..64).
	Nodes int
	// Duration is how long faults and traffic go on; convergence is
	// awaited after it.
	Duration time.Duration
	// Seed makes the fault schedule reproducible.
	Seed uint64
	// Grove is the argv of the grove command (the CLI passes its own
	// executable; tests a grove binary they built).
	Grove []string
	// Env is added to every grove command's environment.
	Env []string
	// Dir holds the daemons' homes; empty means a temporary directory
	// removed at the end.
	Dir string
	// NewPort restarts a killed daemon on a new port instead of its old one.
	NewPort bool
	// Faults lists the fault kinds to apply (AllFaults when empty).
	Faults []string
	// MaxHold is the longest a fault is held (at least 3 s). Default 10 s,
	// shorter than TCP and libp2p give up on a silent connection; longer
	// holds make link faults drop connections, which must then be redialed.
	MaxHold time.Duration
	// ConvergeTimeout bounds the wait for convergence after the last heal.
	// Default 3 minutes (a rejoin waits for finality, 2 minutes by age).
	ConvergeTimeout time.Duration
	// Narrate, if set, receives a line per step.
	Narrate io.Writer
}

// ChaosFault is one fault the run applied.
type ChaosFault struct {
	Kind     string   `json:"kind"`
	Nodes    []string `json:"nodes"`
	AtS      float64  `json:"at_s"`
	HealedS  float64  `json:"healed_s"`
	Detail   string   `json:"detail,omitempty"`
	ApplyErr string   `json:"error,omitempty"`
}

// OpCount counts one kind of API operation.
type OpCount struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// ChaosReport is the outcome of a chaos run (its JSON is what
// `grove testnet run --scenario chaos --json` prints).
type ChaosReport struct {
	Scenario  string  `json:"scenario"`
	Mode      string  `json:"mode"`
	Nodes     int     `json:"nodes"`
	Seed      uint64  `json:"seed"`
	DurationS float64 `json:"duration_s"`
	// Sent counts Send calls; Acknowledged those the API acknowledged
	// (durably in the sender's outbox). Only acknowledged messages count.
	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"`
	// Expected counts (acknowledged message, current member) pairs that
	// must be in that member's log: the member joined before the send and
	// stayed, and the message's epoch is not older than its join.
	Expected int `json:"expected"`
	// Lost counts expected pairs missing at the end; LostSenderRemoved is
	// the part whose sender was removed after sending (its message may
	// have been on an epoch that lost to the removal).
	Lost              int      `json:"lost"`
	LostSenderRemoved int      `json:"lost_sender_removed"`
	LostSample        []string `json:"lost_sample,omitempty"`
	// DuplicatesShown counts extra copies of a message in members' logs.
	DuplicatesShown int `json:"duplicates_shown"`
	// Converged: all current members on one epoch id, the group's member
	// count as expected, no join or removal in flight, and every expected
	// message present, once traffic has ended, within ConvergeTimeout of
	// the last heal.
	Converged bool `json:"converged"`
	// TimeToConvergeS is the time from the last heal to the first moment
	// the same check passed. Traffic and churn go on after the last heal
	// (the schedule leaves the last 15% of the run free of faults), so
	// the check runs from the last heal on, alongside them: a pass then
	// means every message acknowledged before it had reached every
	// member and nobody was behind. If no check passes while traffic goes
	// on, it is the time to the pass after traffic ended.
	TimeToConvergeS float64 `json:"time_to_converge_s"`
	// ConvergedDuringTraffic says which of the two TimeToConvergeS is.
	ConvergedDuringTraffic bool `json:"converged_during_traffic"`
	// QuietToConvergeS is the time from the end of traffic to the final
	// pass (Converged).
	QuietToConvergeS float64  `json:"quiet_to_converge_s"`
	NotConverged     []string `json:"not_converged,omitempty"`
	// Reconnects counts a daemon seeing a peer connected again after it
	// had been disconnected (from the daemons' Peers, polled each second).
	Reconnects int `json:"reconnects"`
	// Faults lists every fault; FaultsApplied counts them by kind;
	// FaultsSkipped says which kinds could not run here and why.
	Faults        []ChaosFault      `json:"faults"`
	FaultsApplied map[string]int    `json:"faults_applied"`
	FaultsSkipped map[string]string `json:"faults_skipped,omitempty"`
	// Ops counts the API operations of the churn: send, rotate, remove,
	// invite, leave, join.
	Ops map[string]*OpCount `json:"ops"`
	// OpErrors samples failed operations.
	OpErrors []string `json:"op_errors,omitempty"`
	// RejoinsFailed counts removed members invited back whose Join did
	// not complete (within 3 minutes, or before the run ended): they are
	// not members at the end, so convergence does not wait for them.
	RejoinsFailed int `json:"rejoins_failed"`
	// Restarts counts daemon restarts after kills; DaemonCrashes lists
	// daemon exits the run did not cause.
	Restarts      int      `json:"restarts"`
	DaemonCrashes []string `json:"daemon_crashes"`
	// Members are the members at the end; Epochs their epoch ids.
	Members []string          `json:"members"`
	Epochs  map[string]string `json:"epochs"`
	// Cleanup: every namespace (and with it every link, qdisc and nft
	// rule) of the run was deleted; Leftovers lists what was not.
	NetnsPrefix         string   `json:"netns_prefix"`
	CleanupOK           bool     `json:"cleanup_ok"`
	Leftovers           []string `json:"leftovers,omitempty"`
	StaleRemovedAtStart []string `json:"stale_removed_at_start,omitempty"`
}

// Failed reports whether acknowledged messages were lost or the group did
// not converge.
func (r *ChaosReport) Failed() bool { return r.Lost > 0 || !r.Converged }

// chaosMember is the driver's record of one daemon's membership.
type chaosMember struct {
	member    bool
	since     time.Time // start of the current membership
	joinEpoch uint64
	busy      bool      // a remove, leave or join of it is in flight
	faulted   bool      // a fault holds it
	removedAt time.Time // last removal acknowledged
}

// chaosSent is one acknowledged message.
type chaosSent struct {
	text   string
	sender int
	at     time.Time // when Send was called
	epoch  uint64
}

type chaosRun struct {
	o     ChaosOptions
	lab   *netLab
	ds    []*chaosDaemon
	gid   string
	start time.Time
	rng   *rand.Rand // owned by the scheduler goroutine

	mu       sync.Mutex
	mem      []chaosMember
	sent     []chaosSent
	rep      *ChaosReport
	lastHeal time.Time
	// healConverged is when a check first passed after the last heal
	// (watchConverge); zero until then.
	healConverged time.Time
	joins         int  // joins in flight
	partOn        bool // a partition is applied
	seq           int
	ops           sync.WaitGroup
}

// RunChaos runs the chaos scenario. It needs root, ip, and the grove
// command; faults the machine cannot apply (no nft, no netem) are skipped
// and listed in the report. Every namespace the run made is deleted before
// it returns, also when ctx ends early.
func RunChaos(ctx context.Context, o ChaosOptions) (_ *ChaosReport, err error) {
	if o.Nodes < 2 || o.Nodes > 64 {
		return nil, fmt.Errorf("%w: chaos needs 2..64 nodes", ErrUsage)
	}
	if o.Duration <= 0 {
		return nil, fmt.Errorf("%w: chaos needs a positive --duration", ErrUsage)
	}
	if len(o.Grove) == 0 {
		return nil, fmt.Errorf("%w: chaos needs the grove command", ErrUsage)
	}
	if o.ConvergeTimeout <= 0 {
		o.ConvergeTimeout = 3 * time.Minute
	}
	if o.MaxHold <= 0 {
		o.MaxHold = 10 * time.Second
	}
	o.MaxHold = max(o.MaxHold, 3*time.Second)
	kinds := o.Faults
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	for _, k := range kinds {
		if !slices.Contains(AllFaults, k) {
			return nil, fmt.Errorf("%w: unknown fault %q (want %s)", ErrUsage, k, strings.Join(AllFaults, ", "))
		}
	}
	if err := NetnsAvailable(Netns{}); err != nil {
		return nil, err
	}
	rep := &ChaosReport{Scenario: "chaos", Mode: "netns-daemons", Nodes: o.Nodes, Seed: o.Seed,
		FaultsApplied: map[string]int{}, FaultsSkipped: map[string]string{}, Ops: map[string]*OpCount{},
		Epochs: map[string]string{}, DaemonCrashes: []string{}, Faults: []ChaosFault{}}
	rep.StaleRemovedAtStart, err = removeStaleNamespaces()
	if err != nil {
		return nil, err
	}
	skipped := faultSupport(ctx)
	var active []string
	for _, k := range kinds {
		if why, ok := skipped[k]; ok {
			rep.FaultsSkipped[k] = why
			continue
		}
		active = append(active, k)
	}

	dir := o.Dir
	if dir == "" {
		dir, err = os.MkdirTemp("", "grovechaos-")
		if err != nil {
			return nil, fmt.Errorf("testnet: chaos: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	lab, err := newNetLabPrefix(Netns{}, fmt.Sprintf("%s-%d", chaosPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	r := &chaosRun{o: o, lab: lab, rep: rep, mem: make([]chaosMember, o.Nodes),
		rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	defer func() {
		// Cleanup runs whatever happened: daemons first (so nothing
		// holds the namespaces), then the namespaces with their links,
		// qdiscs and nft tables.
		r.ops.Wait()
		for _, d := range r.ds {
			d.stop()
		}
		for _, d := range r.ds {
			rep.DaemonCrashes = append(rep.DaemonCrashes, prefixAll(d.name+": ", d.crashList())...)
		}
		// Every fault was healed: no nft table or throttle may remain
		// (the namespaces' deletion would hide a heal that failed).
		var left []string
		for _, d := range r.ds {
			if _, lookErr := exec.LookPath("nft"); lookErr == nil {
				if tables, terr := nftTables(d.host); terr == nil && strings.Contains(tables, nftTable) {
					left = append(left, d.name+": nft table "+nftTable)
				}
			}
			if q, qerr := exec.Command("tc", "-n", d.host.ns, "qdisc", "show", "dev", "eth0").Output(); qerr == nil &&
				(strings.Contains(string(q), "tbf") || strings.Contains(string(q), "netem")) {
				left = append(left, d.name+": qdisc "+strings.TrimSpace(string(q)))
			}
		}
		cerr := lab.Close()
		rep.NetnsPrefix = lab.prefix
		rep.Leftovers = append(left, listNamespaces(lab.prefix+"-")...)
		rep.CleanupOK = cerr == nil && len(rep.Leftovers) == 0
		if err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err := lab.addPartitionBridge(); err != nil {
		return rep, err
	}
	if err := r.setup(ctx, dir); err != nil {
		return rep, err
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var pollWG sync.WaitGroup
	pollWG.Go(func() { r.pollPeers(pollCtx) })
	defer func() {
		stopPoll()
		pollWG.Wait()
	}()

	// Churn operations still going after the convergence wait (a rejoin
	// waiting for its Welcome) are abandoned, so that the run ends.
	opsCtx, cancelOps := context.WithCancel(ctx)
	defer cancelOps()
	r.chaos(opsCtx, active)
	r.converge(ctx)
	cancelOps()
	r.mu.Lock()
	rep.DurationS = time.Since(r.start).Seconds()
	r.mu.Unlock()
	return rep, ctx.Err()
}

func prefixAll(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

func (r *chaosRun) narrate(format string, args ...any) {
	if r.o.Narrate == nil {
		return
	}
	fmt.Fprintf(r.o.Narrate, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// op records the outcome of one API operation.
func (r *chaosRun) op(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.rep.Ops[kind]
	if c == nil {
		c = &OpCount{}
		r.rep.Ops[kind] = c
	}
	if err == nil {
		c.OK++
		return
	}
	c.Failed++
	if len(r.rep.OpErrors) < 20 {
		r.rep.OpErrors = append(r.rep.OpErrors, fmt.Sprintf("%s at %.1fs: %v", kind, time.Since(r.start).Seconds(), err))
	}
}

// basePort is where every daemon listens (each on its own address).
const basePort = 4001

// setup starts the daemons and forms the group: node 0 creates it and
// invites every other node, which joins.
func (r *chaosRun) setup(ctx context.Context, dir string) error {
	r.start = time.Now()
	for i := range r.o.Nodes {
		name := fmt.Sprintf("n%d", i)
		h, err := r.lab.host(name)
		if err != nil {
			return err
		}
		d := &chaosDaemon{name: name, home: filepath.Join(dir, name), host: h, grove: r.o.Grove, env: r.o.Env}
		r.ds = append(r.ds, d)
		if err := d.initHome(ctx); err != nil {
			return err
		}
		if err := d.start(ctx, basePort); err != nil {
			return err
		}
	}
	r.narrate("%d daemons up", len(r.ds))
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	g, err := r.ds[0].api().CreateGroup(cctx, "chaos")
	cancel()
	if err != nil {
		return fmt.Errorf("testnet: chaos: create group: %w", err)
	}
	r.gid = g.ID
	r.mem[0] = chaosMember{member: true, since: time.Now(), joinEpoch: g.Epoch}
	var wg sync.WaitGroup
	for i := 1; i < r.o.Nodes; i++ {
		wg.Go(func() {
			if err := r.join(ctx, i, 3*time.Minute); err != nil {
				r.narrate("n%d: join failed: %v", i, err)
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.mem {
		if m.member {
			n++
		}
	}
	r.narrate("group formed: %d of %d members", n, r.o.Nodes)
	if n < 2 {
		return fmt.Errorf("testnet: chaos: only %d members joined the group", n)
	}
	return nil
}

// join has the admin invite node i, which (after leaving the group it was
// removed from, if any) redeems the code.
func (r *chaosRun) join(ctx context.Context, i int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inv, err := r.invite(ctx)
	r.op("invite", err)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.joins++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.joins--
		r.mu.Unlock()
	}()
	for {
		// The joiner may be down (killed) for a moment: retry on the
		// restarted daemon.
		if c := r.ds[i].api(); c != nil {
			g, err := c.Join(ctx, inv.Code)
			if err == nil {
				r.op("join", nil)
				r.mu.Lock()
				r.mem[i].member, r.mem[i].since, r.mem[i].joinEpoch = true, time.Now(), g.Epoch
				r.mu.Unlock()
				r.narrate("n%d joined at epoch %d", i, g.Epoch)
				return nil
			}
			if ctx.Err() != nil || !errors.Is(err, api.ErrUnavailable) {
				r.op("join", err)
				return err
			}
		}
		select {
		case <-ctx.Done():
			r.op("join", ctx.Err())
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// invite has the admin issue an invite code, waiting while the admin's
// daemon is down (a kill fault restarts it within seconds: giving up then
// would drop the rejoin for a reason of the driver's own, and the run
// would no longer wait for that member).
func (r *chaosRun) invite(ctx context.Context) (api.Invite, error) {
	for {
		if admin := r.ds[0].api(); admin != nil {
			inv, err := admin.Invite(ctx, r.gid)
			if err == nil || ctx.Err() != nil || !errors.Is(err, api.ErrUnavailable) {
				return inv, err
			}
		}
		select {
		case <-ctx.Done():
			return api.Invite{}, fmt.Errorf("%w: %w", errDaemonDown, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// chaosEvent is one scheduled fault.
type chaosEvent struct {
	kind  string
	at    time.Duration
	hold  time.Duration
	nodes int // partition size
}

// faultSpan is the part of the run in which faults (and removals) start
// and end; the rest is traffic on a healed network.
func (r *chaosRun) faultSpan() time.Duration { return r.o.Duration * 85 / 100 }

// schedule draws the faults: every kind at least once, then random kinds,
// spread over the first 85% of the run so that the last heal leaves time
// for traffic on a healed network.
func (r *chaosRun) schedule(kinds []string) []chaosEvent {
	if len(kinds) == 0 {
		return nil
	}
	n := max(len(kinds), int(r.o.Duration/(8*time.Second)))
	order := slices.Clone(kinds)
	r.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for len(order) < n {
		order = append(order, kinds[r.rng.IntN(len(kinds))])
	}
	span := r.faultSpan()
	slot := span / time.Duration(n)
	var ev []chaosEvent
	for i, k := range order {
		at := time.Duration(i)*slot + time.Duration(r.rng.Int64N(int64(slot)/2+1))
		hold := 3*time.Second + time.Duration(r.rng.Int64N(int64(r.o.MaxHold-3*time.Second)+1))
		if at+hold > span {
			hold = max(time.Second, span-at)
		}
		ev = append(ev, chaosEvent{kind: k, at: at, hold: hold, nodes: 1 + r.rng.IntN(max(1, r.o.Nodes/2))})
	}
	return ev
}

// chaos runs the fault schedule and the traffic and membership churn for
// Duration, then heals whatever is still broken.
func (r *chaosRun) chaos(ctx context.Context, kinds []string) {
	events := r.schedule(kinds)
	r.narrate("chaos: %d faults over %v", len(events), r.o.Duration)
	begin := time.Now()
	end := begin.Add(r.o.Duration)
	nextSend := begin
	nextRotate := begin.Add(5 * time.Second)
	nextRemove := begin.Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var faults sync.WaitGroup
	// Once the last fault is applied and healed, watchConverge checks
	// for convergence while traffic goes on.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	defer func() {
		stopWatch()
		watch.Wait()
	}()
	watching := false
	for time.Now().Before(end) && ctx.Err() == nil {
		if !watching && len(events) == 0 {
			watching = true
			watch.Go(func() {
				faults.Wait()
				r.watchConverge(watchCtx)
			})
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		now := time.Now()
		for len(events) > 0 && now.Sub(begin) >= events[0].at {
			ev := events[0]
			if !r.fault(ctx, &faults, ev) {
				// No free target: try again in a second.
				events[0].at += time.Second
				if begin.Add(events[0].at + time.Second).After(end) {
					events = events[1:]
				}
				break
			}
			events = events[1:]
		}
		if now.After(nextSend) {
			nextSend = now.Add(time.Duration(150+r.rng.IntN(200)) * time.Millisecond)
			r.send(ctx)
		}
		if now.After(nextRotate) {
			nextRotate = now.Add(time.Duration(6+r.rng.IntN(8)) * time.Second)
			r.rotate(ctx)
		}
		// Removals (and their re-invites) start only while faults are
		// scheduled: what follows the last heal is there to measure
		// convergence, and a removal started then would be new churn,
		// not something to heal from (a rejoin waits for its Add's epoch
		// to be final, which alone can take minutes).
		if now.After(nextRemove) && r.o.Nodes > 2 && now.Before(begin.Add(r.faultSpan())) {
			nextRemove = now.Add(time.Duration(15+r.rng.IntN(15)) * time.Second)
			r.removeAndReinvite(ctx, end)
		}
	}
	faults.Wait()
	stopWatch()
	watch.Wait()
	r.narrate("chaos over; last heal at %.1fs", r.lastHeal.Sub(r.start).Seconds())
}

// watchConverge runs check from the last heal on, while traffic goes on,
// until it passes once (healConverged) or ctx ends (traffic is over).
func (r *chaosRun) watchConverge(ctx context.Context) {
	r.mu.Lock()
	healed := r.lastHeal
	r.mu.Unlock()
	if healed.IsZero() {
		return
	}
	last := ""
	for ctx.Err() == nil {
		why := r.check(ctx)
		if ctx.Err() != nil {
			return // a check cut short says nothing
		}
		if len(why) == 0 {
			r.mu.Lock()
			r.healConverged = time.Now()
			r.mu.Unlock()
			r.narrate("converged %.1fs after the last heal (traffic goes on)", time.Since(healed).Seconds())
			return
		}
		if s := strings.Join(why, "; "); s != last {
			last = s
			r.mu.Lock()
			if len(r.rep.LostSample) > 0 {
				s += " (" + r.rep.LostSample[0] + ")"
			}
			r.mu.Unlock()
			r.narrate("%.1fs after the last heal: %s", time.Since(healed).Seconds(), s)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pick returns a random node satisfying ok, or -1.
func (r *chaosRun) pick(ok func(i int, m chaosMember) bool) int {
	var c []int
	for i, m := range r.mem {
		if ok(i, m) {
			c = append(c, i)
		}
	}
	if len(c) == 0 {
		return -1
	}
	return c[r.rng.IntN(len(c))]
}

// fault applies ev to free nodes and heals it after its hold, in a
// goroutine owned by wg. It reports false when no node was free.
func (r *chaosRun) fault(ctx context.Context, wg *sync.WaitGroup, ev chaosEvent) bool {
	r.mu.Lock()
	var targets []int
	free := func(i int, m chaosMember) bool { return !m.faulted && !slices.Contains(targets, i) }
	n := 1
	if ev.kind == FaultPartition {
		n = ev.nodes
	}
	for range n {
		if i := r.pick(free); i >= 0 {
			targets = append(targets, i)
		}
	}
	if len(targets) == 0 || ev.kind == FaultPartition && r.partitioned() {
		r.mu.Unlock()
		return false
	}
	for _, i := range targets {
		r.mem[i].faulted = true
	}
	f := ChaosFault{Kind: ev.kind, AtS: time.Since(r.start).Seconds()}
	for _, i := range targets {
		f.Nodes = append(f.Nodes, r.ds[i].name)
	}
	pct := 10 + r.rng.IntN(31)
	kbit := 64 << r.rng.IntN(4)
	down := ev.hold
	r.mu.Unlock()

	apply, heal := r.faultOps(ev.kind, targets, pct, kbit)
	switch ev.kind {
	case FaultLoss:
		f.Detail = fmt.Sprintf("%d%% loss each way", pct)
	case FaultThrottle:
		f.Detail = fmt.Sprintf("tbf %d kbit/s", kbit)
	case FaultKill:
		f.Detail = fmt.Sprintf("down %.1fs", down.Seconds())
	}
	err := apply(ctx)
	if err != nil {
		f.ApplyErr = err.Error()
	}
	r.narrate("fault %s on %v (%s) %v", ev.kind, f.Nodes, f.Detail, errString(err))
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-time.After(ev.hold):
		}
		// Heal even when ctx ended: cleanup must leave nothing behind
		// (and a killed daemon is restarted so that it stops cleanly).
		herr := heal(context.WithoutCancel(ctx))
		r.mu.Lock()
		f.HealedS = time.Since(r.start).Seconds()
		if herr != nil {
			f.ApplyErr = strings.TrimSpace(f.ApplyErr + "; heal: " + herr.Error())
		}
		r.rep.Faults = append(r.rep.Faults, f)
		if err == nil {
			r.rep.FaultsApplied[ev.kind]++
		}
		for _, i := range targets {
			r.mem[i].faulted = false
		}
		r.lastHeal = time.Now()
		r.mu.Unlock()
		r.narrate("healed %s on %v %v", ev.kind, f.Nodes, errString(herr))
	})
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// partitioned reports whether a partition is on (r.mu held): only one at
// a time, so that healing one cannot undo another.
func (r *chaosRun) partitioned() bool { return r.partOn }

// faultOps returns the apply and heal steps of a fault on targets.
func (r *chaosRun) faultOps(kind string, targets []int, pct, kbit int) (apply, heal func(context.Context) error) {
	each := func(f func(context.Context, *chaosDaemon) error) func(context.Context) error {
		return func(ctx context.Context) error {
			var errs []error
			for _, i := range targets {
				errs = append(errs, f(ctx, r.ds[i]))
			}
			return errors.Join(errs...)
		}
	}
	switch kind {
	case FaultLinkDown:
		return each(func(_ context.Context, d *chaosDaemon) error { return setLink(d.host, false) }),
			each(func(_ context.Context, d *chaosDaemon) error { return setLink(d.host, true) })
	case FaultPartition:
		return func(ctx context.Context) error {
				r.mu.Lock()
				r.partOn = true
				r.mu.Unlock()
				return each(func(_ context.Context, d *chaosDaemon) error { return r.lab.setBridge(d.host, "br1") })(ctx)
			}, func(ctx context.Context) error {
				err := each(func(_ context.Context, d *chaosDaemon) error { return r.lab.setBridge(d.host, "br0") })(ctx)
				r.mu.Lock()
				r.partOn = false
				r.mu.Unlock()
				return err
			}
	case FaultLoss:
		return each(func(ctx context.Context, d *chaosDaemon) error { return addLoss(ctx, d.host, pct) }),
			each(func(ctx context.Context, d *chaosDaemon) error { return removeLoss(ctx, d.host) })
	case FaultThrottle:
		return each(func(ctx context.Context, d *chaosDaemon) error { return addThrottle(ctx, d.host, kbit) }),
			each(func(ctx context.Context, d *chaosDaemon) error { return removeQdisc(ctx, d.host) })
	case FaultDelay:
		return each(func(ctx context.Context, d *chaosDaemon) error { return addDelay(ctx, d.host, 150*time.Millisecond) }),
			each(func(ctx context.Context, d *chaosDaemon) error { return removeQdisc(ctx, d.host) })
	case FaultKill:
		return each(func(_ context.Context, d *chaosDaemon) error { d.kill(); return nil }),
			each(func(ctx context.Context, d *chaosDaemon) error {
				port := d.port
				if r.o.NewPort {
					port++
				}
				err := d.start(ctx, port)
				if err == nil {
					r.mu.Lock()
					r.rep.Restarts++
					r.mu.Unlock()
				}
				return err
			})
	}
	panic("testnet: chaos: unknown fault " + kind)
}

// send has a random member send a numbered message; only an acknowledged
// send counts.
func (r *chaosRun) send(ctx context.Context) {
	r.mu.Lock()
	i := r.pick(func(i int, m chaosMember) bool { return m.member && !m.busy && r.ds[i].up() })
	if i < 0 {
		r.mu.Unlock()
		return
	}
	r.seq++
	text := fmt.Sprintf("chaos-%d-%d from n%d", r.o.Seed, r.seq, i)
	r.rep.Sent++
	r.mu.Unlock()
	r.ops.Go(func() {
		at := time.Now()
		c := r.ds[i].api()
		if c == nil {
			r.op("send", errDaemonDown)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		m, err := c.Send(sctx, r.gid, text)
		r.op("send", err)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.rep.Acknowledged++
		r.sent = append(r.sent, chaosSent{text: text, sender: i, at: at, epoch: m.Epoch})
		r.mu.Unlock()
	})
}

// rotate has a random member update its keys.
func (r *chaosRun) rotate(ctx context.Context) {
	r.mu.Lock()
	i := r.pick(func(i int, m chaosMember) bool { return m.member && !m.busy && r.ds[i].up() })
	r.mu.Unlock()
	if i < 0 {
		return
	}
	r.ops.Go(func() {
		c := r.ds[i].api()
		if c == nil {
			r.op("rotate", errDaemonDown)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := c.Rotate(rctx, r.gid)
		r.op("rotate", err)
		r.narrate("n%d rotate %v", i, errString(err))
	})
}

// removeAndReinvite has the admin remove a random member and, a few
// seconds later, invite it back; the removed daemon leaves the old group
// and joins again. A re-invite is not started after end.
func (r *chaosRun) removeAndReinvite(ctx context.Context, end time.Time) {
	r.mu.Lock()
	// One removal (and its rejoin) at a time: a rejoin can take minutes
	// (its Welcome waits for the Add's epoch to be final), and removals
	// faster than that would drain the group.
	for _, m := range r.mem {
		if m.busy || !m.member {
			r.mu.Unlock()
			return
		}
	}
	i := r.pick(func(i int, m chaosMember) bool { return i != 0 && m.member && !m.busy })
	if i < 0 {
		r.mu.Unlock()
		return
	}
	r.mem[i].busy = true
	wait := time.Duration(3+r.rng.IntN(6)) * time.Second
	r.mu.Unlock()
	r.ops.Go(func() {
		defer func() {
			r.mu.Lock()
			r.mem[i].busy = false
			r.mu.Unlock()
		}()
		admin := r.ds[0].api()
		if admin == nil {
			r.op("remove", errDaemonDown)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := admin.Remove(rctx, r.gid, r.ds[i].name)
		cancel()
		r.op("remove", err)
		r.narrate("n0 removes n%d %v", i, errString(err))
		if err != nil {
			return
		}
		r.mu.Lock()
		r.mem[i].member, r.mem[i].removedAt = false, time.Now()
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if time.Now().After(end) {
			return
		}
		r.leave(ctx, i)
		if err := r.join(ctx, i, 3*time.Minute); err != nil {
			r.mu.Lock()
			r.rep.RejoinsFailed++
			r.mu.Unlock()
			r.narrate("n%d: rejoin failed: %v", i, err)
		}
	})
}

// leave has node i leave the group it was removed from, so that it can
// be invited again. It gives the daemon a few seconds to see the removal;
// a daemon that has not (cut off, or the removal not final yet) leaves
// anyway: its Join then drops the old copy.
func (r *chaosRun) leave(ctx context.Context, i int) {
	deadline := time.Now().Add(10 * time.Second)
	for ctx.Err() == nil {
		c := r.ds[i].api()
		if c == nil {
			if time.Now().After(deadline) {
				r.op("leave", errDaemonDown)
				return
			}
		} else {
			gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			gs, err := c.Groups(gctx)
			cancel()
			st := api.GroupState("")
			for _, g := range gs {
				if g.ID == r.gid {
					st = g.State
				}
			}
			if err == nil && st == "" {
				return // already gone
			}
			if err == nil && (st != api.GroupActive || time.Now().After(deadline)) {
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := c.Leave(lctx, r.gid)
				cancel()
				r.op("leave", err)
				r.narrate("n%d leaves (was %s) %v", i, st, errString(err))
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pollPeers counts reconnects: a daemon sees a peer connected that it had
// seen connected before but not at the previous poll.
func (r *chaosRun) pollPeers(ctx context.Context) {
	prev := make([]map[string]bool, len(r.ds))
	ever := make([]map[string]bool, len(r.ds))
	for i := range ever {
		ever[i] = map[string]bool{}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, d := range r.ds {
			c := d.api()
			if c == nil {
				prev[i] = nil
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ps, err := c.Peers(pctx)
			cancel()
			if err != nil {
				continue
			}
			cur := map[string]bool{}
			for _, p := range ps {
				cur[p.ID] = true
				if !prev[i][p.ID] && ever[i][p.ID] {
					r.mu.Lock()
					r.rep.Reconnects++
					r.mu.Unlock()
				}
				ever[i][p.ID] = true
			}
			prev[i] = cur
		}
	}
}

// converge waits until every current member is on one epoch id, the
// group has the expected member count and every expected message is in
// every member's log, or ConvergeTimeout after the last heal.
func (r *chaosRun) converge(ctx context.Context) {
	quiet := time.Now()
	r.mu.Lock()
	healed := r.lastHeal
	if healed.IsZero() {
		healed = quiet
	}
	early := r.healConverged
	r.mu.Unlock()
	deadline := healed.Add(r.o.ConvergeTimeout)
	for {
		why := r.check(ctx)
		if len(why) == 0 {
			r.mu.Lock()
			r.rep.Converged = true
			r.rep.QuietToConvergeS = time.Since(quiet).Seconds()
			if !early.IsZero() {
				r.rep.ConvergedDuringTraffic = true
				r.rep.TimeToConvergeS = early.Sub(healed).Seconds()
			} else {
				r.rep.TimeToConvergeS = time.Since(healed).Seconds()
			}
			r.mu.Unlock()
			r.narrate("converged %.1fs after traffic ended, %.1fs after the last heal", time.Since(quiet).Seconds(), time.Since(healed).Seconds())
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.mu.Lock()
			r.rep.NotConverged = why
			r.rep.TimeToConvergeS = time.Since(healed).Seconds()
			r.mu.Unlock()
			r.narrate("not converged after %.1fs: %v", time.Since(healed).Seconds(), why)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// check compares the members' views; it returns why they have not
// converged, and updates the report's loss and duplicate counts.
func (r *chaosRun) check(ctx context.Context) []string {
	r.mu.Lock()
	mem := slices.Clone(r.mem)
	sent := slices.Clone(r.sent)
	joins := r.joins
	r.mu.Unlock()
	var why []string
	if joins > 0 {
		why = append(why, fmt.Sprintf("%d joins in flight", joins))
	}
	for i, m := range mem {
		if m.busy {
			why = append(why, fmt.Sprintf("n%d: removal or rejoin in flight", i))
		}
	}
	var members []int
	for i, m := range mem {
		if m.member {
			members = append(members, i)
		}
	}
	epochs := map[string]string{}
	ids := map[string]bool{}
	expected, lost, lostRemoved, dups := 0, 0, 0, 0
	var sample []string
	for _, i := range members {
		d := r.ds[i]
		c := d.api()
		if c == nil {
			why = append(why, d.name+" is down")
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		gs, err := c.Groups(cctx)
		if err != nil {
			cancel()
			why = append(why, fmt.Sprintf("%s: groups: %v", d.name, err))
			continue
		}
		var g *api.Group
		for k := range gs {
			if gs[k].ID == r.gid {
				g = &gs[k]
			}
		}
		if g == nil {
			cancel()
			why = append(why, d.name+" has no group")
			continue
		}
		epochs[d.name] = fmt.Sprintf("%d:%.12s", g.Epoch, g.EpochID)
		ids[g.EpochID] = true
		if g.State != api.GroupActive {
			why = append(why, fmt.Sprintf("%s is %s", d.name, g.State))
		}
		if g.Members != len(members) {
			why = append(why, fmt.Sprintf("%s sees %d members, want %d", d.name, g.Members, len(members)))
		}
		seen := map[string]int{}
		err = c.Export(cctx, r.gid, time.Time{}, func(m api.Message) error {
			if strings.HasPrefix(m.Text, "chaos-") {
				seen[m.Text]++
			}
			return nil
		})
		cancel()
		if err != nil {
			why = append(why, fmt.Sprintf("%s: export: %v", d.name, err))
			continue
		}
		for _, n := range seen {
			dups += n - 1
		}
		for _, s := range sent {
			if !mem[i].since.Before(s.at) || s.epoch < mem[i].joinEpoch {
				continue
			}
			expected++
			if seen[s.text] == 0 {
				lost++
				if !mem[s.sender].member || mem[s.sender].removedAt.After(s.at) {
					lostRemoved++
				}
				if len(sample) < 10 {
					sample = append(sample, fmt.Sprintf("%s lacks %q (epoch %d, sent at %.1fs)", d.name, s.text, s.epoch, s.at.Sub(r.start).Seconds()))
				}
			}
		}
	}
	if len(ids) > 1 {
		why = append(why, fmt.Sprintf("members on %d epoch ids", len(ids)))
	}
	if lost > 0 {
		why = append(why, fmt.Sprintf("%d of %d expected deliveries missing", lost, expected))
	}
	r.mu.Lock()
	r.rep.Expected, r.rep.Lost, r.rep.LostSenderRemoved, r.rep.LostSample, r.rep.DuplicatesShown = expected, lost, lostRemoved, sample, dups
	r.rep.Epochs = epochs
	r.rep.Members = r.rep.Members[:0]
	for _, i := range members {
		r.rep.Members = append(r.rep.Members, r.ds[i].name)
	}
	sort.Strings(r.rep.Members)
	r.mu.Unlock()
	return why
}

// WriteSummary prints the report for a terminal.
func (r *ChaosReport) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "chaos: %d daemons, seed %d, %.0fs\n", r.Nodes, r.Seed, r.DurationS)
	fmt.Fprintf(w, "  sent %d, acknowledged %d, expected deliveries %d, lost %d (%d from removed senders), duplicates shown %d\n",
		r.Sent, r.Acknowledged, r.Expected, r.Lost, r.LostSenderRemoved, r.DuplicatesShown)
	during := "after traffic ended"
	if r.ConvergedDuringTraffic {
		during = "while traffic went on"
	}
	fmt.Fprintf(w, "  converged %v (%.1fs after the last heal, %s; %.1fs after traffic ended), reconnects %d, restarts %d, daemon crashes %d, rejoins failed %d\n",
		r.Converged, r.TimeToConvergeS, during, r.QuietToConvergeS, r.Reconnects, r.Restarts, len(r.DaemonCrashes), r.RejoinsFailed)
	kinds := make([]string, 0, len(r.FaultsApplied))
	for k, n := range r.FaultsApplied {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "  faults applied: %s\n", strings.Join(kinds, " "))
	for k, why := range r.FaultsSkipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", k, why)
	}
	for _, s := range r.NotConverged {
		fmt.Fprintf(w, "  not converged: %s\n", s)
	}
	fmt.Fprintf(w, "  cleanup ok %v\n", r.CleanupOK)
}

// chaosCmd is `grove testnet run --scenario chaos --netns ...`: the
// daemons are this executable's `grove up`.
func chaosCmd(ctx context.Context, o ChaosOptions, asJSON bool, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("testnet: chaos: own executable: %w", err)
	}
	o.Grove = []string{exe}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	rep, err := RunChaos(ctx, o)
	if rep == nil {
		return err
	}
	if asJSON {
		if jerr := json.NewEncoder(stdout).Encode(rep); jerr != nil && err == nil {
			err = fmt.Errorf("testnet: write report: %w", jerr)
		}
	} else {
		rep.WriteSummary(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed() {
		return fmt.Errorf("%w: %d of %d acknowledged deliveries lost, converged %v", ErrRunFailed, rep.Lost, rep.Expected, rep.Converged)
	}
	return nil
}
