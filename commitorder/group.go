// The Group: its state, the constructor, and Step, which dispatches each
// event to the file of the rule it feeds and then settles.
//
// settle applies the rules in a fixed order after every event: the fork
// choice (forkchoice.go) moves the head if the canonical tip changed,
// finality (finality.go) advances the root, repeating both until they
// agree (a new root changes whose claims count); then the outbox is swept
// (outbox.go), fetches are retried (catchup.go), our commit is proposed
// when due (avoidance.go), and a lost final chain is detected (rejoin.go).

package commitorder

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// node is one known epoch: a retained state of the group.
type node struct {
	eid       EpochID
	parent    EpochID // zero for the genesis root
	epoch     uint64
	cid       CommitID // commit that created it (zero for a bare genesis)
	class     Class
	committer MemberID
	rank      Rank
	members   []MemberID // sorted, unique
	admins    []MemberID // sorted, unique
	mlsValid  bool
	// limited: the commit is over its committer's rate limit on its parent
	// (validity.go); derived from the parent's recent, not serialised.
	limited bool
	// recent lists the committers of the last RateWindow commits up to and
	// including this one: the rate limit is read from the chain itself.
	recent []MemberID
	seenAt int64 // unix nanoseconds at which the commit was first seen

	own     bool
	intents []IntentID
	welcome bool

	// Derived, not serialised.
	up         *node
	children   []*node
	canonical  bool
	claimStamp uint64
	claimCount int
	claimQ     int // quorum of the smallest epoch claimed below
}

func (n *node) key() tuple { return tuple{n.limited, n.class, n.rank, n.cid} }

// histEntry remembers a final epoch and the commit that won on it, so a
// sibling that arrives beyond the window can be judged.
type histEntry struct {
	eid   EpochID
	epoch uint64
	child tuple
}

// Group is the commit-ordering state machine of one MLS group on one member.
// It is not safe for concurrent use: one owner (the group's actor) calls it.
type Group struct {
	cfg  Config
	self MemberID
	now  int64

	nodes map[EpochID]*node
	root  *node // newest final canonical epoch
	head  *node // tip of the canonical chain: the state the node is on

	// acts records evidence that a member acted on an epoch (sent, tipped
	// or committed on it): witnesses for finality and equivocation proofs.
	// Epoch ids may be unknown to us (tips from members ahead).
	acts map[MemberID]map[EpochID]uint64
	// proofs is the part of that evidence that every member can obtain
	// from the replicated log (commits and application messages, never
	// tips), so validity computed from it is the same everywhere.
	proofs map[MemberID]map[EpochID]uint64

	// claims holds each member's latest claimed final epoch (from tips):
	// a branch that others hold final wins over one we have not finalised.
	claims map[MemberID]claim

	// hints: epochs of messages we could not decrypt (CiphertextPending)
	// and have not read a message in since; unauthenticated, they hold
	// witness and depth finality back (finality.go). Not serialised.
	hints map[EpochID]uint64

	held    map[CommitID]*heldCommit
	history []histEntry // oldest first
	outbox  map[MsgID]*outEntry
	queue   []queuedIntent
	prop    *proposal

	// witnessedAt is when every member of the root was first seen on a
	// descendant; witness finality waits Grace after it so messages sent
	// just before those acts can still arrive.
	witnessedAt int64
	headSince   int64 // when the head last changed
	// behindSince: when we last started catching up (a member acted on an
	// epoch we do not hold at or past our head's number); zero when not
	// behind. Time offline is no time "without progress": a member back
	// after a long absence has not yet had a chance to fetch.
	behindSince int64
	lastRange   int64
	lost        bool   // a sibling that beat our final branch was seen
	lostEpoch   uint64 // epoch of that sibling's parent
	// wonAt: when a sibling of our final branch was last seen that ours
	// beats (the others should rejoin us; we wait MaxAge for them).
	// diverged: a commit on an epoch at or below our root that is not on
	// our chain was seen (another final chain exists, fork unseen).
	wonAt    int64
	diverged bool
	// foreignAt: when case (B) of the rejoin rule (a quorum holds another
	// chain final, no fork seen) was first found to hold; zero when it
	// does not. Case (B) waits foreignWait after it (rejoin.go).
	foreignAt int64
	done      bool
	// fresh: we joined (by Welcome or external commit: the genesis names
	// its commit) and the root is still that genesis (nothing finalised
	// since). Version 1 state decodes as not fresh.
	fresh bool

	claimStamp uint64

	// mut counts changes to what behind and heldElsewhere read (evidence,
	// claims, the tree, the head and the root), so settle reuses their
	// results across events that changed none of it (most heartbeats).
	// Derived, not serialised; caches are valid only when their stamp
	// equals mut, and mut starts at 1.
	mut       uint64
	bmut      uint64 // like mut, for behind: acts, the tree and the head
	behindMut uint64
	behindVal bool
	// unknownMin: lowest epoch number of an act on an unknown epoch
	// (unknownOK: there is one); cached with behindVal.
	unknownMin uint64
	unknownOK  bool
	heldMut    uint64
	heldVal    map[*node]*node
	// witnessMut: noteWitnesses found the root not fully witnessed at
	// this stamp.
	witnessMut uint64
	witnessLag MemberID // last member found not witnessing (a hint)
	// histSet indexes history by epoch id; rebuilt when histKey changes.
	histSet map[EpochID]struct{}
	histKey histEntry
	histLen int
	// tipMut, sweepMut: the canonical chain and the outbox sweep are up
	// to date at this stamp (neither depends on time).
	tipMut   uint64
	sweepMut uint64
	// ffqMut, ffqMax: foreignFinalQuorum's time-free upper bound.
	ffqMut uint64
	ffqMax int
	// lostKey: the inputs checkLost last found nothing to do with.
	lostKey   lostKey
	lostKeyOK bool

	delayEid EpochID
	delay    time.Duration
	delayOK  bool

	out []Effect
}

// New starts the state machine of a group on genesis (creation, Welcome or
// rejoin). now is the current time.
func New(cfg Config, self MemberID, gen Genesis, now time.Time) (*Group, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self == "" {
		return nil, fmt.Errorf("%w: empty self identity", ErrInvalidEvent)
	}
	members, ok := canonicalSet(gen.Members)
	if !ok || len(members) == 0 {
		return nil, fmt.Errorf("%w: genesis members", ErrInvalidEvent)
	}
	admins, ok := canonicalSet(gen.Admins)
	if !ok {
		return nil, fmt.Errorf("%w: genesis admins", ErrInvalidEvent)
	}
	g := newEmpty(cfg, self)
	g.now = now.UnixNano()
	root := &node{eid: gen.Eid, epoch: gen.Epoch, members: members, admins: admins, mlsValid: true, seenAt: g.now}
	if gen.HasCommit {
		if gen.Epoch == 0 || !gen.Class.valid() || (gen.External && gen.Committer == "") {
			return nil, fmt.Errorf("%w: genesis commit", ErrInvalidEvent)
		}
		root.parent, root.cid, root.class, root.committer = gen.Parent, gen.Cid, gen.Class, gen.Committer
		root.rank = RankOf(gen.Parent, gen.Committer)
		if gen.External {
			root.recent = []MemberID{gen.Committer}
		}
		g.history = append(g.history, histEntry{eid: gen.Parent, epoch: gen.Epoch - 1, child: root.key()})
	}
	g.nodes[root.eid] = root
	g.root, g.head = root, root
	g.headSince = g.now
	g.fresh = gen.HasCommit
	root.canonical = true
	return g, nil
}

func newEmpty(cfg Config, self MemberID) *Group {
	return &Group{
		mut:    1,
		bmut:   1,
		cfg:    cfg,
		self:   self,
		nodes:  make(map[EpochID]*node),
		acts:   make(map[MemberID]map[EpochID]uint64),
		proofs: make(map[MemberID]map[EpochID]uint64),
		held:   make(map[CommitID]*heldCommit),
		claims: make(map[MemberID]claim),
		outbox: make(map[MsgID]*outEntry),
	}
}

// Head is the canonical epoch the node should be on.
func (g *Group) Head() (EpochID, uint64) { return g.head.eid, g.head.epoch }

// Root is the newest final epoch.
func (g *Group) Root() (EpochID, uint64) { return g.root.eid, g.root.epoch }

// Known reports whether the state of eid is retained.
func (g *Group) Known(eid EpochID) bool { _, ok := g.nodes[eid]; return ok }

// Retained lists the epochs whose states must be kept, sorted.
func (g *Group) Retained() []EpochID {
	out := make([]EpochID, 0, len(g.nodes))
	for e := range g.nodes {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Members of the canonical head.
func (g *Group) Members() []MemberID { return slices.Clone(g.head.members) }

// Done reports whether Rejoin or Removed was emitted.
func (g *Group) Done() bool { return g.done }

// Step feeds one event and returns the effects, in the order the node must
// carry them out. On error the state is unchanged.
func (g *Group) Step(ev Event) ([]Effect, error) {
	if g.done {
		return nil, ErrDone
	}
	g.out = g.out[:0]
	var err error
	switch e := ev.(type) {
	case CommitSeen:
		err = g.commitSeen(e)
	case *CommitSeen:
		err = g.commitSeen(*e)
	case ParentMissing:
		err = g.parentMissing(e)
	case AppMessageSeen:
		if err = g.actEvent(e.Sender, e.Eid, e.Epoch); err == nil {
			g.recordProof(e.Sender, e.Eid, e.Epoch)
			g.messageRead(e.Eid)
		}
	case TipSeen:
		err = g.tipSeen(e)
	case CiphertextPending:
		g.ciphertextPending(e)
	case Tick:
		if n := e.Now.UnixNano(); n > g.now {
			old := g.now
			g.now = n
			if g.abandonDue(old, n) {
				g.mut++ // abandoned may now move the chain
			}
		}
	case IntentQueued:
		if !e.Class.valid() {
			return nil, fmt.Errorf("%w: intent class %d", ErrInvalidEvent, e.Class)
		}
		g.queue = append(g.queue, queuedIntent{e.ID, e.Class})
	case OutboxAdded:
		err = g.outboxAdded(e)
	default:
		return nil, fmt.Errorf("%w: unknown event %T", ErrInvalidEvent, ev)
	}
	if err != nil {
		return nil, err
	}
	g.settle()
	out := slices.Clone(g.out)
	g.out = g.out[:0]
	return out, nil
}

func (g *Group) emit(e Effect) { g.out = append(g.out, e) }

func (g *Group) commitSeen(e CommitSeen) error {
	p := g.nodes[e.Parent]
	if p == nil {
		return g.parentMissing(ParentMissing{Parent: e.Parent, ParentEpoch: e.Epoch - 1, Cid: e.Cid, Class: e.Class, Committer: e.Committer})
	}
	if old := g.nodes[e.Eid]; old != nil {
		if old.cid == e.Cid && old.parent == e.Parent {
			return nil // duplicate delivery
		}
		return fmt.Errorf("%w: epoch id %v reused", ErrInvalidEvent, e.Eid)
	}
	if e.Epoch != p.epoch+1 || !e.Class.valid() || e.Committer == "" || e.Eid == e.Parent {
		return fmt.Errorf("%w: commit %v on %v", ErrInvalidEvent, e.Cid, e.Parent)
	}
	for _, c := range p.children {
		if c.cid == e.Cid {
			return fmt.Errorf("%w: commit %v seen with two epoch ids", ErrInvalidEvent, e.Cid)
		}
	}
	members, ok := canonicalSet(e.Members)
	if !ok || (e.Valid && len(members) == 0) {
		return fmt.Errorf("%w: members of %v", ErrInvalidEvent, e.Eid)
	}
	admins, ok := canonicalSet(e.Admins)
	if !ok {
		return fmt.Errorf("%w: admins of %v", ErrInvalidEvent, e.Eid)
	}
	n := &node{
		eid: e.Eid, parent: e.Parent, epoch: e.Epoch, cid: e.Cid, class: e.Class,
		committer: e.Committer, rank: RankOf(e.Parent, e.Committer),
		members: members, admins: admins, mlsValid: e.Valid, seenAt: g.now,
		own: e.Own, welcome: e.Own && e.Welcome,
	}
	if e.Own {
		n.intents = slices.Clone(e.Intents)
		g.queue = slices.DeleteFunc(g.queue, func(q queuedIntent) bool { return slices.Contains(n.intents, q.id) })
		if g.prop != nil && g.prop.parent == e.Parent {
			g.prop = nil
		}
	}
	switch {
	case e.External:
		// A rejoin: the rejoiner's window starts here (Genesis.External).
		n.recent = []MemberID{e.Committer}
	case !addsMember(p.members, members):
		n.recent = appendRecent(p.recent, e.Committer, g.cfg.RateWindow)
	}
	n.limited = g.overLimit(p, e.Committer, e.Class)
	n.up = p
	p.children = append(p.children, n)
	g.nodes[n.eid] = n
	g.mut++
	g.bmut++
	if e.Valid {
		// Only authenticated commits are evidence: a forged one must not
		// make its claimed author look like an equivocator.
		g.recordAct(e.Committer, p.eid, p.epoch)
		g.recordProof(e.Committer, p.eid, p.epoch)
	}
	g.releaseHeld(n.eid)
	return nil
}

// addsMember reports whether child names a member parent lacks. The rate
// limit's window restarts (empty) at such an epoch: the member it adds is
// welcomed into it knowing no commit before it (its genesis has no
// recent), and the limited bit must be read from commits every member
// holds, or a founder and a joiner pick different siblings of one parent
// and both finalise theirs (testnet concurrent, 12 nodes, seeds 1 and 5).
func addsMember(parent, child []MemberID) bool {
	for _, m := range child {
		if !contains(parent, m) {
			return true
		}
	}
	return false
}

func appendRecent(prev []MemberID, m MemberID, window int) []MemberID {
	out := make([]MemberID, 0, min(len(prev)+1, window))
	if len(prev)+1 > window {
		prev = prev[len(prev)+1-window:]
	}
	out = append(out, prev...)
	return append(out, m)
}

// ---- the decision procedure ----

// settle recomputes the canonical chain, switches branch if needed,
// advances finality and proposes our commit when due.
func (g *Group) settle() {
	// Finalising moves the root, which changes whose claims count; so
	// recompute until the chain and the root agree.
	for {
		if g.tipMut != g.mut {
			g.switchTo(g.canonicalTip())
			g.tipMut = g.mut
		}
		g.noteWitnesses()
		root := g.root
		g.advanceFinality()
		if g.done {
			return
		}
		if g.root == root {
			break
		}
	}
	if g.sweepMut != g.mut {
		g.sweepOutbox()
		g.sweepMut = g.mut
	}
	g.retryFetches()
	if b := g.behind(); b && g.behindSince == 0 {
		g.behindSince = max(g.now, 1)
	} else if !b {
		g.behindSince = 0
	}
	g.maybePropose()
	g.checkLost()
}

// NextDeadline is the earliest time at which a Tick could change anything,
// or the zero time if none is pending. Drivers use it to arm a timer.
func (g *Group) NextDeadline() time.Time {
	best := int64(0)
	consider := func(t int64) {
		if t > g.now && (best == 0 || t < best) {
			best = t
		}
	}
	for _, c := range g.root.children {
		if c.canonical {
			consider(c.seenAt + int64(g.cfg.Grace))
			consider(c.seenAt + int64(g.cfg.MaxAge))
		}
	}
	if len(g.queue) > 0 && g.prop == nil {
		consider(g.proposeAt())
		if g.fresh {
			consider(g.root.seenAt + int64(g.cfg.Grace))
		}
	}
	if g.prop != nil {
		consider(g.prop.at + int64(g.cfg.Retry))
	}
	for _, h := range g.held {
		consider(h.askedAt + int64(g.cfg.Retry))
	}
	if g.witnessedAt != 0 {
		// Witness finality waits Grace after the last witness.
		consider(g.witnessedAt + int64(g.cfg.Grace))
	}
	if g.lastRange != 0 && g.behind() {
		consider(g.lastRange + int64(g.cfg.Retry))
	}
	if g.lost || g.diverged || (g.ffqMut == g.mut && g.ffqMax >= claimQuorum(len(g.head.members))) {
		// checkLost's clocks: waiting for losers to rejoin us ends, no
		// progress for MaxAge, support going stale.
		if g.wonAt != 0 {
			consider(g.wonAt + int64(g.cfg.MaxAge) + 1)
		}
		consider(g.progressAt() + int64(g.cfg.MaxAge) + 1)
		for _, cl := range g.claims {
			consider(cl.at + int64(g.cfg.MaxAge) + 1)
		}
	}
	if g.foreignAt != 0 {
		consider(g.foreignAt + int64(g.foreignWait()))
	}
	if best == 0 {
		return time.Time{}
	}
	return time.Unix(0, best)
}

// ---- small helpers ----

// canonicalSet sorts and checks for duplicates and empty identities.
func canonicalSet(in []MemberID) ([]MemberID, bool) {
	out := slices.Clone(in)
	slices.Sort(out)
	for i, m := range out {
		if m == "" || (i > 0 && out[i-1] == m) {
			return nil, false
		}
	}
	return out, true
}

func contains(sorted []MemberID, m MemberID) bool {
	_, ok := slices.BinarySearch(sorted, m)
	return ok
}

// subset reports whether every element of a is in b (both sorted).
func subset(a, b []MemberID) bool {
	for _, m := range a {
		if !contains(b, m) {
			return false
		}
	}
	return true
}

func countOf(s []MemberID, m MemberID) int {
	n := 0
	for _, x := range s {
		if x == m {
			n++
		}
	}
	return n
}

func sortCids(c []CommitID) {
	slices.SortFunc(c, func(a, b CommitID) int { return bytes.Compare(a[:], b[:]) })
}

func sortMsgIDs(c []MsgID) {
	slices.SortFunc(c, func(a, b MsgID) int { return bytes.Compare(a[:], b[:]) })
}
