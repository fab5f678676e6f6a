package commitorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The explorer drives real Groups (this package's code, not a model of it)
// through every interleaving of a small bounded scenario and checks the
// package's guarantees in every state reached. Unlike the simulator, which
// samples schedules from seeds, it enumerates them: a depth-first search
// over distinct world states, where a world is every member's serialised
// Group (MarshalBinary, plus the unserialised ciphertext hints), its last
// durable snapshot, the commits it logged, the application messages it
// sent, the multiset of messages in flight and the fault budget left.
//
// Transitions: deliver any message in flight (any order), duplicate one
// (deliver, keep a copy in flight), drop one (lost; anti-entropy must
// recover it), a member's heartbeat heard by another (tips are instantaneous
// gossip: a delayed tip is outside the explored bounds), answering a fetch
// (a member that emitted FetchParent/FetchRange is sent the log of a peer),
// a member queues its intent (a commit follows by its own rules), sends an
// application message, time advances one step for everyone, one partition
// and its heal, one crash (the member restarts from its last durable
// MarshalBinary snapshot; what it received since is lost), one member goes
// away (receives and ticks nothing) and comes back.
//
// Checks, in every state: the package invariants of every Group
// (checkInvariants: nothing retained longer than finality allows, outbox
// entries in retained epochs, structure); members that hold the same commits
// and the same replicated evidence choose the same child wherever they hold
// the same siblings; members agree on every epoch both finalised (unless a
// partition or absence happened, where a loser beyond the window rejoins);
// no SendWelcome before its parent is final and its commit canonical at the
// sender. From every state, a fair suffix (a partition or absence in place
// lasts beyond the window first, then heal, everyone back, deliver
// everything, answer fetches, exchange tips, rejoin who must, advance time)
// must converge within xSuffixRounds steps of time: one head, nothing but
// it retained, no intent pending, every sent message on the canonical
// chain or handed back to its sender. With -explore.spam the first member
// queues a new intent at every opportunity, and the second one's removal
// of it must still land.

var (
	exMembers  = flag.Int("explore.members", 3, "explorer: group size (3 or 4)")
	exCommits  = flag.Int("explore.commits", 2, "explorer: members with one intent each (concurrent commits)")
	exMsgs     = flag.Int("explore.msgs", 1, "explorer: members that send one application message")
	exTicks    = flag.Int("explore.ticks", 3, "explorer: time steps in the explored prefix")
	exDepth    = flag.Int("explore.depth", 5, "explorer: transitions in the explored prefix")
	exFaults   = flag.String("explore.faults", "dup,drop,crash,partition,away", "explorer: faults available (each at most once)")
	exRemove   = flag.Bool("explore.remove", true, "explorer: the first member's intent removes the last member")
	exAdd      = flag.Bool("explore.add", true, "explorer: the second member's intent adds a member from outside the group (its Welcome must wait for finality)")
	exSpam     = flag.Bool("explore.spam", false, "explorer: the first member commits at every opportunity, the second removes it")
	exWriteDir = flag.String("explore.write", "", "explorer: write a counterexample transcript into this directory")
)

// xCfg scales time to one explorer step (1 s): Grace one step, MaxAge four,
// Depth two epochs, so depth, age and witness finality are all reachable
// within a few steps. Delta, Retry, HardDepth and History keep their
// defaults so transcripts replay with the interpreter's config arguments.
var xCfg = Config{Depth: 2, MaxAge: 4 * time.Second, Grace: time.Second, RateLimit: 2, RateWindow: 3}

const (
	xStep         = time.Second
	xSuffixRounds = 24
)

// xNames: up to four members and one outsider to add.
var xNames = []MemberID{"a", "b", "c", "d", "e"}

type xKind uint8

const (
	xCommit xKind = iota
	xApp
)

// xMsg is a message in flight (or an application message waiting for its
// epoch at the receiver).
type xMsg struct {
	to, from int8
	kind     xKind
	cid      CommitID
	eid      EpochID
	epoch    uint64
	app      MsgID
}

func (m xMsg) less(o xMsg) int {
	return bytes.Compare(m.bytes(), o.bytes())
}

func (m xMsg) bytes() []byte {
	b := []byte{byte(m.to), byte(m.from), byte(m.kind)}
	b = append(b, m.cid[:]...)
	b = append(b, m.eid[:]...)
	b = binary.BigEndian.AppendUint64(b, m.epoch)
	return append(b, m.app[:]...)
}

type xSent struct {
	id       MsgID
	copies   []EpochID
	surfaced bool
}

type xMem struct {
	g        []byte // serialised Group of the current incarnation
	hints    []xMsg // CiphertextPending hints (not serialised by the Group)
	snap     []byte // last durable snapshot
	snapHead EpochID
	log      []CommitID // commits this node stored, sorted
	pending  []xMsg     // application messages waiting for their epoch
	sent     []xSent
	fetch    bool // a fetch is outstanding
	online   bool
	rejoin   bool // Rejoin emitted, not yet rejoined
	removed  bool // Removed emitted
	done     bool
	inc      int  // incarnation
	old      bool // some earlier incarnation ended in Rejoin
	intents  int  // intents still to queue
	msgs     int  // messages still to send
	seq      int  // intents queued so far
	sentN    int  // messages sent so far
}

type xWorld struct {
	mem    []xMem
	flight []xMsg // sorted multiset
	now    int    // steps of time
	ticks  int    // time steps left in the prefix
	faults map[string]int
	side   uint8 // bit i: member i on side 1; zero: no partition
	away   int8  // member away, -1 none
	upset  bool  // a partition or absence happened
}

func (w *xWorld) clone() *xWorld {
	c := *w
	c.mem = slices.Clone(w.mem)
	c.flight = slices.Clone(w.flight)
	c.faults = maps.Clone(w.faults)
	return &c
}

// key identifies the world: dedup is by this serialised form.
func (w *xWorld) key() [32]byte {
	h := sha256.New()
	var b []byte
	for _, m := range w.mem {
		b = binary.AppendUvarint(b[:0], uint64(len(m.g)))
		h.Write(b)
		h.Write(m.g)
		for _, x := range m.hints {
			h.Write(x.bytes())
		}
		h.Write([]byte{0xff})
		h.Write(m.snap)
		for _, c := range m.log {
			h.Write(c[:])
		}
		h.Write([]byte{0xfe})
		for _, x := range m.pending {
			h.Write(x.bytes())
		}
		for _, s := range m.sent {
			h.Write(s.id[:])
			for _, e := range s.copies {
				h.Write(e[:])
			}
			h.Write([]byte{boolByte(s.surfaced)})
		}
		h.Write([]byte{boolByte(m.fetch), boolByte(m.online), boolByte(m.rejoin), boolByte(m.removed), boolByte(m.done), byte(m.inc), boolByte(m.old), byte(m.intents), byte(m.msgs), byte(m.seq), byte(m.sentN)})
	}
	for _, x := range w.flight {
		h.Write(x.bytes())
	}
	h.Write([]byte{byte(w.now), byte(w.ticks), w.side, byte(w.away), boolByte(w.upset)})
	for _, k := range slices.Sorted(maps.Keys(w.faults)) {
		h.Write([]byte(k))
		h.Write([]byte{byte(w.faults[k])})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

type xFail struct{ msg string }

// explorer holds what is path independent: commits and intents are named by
// their content (a commit's id derives from parent, committer, class,
// members and the intents it carries), so equal worlds are equal however
// they were reached.
type explorer struct {
	t       testing.TB
	cfg     Config
	n       int
	commits map[CommitID]CommitSeen
	byEid   map[EpochID]CommitSeen
	intents map[IntentID]intentRec
	spam    bool
	add     bool
	gen     Genesis
	rec     *xRecorder // non-nil while replaying a counterexample

	visited            map[[32]byte]*xVisit
	peeked             map[string]*Group
	sfxDone            map[[32]byte]int // converged suffix worlds: rounds needed
	sfxHit             int
	seen               map[string]int // effects of interest, counted (prefix and suffixes)
	states, edges, sfx int
	slept              int
	maxDepth           int
}

type xVisit struct {
	rem   int
	sleep map[string]bool
}

func (x *explorer) fail(format string, a ...any) {
	panic(xFail{fmt.Sprintf(format, a...)})
}

func (x *explorer) load(w *xWorld, i int) *Group {
	m := &w.mem[i]
	g, err := Unmarshal(x.cfg, m.g)
	if err != nil {
		x.fail("%s: decode: %v", xNames[i], err)
	}
	for _, h := range m.hints {
		if g.hints == nil {
			g.hints = map[EpochID]uint64{}
		}
		g.hints[h.eid] = h.epoch
	}
	return g
}

// peek is load for reading only: decoded Groups are cached by their bytes
// (decoding dominates the explorer's time); callers must not Step them.
func (x *explorer) peek(w *xWorld, i int) *Group {
	m := &w.mem[i]
	k := string(m.g)
	for _, h := range m.hints {
		k += string(h.bytes())
	}
	if g, ok := x.peeked[k]; ok {
		return g
	}
	if len(x.peeked) > 1<<14 {
		clear(x.peeked)
	}
	g := x.load(w, i)
	x.peeked[k] = g
	return g
}

func (x *explorer) store(w *xWorld, i int, g *Group) {
	b, err := g.MarshalBinary()
	if err != nil {
		x.fail("%s: encode: %v", xNames[i], err)
	}
	m := &w.mem[i]
	m.g = b
	m.hints = m.hints[:0:0]
	for e, ep := range g.hints {
		m.hints = append(m.hints, xMsg{eid: e, epoch: ep})
	}
	slices.SortFunc(m.hints, xMsg.less)
	m.done = g.Done()
}

func (x *explorer) sync(w *xWorld, i int, g *Group) {
	b, err := g.MarshalBinary()
	if err != nil {
		x.fail("%s: encode: %v", xNames[i], err)
	}
	w.mem[i].snap = b
	w.mem[i].snapHead = g.head.eid
	if x.rec != nil {
		x.rec.snapshot(i)
	}
}

func (w *xWorld) send(m xMsg) {
	i, _ := slices.BinarySearchFunc(w.flight, m, xMsg.less)
	w.flight = slices.Insert(w.flight, i, m)
}

func (w *xWorld) broadcast(from int, m xMsg) {
	for i := range w.mem {
		if i != from {
			m.to, m.from = int8(i), int8(from)
			w.send(m)
		}
	}
}

func (w *xWorld) logCommit(i int, cid CommitID) {
	l := w.mem[i].log
	if j, ok := slices.BinarySearchFunc(l, cid, func(a, b CommitID) int { return bytes.Compare(a[:], b[:]) }); !ok {
		w.mem[i].log = slices.Insert(slices.Clone(l), j, cid)
	}
}

// step feeds one event to member i's Group g and carries out the effects
// as a node would (mirroring the simulator's stepNode and effect).
func (x *explorer) step(w *xWorld, i int, g *Group, ev Event) {
	if g.Done() {
		return
	}
	if x.rec != nil {
		x.rec.event(i, ev)
	}
	eff, err := g.Step(ev)
	if err != nil {
		x.fail("%s: step %T %+v: %v", xNames[i], ev, ev, err)
	}
	if err := g.checkInvariants(); err != nil {
		x.fail("%s: after %T: %v", xNames[i], ev, err)
	}
	durable := false
	switch e := ev.(type) {
	case OutboxAdded, IntentQueued:
		durable = true
	case CommitSeen:
		durable = e.Own
	}
	var retry []CommitID
	var resend []Resend
	m := &w.mem[i]
	for _, e := range eff {
		switch e := e.(type) {
		case RollbackTo, Apply, Orphaned:
		case FinaliseEpoch, DropBranch, OutboxDone, CommitSettled, CommitDiscarded:
			durable = true
		case Resend:
			resend = append(resend, e)
			durable = true
		case Surface:
			for _, id := range e.IDs {
				x.surface(w, i, id)
			}
			durable = true
		case SendWelcome:
			c, ok := x.commits[e.Cid]
			if !ok {
				x.fail("%s: welcome for unknown commit", xNames[i])
			}
			if g.Known(c.Parent) || !g.inHistory(c.Parent) {
				x.fail("%s: SendWelcome for %v before its parent %v is final", xNames[i], e.Cid, c.Parent)
			}
			// The check runs after the whole step, which may have
			// finalised the commit's epoch too (it is then in History).
			if n := g.nodes[c.Eid]; g.root.eid != c.Eid && !g.inHistory(c.Eid) && (n == nil || !n.canonical) {
				x.fail("%s: SendWelcome for %v, not canonical", xNames[i], e.Cid)
			}
			x.seen["SendWelcome"]++
			durable = true
		case ProposeCommit:
			x.propose(w, i, g, e)
			durable = true
		case FetchParent, FetchRange:
			m.fetch = true
		case Retry:
			retry = append(retry, e.Cids...)
		case Rejoin:
			for _, id := range e.Outbox {
				x.surface(w, i, id)
			}
			// The node reconciles what it sent against the rejoined
			// group's log (re-sends or surfaces): handed back.
			for j := range m.sent {
				x.surface(w, i, m.sent[j].id)
			}
			m.rejoin, m.old = true, true
			x.seen["Rejoin"]++
		case Removed:
			for _, id := range e.Outbox {
				x.surface(w, i, id)
			}
			m.removed = true
			x.seen["Removed"]++
		default:
			x.fail("unexpected effect %T", e)
		}
	}
	if durable && !g.Done() {
		x.sync(w, i, g)
	}
	for _, r := range resend {
		for _, id := range r.IDs {
			x.sendApp(w, i, g, id, r.To)
		}
	}
	for _, cid := range retry {
		x.feed(w, i, g, cid)
	}
}

func (x *explorer) surface(w *xWorld, i int, id MsgID) {
	m := &w.mem[i]
	m.sent = slices.Clone(m.sent)
	for j := range m.sent {
		if m.sent[j].id == id {
			m.sent[j].surfaced = true
		}
	}
}

// feed processes a commit at member i as the node would: MLS refuses a
// commit on an epoch the member is not in; an unknown parent is reported.
func (x *explorer) feed(w *xWorld, i int, g *Group, cid CommitID) {
	if g.Done() {
		return
	}
	c := x.commits[cid]
	w.logCommit(i, cid)
	self := xNames[i]
	if p := g.nodes[c.Parent]; p != nil {
		if !contains(p.members, self) || g.Known(c.Eid) {
			return
		}
		ev := c
		ev.Own, ev.Intents, ev.Welcome = false, nil, false
		if c.Committer == self {
			ev = c // our own commit coming back (a crash lost it)
		}
		x.step(w, i, g, ev)
		if g.Known(c.Eid) {
			x.flushPending(w, i, g, c.Eid)
		}
		return
	}
	if g.inHistory(c.Parent) || g.Known(c.Eid) {
		// Parent final here: a late sibling, nothing to process it on.
		x.step(w, i, g, ParentMissing{Parent: c.Parent, ParentEpoch: c.Epoch - 1, Cid: c.Cid, Class: c.Class, Committer: c.Committer})
		return
	}
	x.step(w, i, g, ParentMissing{Parent: c.Parent, ParentEpoch: c.Epoch - 1, Cid: c.Cid, Class: c.Class, Committer: c.Committer})
}

func (x *explorer) flushPending(w *xWorld, i int, g *Group, eid EpochID) {
	m := &w.mem[i]
	var keep, now []xMsg
	for _, p := range m.pending {
		if p.eid == eid {
			now = append(now, p)
		} else {
			keep = append(keep, p)
		}
	}
	if len(now) == 0 {
		return
	}
	m.pending = keep
	for _, p := range now {
		x.receiveApp(w, i, g, p)
	}
}

func (x *explorer) receiveApp(w *xWorld, i int, g *Group, msg xMsg) {
	if g.Done() {
		return
	}
	if n := g.nodes[msg.eid]; n != nil {
		if contains(n.members, xNames[i]) {
			x.step(w, i, g, AppMessageSeen{Eid: msg.eid, Epoch: msg.epoch, Sender: xNames[msg.from]})
		}
		return
	}
	if msg.epoch <= g.root.epoch {
		return // its epoch is final here or never held: too late
	}
	m := &w.mem[i]
	first := true
	for _, p := range m.pending {
		first = first && p.eid != msg.eid
	}
	m.pending = append(slices.Clone(m.pending), msg)
	slices.SortFunc(m.pending, xMsg.less)
	if first {
		x.step(w, i, g, CiphertextPending{Eid: msg.eid, Epoch: msg.epoch})
	}
}

func (x *explorer) propose(w *xWorld, i int, g *Group, p ProposeCommit) {
	par := g.nodes[p.Parent]
	self := xNames[i]
	members := slices.Clone(par.members)
	class := ClassUpdate
	welcome := false
	for _, id := range p.Intents {
		in := x.intents[id]
		if in.class == ClassRemove && contains(members, in.target) && in.target != self {
			members = slices.DeleteFunc(members, func(m MemberID) bool { return m == in.target })
			class = ClassRemove
		}
		if in.class == ClassAdd && !contains(members, in.target) {
			members, _ = canonicalSet(append(members, in.target))
			class, welcome = min(class, ClassAdd), true
		}
	}
	salt := uint64(0)
	for _, id := range p.Intents {
		salt = salt<<8 | uint64(id[0])
	}
	c := mkCommit(p.Parent, par.epoch+1, self, class, members, salt)
	c.Own, c.Intents, c.Welcome = true, slices.Clone(p.Intents), welcome
	x.register(c)
	w.logCommit(i, c.Cid)
	x.step(w, i, g, c)
	w.broadcast(i, xMsg{kind: xCommit, cid: c.Cid})
}

func (x *explorer) register(c CommitSeen) {
	if _, ok := x.commits[c.Cid]; !ok {
		x.commits[c.Cid] = c
		x.byEid[c.Eid] = c
		if x.rec != nil {
			x.rec.commit(c)
		}
	}
}

func (x *explorer) sendApp(w *xWorld, i int, g *Group, id MsgID, eid EpochID) {
	m := &w.mem[i]
	m.sent = slices.Clone(m.sent)
	found := false
	for j := range m.sent {
		if m.sent[j].id == id {
			m.sent[j].copies = append(slices.Clone(m.sent[j].copies), eid)
			found = true
		}
	}
	if !found {
		m.sent = append(m.sent, xSent{id: id, copies: []EpochID{eid}})
	}
	ep := g.nodes[eid].epoch
	x.step(w, i, g, OutboxAdded{ID: id, Eid: eid})
	w.broadcast(i, xMsg{kind: xApp, eid: eid, epoch: ep, app: id})
}

func (x *explorer) intentOf(i, seq int) (IntentID, intentRec) {
	id := IntentID{byte(16*(i+1) + seq)}
	in := intentRec{class: ClassUpdate}
	if (*exRemove && i == 0 && seq == 0 && !x.spam) || (x.spam && i == 1) {
		target := xNames[x.n-1]
		if x.spam {
			target = xNames[0]
		}
		in = intentRec{class: ClassRemove, target: target}
	}
	if x.add && i == 1 && seq == 0 && !x.spam && x.n < len(xNames) {
		in = intentRec{class: ClassAdd, target: xNames[x.n]}
	}
	x.intents[id] = in
	return id, in
}

// ---- transitions ----

type xTrans struct {
	label string
	// touches: the members whose state the transition reads or writes;
	// nil means all (a global transition). See independent.
	touches []int
	apply   func(w *xWorld)
}

func (w *xWorld) active(i int) bool {
	m := &w.mem[i]
	return m.g != nil && !m.done && !m.rejoin
}

func (w *xWorld) connected(a, b int) bool {
	if w.side != 0 && (w.side>>a)&1 != (w.side>>b)&1 {
		return false
	}
	return w.mem[a].online && w.mem[b].online
}

func (x *explorer) msgLabel(m xMsg) string {
	switch m.kind {
	case xCommit:
		return fmt.Sprintf("commit %v %s->%s", m.cid, xNames[m.from], xNames[m.to])
	default:
		return fmt.Sprintf("msg %v@%v %s->%s", m.app, m.eid, xNames[m.from], xNames[m.to])
	}
}

func (x *explorer) deliver(w *xWorld, m xMsg) {
	i := int(m.to)
	if !w.active(i) || !w.mem[i].online {
		return // lost: anti-entropy recovers commits
	}
	g := x.load(w, i)
	if m.kind == xCommit {
		x.feed(w, i, g, m.cid)
	} else {
		x.receiveApp(w, i, g, m)
	}
	x.store(w, i, g)
}

func (w *xWorld) take(m xMsg) {
	j, ok := slices.BinarySearchFunc(w.flight, m, xMsg.less)
	if !ok {
		panic("message not in flight")
	}
	w.flight = slices.Delete(w.flight, j, j+1)
}

func (x *explorer) tip(w *xWorld, from, to int) {
	gf := x.peek(w, from)
	if w.mem[from].snapHead != gf.head.eid {
		// A node persists before publishing anything naming an epoch.
		w.mem[from].snap, w.mem[from].snapHead = w.mem[from].g, gf.head.eid
		if x.rec != nil {
			x.rec.snapshot(from)
		}
	}
	h, ep := gf.Head()
	r, rep := gf.Root()
	g := x.load(w, to)
	x.step(w, to, g, TipSeen{Member: xNames[from], Eid: h, Epoch: ep, Root: r, RootEpoch: rep})
	x.store(w, to, g)
}

// answer serves member to with every commit in from's log it lacks,
// oldest first (anti-entropy).
func (x *explorer) answer(w *xWorld, to, from int) {
	w.mem[to].fetch = false
	g := x.load(w, to)
	for _, cid := range x.missing(w, to, from) {
		x.feed(w, to, g, cid)
	}
	x.store(w, to, g)
}

func (x *explorer) missing(w *xWorld, to, from int) []CommitID {
	gt, gf := x.peek(w, to), x.peek(w, from)
	if gt.Done() {
		return nil
	}
	// Like a locator-based range sync: the server finds the requester's
	// root on its own chain (retained canonical or remembered final) and
	// sends the commits it stored after it; everything if it is not there.
	after := uint64(0)
	if n := gf.nodes[gt.root.eid]; (n != nil && n.canonical) || gf.inHistory(gt.root.eid) {
		after = gt.root.epoch
	}
	var out []CommitID
	for _, cid := range w.mem[from].log {
		c := x.commits[cid]
		if c.Epoch > after && !gt.Known(c.Eid) && !gt.inHistory(c.Eid) && c.Eid != gt.root.eid {
			out = append(out, cid)
		}
	}
	slices.SortFunc(out, func(a, b CommitID) int {
		ca, cb := x.commits[a], x.commits[b]
		return cmpEpochEid(ca.Epoch, ca.Eid, cb.Epoch, cb.Eid)
	})
	return out
}

func (x *explorer) tick(w *xWorld) {
	w.now++
	for i := range w.mem {
		if !w.active(i) || !w.mem[i].online {
			continue
		}
		g := x.load(w, i)
		x.step(w, i, g, Tick{Now: at(time.Duration(w.now) * xStep)})
		x.store(w, i, g)
	}
}

func (x *explorer) queueIntent(w *xWorld, i int) {
	m := &w.mem[i]
	id, in := x.intentOf(i, m.seq)
	m.seq++
	g := x.load(w, i)
	x.step(w, i, g, IntentQueued{ID: id, Class: in.class})
	x.store(w, i, g)
}

func (x *explorer) sendNew(w *xWorld, i int) {
	m := &w.mem[i]
	id := MsgID{byte(16*(i+1) + m.sentN)}
	m.sentN++
	g := x.load(w, i)
	x.sendApp(w, i, g, id, g.head.eid)
	x.store(w, i, g)
}

func (x *explorer) crash(w *xWorld, i int) {
	m := &w.mem[i]
	g, err := Unmarshal(x.cfg, m.snap)
	if err != nil {
		x.fail("%s: restore: %v", xNames[i], err)
	}
	if x.rec != nil {
		x.rec.restore(i)
	}
	m.hints = nil
	x.store(w, i, g)
}

func (x *explorer) isMember(w *xWorld, i int) bool {
	if !w.active(i) {
		return false
	}
	return contains(x.peek(w, i).head.members, xNames[i])
}

// transitions lists what may happen in w, in a fixed order.
func (x *explorer) transitions(w *xWorld) []xTrans {
	var ts []xTrans
	seen := map[string]bool{}
	for _, m := range w.flight {
		l := x.msgLabel(m)
		if seen[l] {
			continue
		}
		seen[l] = true
		to := int(m.to)
		if !w.connected(to, int(m.from)) && w.mem[to].online {
			continue // held back by the partition
		}
		m := m
		ts = append(ts, xTrans{"deliver " + l, []int{to}, func(w *xWorld) { w.take(m); x.deliver(w, m) }})
		if w.faults["dup"] > 0 {
			ts = append(ts, xTrans{"dup " + l, nil, func(w *xWorld) { w.faults["dup"]--; x.deliver(w, m) }})
		}
		if w.faults["drop"] > 0 {
			ts = append(ts, xTrans{"drop " + l, nil, func(w *xWorld) { w.faults["drop"]--; w.take(m) }})
		}
	}
	for i := range w.mem {
		for j := range w.mem {
			if i == j || !w.active(i) || !w.active(j) || !w.connected(i, j) || !x.isMember(w, i) {
				continue
			}
			i, j := i, j
			ts = append(ts, xTrans{fmt.Sprintf("tip %s->%s", xNames[i], xNames[j]), []int{i, j}, func(w *xWorld) { x.tip(w, i, j) }})
			if w.mem[j].fetch && len(x.missing(w, j, i)) > 0 {
				ts = append(ts, xTrans{fmt.Sprintf("answer %s<-%s", xNames[j], xNames[i]), []int{i, j}, func(w *xWorld) { x.answer(w, j, i) }})
			}
		}
	}
	for i := range w.mem {
		i := i
		if w.mem[i].intents > 0 && w.mem[i].online && x.isMember(w, i) {
			ts = append(ts, xTrans{"intent " + string(xNames[i]), []int{i}, func(w *xWorld) { w.mem[i].intents--; x.queueIntent(w, i) }})
		}
		if w.mem[i].msgs > 0 && w.mem[i].online && x.isMember(w, i) {
			ts = append(ts, xTrans{"send " + string(xNames[i]), []int{i}, func(w *xWorld) { w.mem[i].msgs--; x.sendNew(w, i) }})
		}
	}
	if w.ticks > 0 {
		ts = append(ts, xTrans{"tick", nil, func(w *xWorld) { w.ticks--; x.tick(w) }})
	}
	for i := range w.mem {
		i := i
		if w.faults["crash"] > 0 && w.active(i) && w.mem[i].online {
			ts = append(ts, xTrans{"crash " + string(xNames[i]), nil, func(w *xWorld) { w.faults["crash"]--; x.crash(w, i) }})
		}
		if w.faults["away"] > 0 && w.active(i) && w.side == 0 {
			ts = append(ts, xTrans{"away " + string(xNames[i]), nil, func(w *xWorld) {
				w.faults["away"]--
				w.mem[i].online, w.away, w.upset = false, int8(i), true
			}})
		}
	}
	if w.away >= 0 {
		ts = append(ts, xTrans{"back " + string(xNames[w.away]), nil, func(w *xWorld) { w.mem[w.away].online, w.away = true, -1 }})
	}
	if w.faults["partition"] > 0 && w.away < 0 {
		// Every split with member 0 on side 0 (sides are symmetric).
		for s := uint8(1); s < 1<<(x.n-1); s++ {
			side := s << 1
			ts = append(ts, xTrans{fmt.Sprintf("partition %b", side), nil, func(w *xWorld) {
				w.faults["partition"]--
				w.side, w.upset = side, true
			}})
		}
	}
	if w.side != 0 {
		ts = append(ts, xTrans{"heal", nil, func(w *xWorld) { w.side = 0 }})
	}
	return ts
}

// independent: two transitions commute when they touch disjoint members.
// Why this is sound: a transition with a member footprint reads and writes
// only those members' state (Group bytes, hints, snapshot, log, pending and
// sent messages, fetch flag, budgets kept per member) plus the flight
// multiset, from which it removes only a message addressed to a member of
// its footprint and to which it only adds; it is enabled or disabled only
// by its footprint's state, the presence of its own message and the
// partition, which no footprint transition changes. Multiset insertion and
// removal of distinct elements commute, so both orders reach the same world
// (same key), and neither disables the other. Global transitions (tick,
// faults, which read or write shared budgets or the network) are dependent
// on everything.
func independent(a, b xTrans) bool {
	if a.touches == nil || b.touches == nil {
		return false
	}
	for _, i := range a.touches {
		if slices.Contains(b.touches, i) {
			return false
		}
	}
	return true
}

// ---- checks ----

func (x *explorer) checkWorld(w *xWorld) {
	gs := make([]*Group, x.n)
	for i := range w.mem {
		if w.mem[i].g != nil {
			gs[i] = x.peek(w, i)
		}
	}
	// Members holding the same commits and the same replicated evidence
	// make the same choice wherever they hold the same siblings.
	for i := range gs {
		for j := i + 1; j < len(gs); j++ {
			a, b := gs[i], gs[j]
			if a == nil || b == nil || a.Done() || b.Done() || !slices.Equal(w.mem[i].log, w.mem[j].log) || !reflect.DeepEqual(a.proofs, b.proofs) {
				continue
			}
			for eid, pa := range a.nodes {
				pb := b.nodes[eid]
				if pb == nil || !sameChildren(pa, pb) {
					continue
				}
				ca, cb := a.bestChild(pa), b.bestChild(pb)
				if (ca == nil) != (cb == nil) || (ca != nil && ca.eid != cb.eid) {
					x.fail("%s and %s hold the same commits and evidence but choose different children of %v: %v and %v", xNames[i], xNames[j], eid, nodeEid(ca), nodeEid(cb))
				}
			}
		}
	}
	// Agreement on finalised epochs, unless an outage may have exceeded
	// the window (the loser rejoins; checked on convergence instead).
	if !w.upset {
		x.agree(w, gs, false)
	}
}

func nodeEid(n *node) EpochID {
	if n == nil {
		return EpochID{}
	}
	return n.eid
}

func sameChildren(a, b *node) bool {
	if len(a.children) != len(b.children) {
		return false
	}
	for _, c := range a.children {
		if !slices.ContainsFunc(b.children, func(d *node) bool { return d.eid == c.eid }) {
			return false
		}
	}
	return true
}

// agree checks that members agree on every epoch number both hold final
// (root and remembered history). current: only members whose incarnation
// never rejoined.
func (x *explorer) agree(w *xWorld, gs []*Group, current bool) {
	final := map[uint64]EpochID{}
	who := map[uint64]MemberID{}
	for i, g := range gs {
		if g == nil || (current && (w.mem[i].old || w.mem[i].rejoin)) || w.mem[i].rejoin {
			continue
		}
		if w.upset && w.mem[i].removed {
			// Removed on a side that lost beyond the window: it is never
			// told (a documented weakness, see Known weaknesses).
			continue
		}
		add := func(ep uint64, e EpochID) {
			if o, ok := final[ep]; ok && o != e {
				x.fail("epoch %d final as %v at %s and %v at %s", ep, o, who[ep], e, xNames[i])
			}
			final[ep], who[ep] = e, xNames[i]
		}
		for _, h := range g.history {
			add(h.epoch, h.eid)
		}
		add(g.root.epoch, g.root.eid)
	}
}

// ---- the fair suffix ----

// converge runs one fair suffix from w: everyone back and connected, every
// message delivered, fetches answered, tips exchanged, rejoins carried out
// and time advancing, until the group settles or xSuffixRounds steps of
// time pass.
func (x *explorer) converge(w *xWorld) {
	w = w.clone()
	// A member away when the suffix starts stays away until the others
	// have moved beyond the window (MaxAge and then some), so that every
	// explored world with an absence is also continued as one longer than
	// the window; then it comes back.
	// So does a partition: it heals only after the same time, so every
	// explored partition is also continued as one beyond the window.
	awayFor := 0
	if w.away >= 0 || w.side != 0 {
		awayFor = int(x.cfg.MaxAge/xStep) + 2
	}
	w.ticks, w.faults = 0, nil
	for i := range w.mem {
		w.mem[i].online = i != int(w.away)
	}
	// Suffixes from different worlds soon meet: a world (at the start of a
	// round) from which a suffix already converged, with rounds to spare,
	// converges again the same way (the suffix is a function of the world).
	type seen struct {
		k [32]byte
		r int
	}
	var path []seen
	for r := 0; r < xSuffixRounds+awayFor; r++ {
		if w.away >= 0 && r >= awayFor {
			w.mem[w.away].online, w.away = true, -1
		}
		if r >= awayFor {
			w.side = 0
		}
		k := w.key()
		if need, ok := x.sfxDone[k]; ok && r+need <= xSuffixRounds+awayFor {
			x.sfxHit++
			for _, p := range path {
				x.sfxDone[p.k] = need + r - p.r
			}
			return
		}
		path = append(path, seen{k, r})
		x.drain(w)
		for i := range w.mem {
			for j := range w.mem {
				if i != j && w.active(i) && w.active(j) && w.connected(i, j) && len(x.missing(w, j, i)) > 0 {
					x.answer(w, j, i)
				}
			}
		}
		x.drain(w)
		for i := range w.mem {
			for j := range w.mem {
				if i != j && w.active(j) && w.connected(i, j) && x.isMember(w, i) {
					x.tip(w, i, j)
				}
			}
		}
		x.drain(w)
		for i := range w.mem {
			if w.mem[i].rejoin && w.mem[i].online {
				x.rejoin(w, i)
			}
			if x.spam && i == 0 && x.isMember(w, 0) {
				if g := x.load(w, 0); len(g.queue) == 0 && g.prop == nil {
					x.queueIntent(w, 0)
				}
			}
			if x.spam && i == 1 && w.mem[1].seq == 0 && x.isMember(w, 1) {
				x.queueIntent(w, 1)
			}
		}
		x.drain(w)
		if w.away < 0 && w.side == 0 && x.settled(w) {
			x.finalChecks(w)
			for _, p := range path {
				x.sfxDone[p.k] = r + 1 - p.r
			}
			return
		}
		x.tick(w)
	}
	var b strings.Builder
	for i := range w.mem {
		if w.mem[i].g == nil {
			continue
		}
		g := x.load(w, i)
		fmt.Fprintf(&b, "\n  %s: head %v@%d root %v@%d retained %d queue %d prop %v done %v rejoin %v removed %v", xNames[i], g.head.eid, g.head.epoch, g.root.eid, g.root.epoch, len(g.nodes), len(g.queue), g.prop != nil, g.Done(), w.mem[i].rejoin, w.mem[i].removed)
	}
	x.fail("no convergence within %d steps of time of a fair suffix:%s", xSuffixRounds+awayFor, b.String())
}

func (x *explorer) drain(w *xWorld) {
	for k := 0; ; k++ {
		if k > 10000 {
			x.fail("messages never stop")
		}
		// The first message not held back by the partition.
		j := slices.IndexFunc(w.flight, func(m xMsg) bool {
			return w.connected(int(m.to), int(m.from)) || !w.mem[m.to].online
		})
		if j < 0 {
			return
		}
		m := w.flight[j]
		w.take(m)
		x.deliver(w, m)
	}
}

// rejoin: by external Commit from the newest root a live member holds.
func (x *explorer) rejoin(w *xWorld, i int) {
	best := -1
	var bg *Group
	for j := range w.mem {
		if j == i || !x.isMember(w, j) {
			continue
		}
		g := x.load(w, j)
		if g.lost {
			continue
		}
		if bg == nil || g.root.epoch > bg.root.epoch {
			best, bg = j, g
		}
	}
	if best < 0 {
		return
	}
	base := bg.root
	m := &w.mem[i]
	m.rejoin = false
	if !contains(base.members, xNames[i]) {
		m.removed = true
		return
	}
	gen := Genesis{Eid: base.eid, Epoch: base.epoch, Members: base.members, Admins: base.admins}
	if c, ok := x.byEid[base.eid]; ok {
		gen.HasCommit, gen.Parent, gen.Class, gen.Committer, gen.Cid = true, c.Parent, c.Class, c.Committer, c.Cid
	}
	g, err := New(x.cfg, xNames[i], gen, at(time.Duration(w.now)*xStep))
	if err != nil {
		x.fail("%s: rejoin: %v", xNames[i], err)
	}
	m.inc++
	if x.rec != nil {
		x.rec.rejoined(i, gen, w.now)
	}
	m.hints, m.pending, m.fetch = nil, nil, false
	x.sync(w, i, g)
	c := mkCommit(base.eid, base.epoch+1, xNames[i], ClassRemove, base.members, uint64(0xe0+m.inc))
	c.Own = true
	x.register(c)
	w.logCommit(i, c.Cid)
	x.step(w, i, g, c)
	w.broadcast(i, xMsg{kind: xCommit, cid: c.Cid})
	x.store(w, i, g)
}

// settled: every active member of its head on one head retaining only it,
// no intent or proposal pending, nobody waiting to rejoin, nothing in
// flight (the simulator's settled).
func (x *explorer) settled(w *xWorld) bool {
	var head EpochID
	first := true
	for i := range w.mem {
		if w.mem[i].rejoin {
			return false
		}
		if !w.active(i) {
			continue
		}
		g := x.peek(w, i)
		if !contains(g.head.members, xNames[i]) {
			return false // must learn its removal (Removed) first
		}
		if len(g.nodes) != 1 || len(g.queue) > 0 || g.prop != nil {
			if x.spam && i == 0 {
				continue // the spammer always has something queued
			}
			return false
		}
		if first {
			head, first = g.head.eid, false
		} else if g.head.eid != head {
			return false
		}
	}
	if x.spam && !w.mem[0].removed {
		return false // the removal of the spammer must land
	}
	return len(w.flight) == 0
}

// finalChecks, on a converged world: finalised epochs agree among current
// incarnations; every message sent is on the canonical chain or was handed
// back to its sender.
func (x *explorer) finalChecks(w *xWorld) {
	gs := make([]*Group, x.n)
	var head EpochID
	for i := range w.mem {
		if w.mem[i].g != nil {
			gs[i] = x.load(w, i)
			if w.active(i) {
				head = gs[i].head.eid
			}
		}
	}
	x.agree(w, gs, true)
	canon := map[EpochID]bool{}
	for e := head; ; {
		canon[e] = true
		c, ok := x.byEid[e]
		if !ok {
			break
		}
		e = c.Parent
	}
	for i := range w.mem {
		for _, s := range w.mem[i].sent {
			if s.surfaced {
				continue
			}
			if !slices.ContainsFunc(s.copies, func(e EpochID) bool { return canon[e] }) {
				x.fail("message %v from %s lost: copies %v, none canonical, not handed back", s.id, xNames[i], s.copies)
			}
		}
	}
}

// ---- the search ----

func (x *explorer) initial(n, commits, msgs, ticks int, faults []string) *xWorld {
	w := &xWorld{ticks: ticks, faults: map[string]int{}, away: -1}
	for _, f := range faults {
		if f != "" {
			w.faults[f] = 1
		}
	}
	x.gen = genesisOf(xNames[:n])
	for i := range n {
		g, err := New(x.cfg, xNames[i], x.gen, t0)
		if err != nil {
			x.t.Fatal(err)
		}
		m := xMem{online: true}
		if i < commits {
			m.intents = 1
		}
		if i < msgs {
			m.msgs = 1
		}
		w.mem = append(w.mem, m)
		x.store(w, i, g)
		x.sync(w, i, g)
	}
	// Warm-up: everyone has heard everyone's heartbeat on the genesis, so
	// commits can be proposed at once (a member does not commit on a
	// final head nobody else was seen on) and the explored depth is spent
	// on races and faults.
	for i := range n {
		for j := range n {
			if i != j {
				x.tip(w, i, j)
			}
		}
	}
	return w
}

type xResult struct {
	path []string
	msg  string
}

// dfs explores from w with rem transitions left. sleep holds transitions
// already explored from an ancestor whose effect commutes with the path
// since (sleep sets, Godefroid): taking one here reaches a world the
// ancestor's other branch reaches too. The visited table stores, per world,
// the largest remaining depth it was explored with and the sleep set used
// then; a revisit with no more depth explores only the transitions that
// slept then and do not now (state caching stays sound with sleep sets).
func (x *explorer) dfs(w *xWorld, rem int, sleep map[string]bool, path []string) (res *xResult) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(xFail)
			if !ok {
				panic(r)
			}
			res = &xResult{path: slices.Clone(path), msg: f.msg}
		}
	}()
	k := w.key()
	todo := sleep
	if v := x.visited[k]; v != nil {
		if rem <= v.rem {
			// Only transitions that slept last time and wake now.
			wake := map[string]bool{}
			for l := range v.sleep {
				if !sleep[l] {
					wake[l] = true
				}
			}
			if len(wake) == 0 {
				return nil
			}
			for l := range v.sleep {
				if sleep[l] {
					delete(v.sleep, l)
				}
			}
			v.sleep = intersect(v.sleep, sleep)
			return x.expand(w, rem, sleep, path, wake)
		}
		v.rem, v.sleep = rem, maps.Clone(sleep)
	} else {
		x.visited[k] = &xVisit{rem: rem, sleep: maps.Clone(sleep)}
		x.states++
		x.checkWorld(w)
		x.sfx++
		x.converge(w)
	}
	_ = todo
	return x.expand(w, rem, sleep, path, nil)
}

func intersect(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if b[k] {
			out[k] = true
		}
	}
	return out
}

// expand runs the transitions of w (only those in only, when non-nil)
// that are not asleep.
func (x *explorer) expand(w *xWorld, rem int, sleep map[string]bool, path []string, only map[string]bool) *xResult {
	if rem == 0 {
		return nil
	}
	ts := x.transitions(w)
	var done []xTrans
	for _, t := range ts {
		if only != nil && !only[t.label] {
			continue
		}
		if sleep[t.label] {
			x.slept++
			done = append(done, t)
			continue
		}
		next := map[string]bool{}
		for _, u := range ts {
			if (sleep[u.label] || slices.ContainsFunc(done, func(d xTrans) bool { return d.label == u.label })) && independent(t, u) {
				next[u.label] = true
			}
		}
		nw := w.clone()
		path = append(path, t.label)
		if r := x.run(nw, t, path); r != nil {
			return r
		}
		x.edges++
		x.maxDepth = max(x.maxDepth, len(path))
		if r := x.dfs(nw, rem-1, next, path); r != nil {
			return r
		}
		path = path[:len(path)-1]
		done = append(done, t)
	}
	return nil
}

func (x *explorer) run(w *xWorld, t xTrans, path []string) (res *xResult) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(xFail)
			if !ok {
				panic(r)
			}
			res = &xResult{path: slices.Clone(path), msg: f.msg}
		}
	}()
	t.apply(w)
	return nil
}

type xParams struct {
	n, commits, msgs, ticks, depth int
	faults                         []string
	cfg                            Config
	spam, add                      bool
}

func defaultParams() xParams {
	return xParams{n: *exMembers, commits: *exCommits, msgs: *exMsgs, ticks: *exTicks, depth: *exDepth,
		faults: strings.Split(*exFaults, ","), cfg: xCfg, spam: *exSpam, add: *exAdd}
}

func newExplorer(t testing.TB, p xParams) *explorer {
	return &explorer{t: t, cfg: p.cfg, n: p.n, spam: p.spam, add: p.add, commits: map[CommitID]CommitSeen{}, byEid: map[EpochID]CommitSeen{},
		intents: map[IntentID]intentRec{}, visited: map[[32]byte]*xVisit{}, peeked: map[string]*Group{}, sfxDone: map[[32]byte]int{}, seen: map[string]int{}}
}

func explore(t testing.TB, p xParams) (*explorer, *xResult) {
	if p.n < 2 || p.n > 4 {
		t.Fatalf("explore.members %d: want 2..4", p.n)
	}
	x := newExplorer(t, p)
	w := x.initial(p.n, p.commits, p.msgs, p.ticks, p.faults)
	return x, x.dfs(w, p.depth, map[string]bool{}, nil)
}

// replay runs a counterexample path again with a recorder, and returns
// its transcript in the interaction test's format.
func replay(t testing.TB, p xParams, res *xResult) string {
	x := newExplorer(t, p)
	x.rec = newRecorder(p)
	x.rec.begin()
	w := x.initial(p.n, p.commits, p.msgs, p.ticks, p.faults)
	failed := func(f func()) (msg string) {
		defer func() {
			if r := recover(); r != nil {
				fl, ok := r.(xFail)
				if !ok {
					panic(r)
				}
				msg = fl.msg
			}
		}()
		f()
		return ""
	}
	for _, l := range res.path {
		var tr *xTrans
		for _, c := range x.transitions(w) {
			if c.label == l {
				tr = &c
				break
			}
		}
		if tr == nil {
			t.Fatalf("replay: transition %q not enabled", l)
		}
		x.rec.comment(l)
		if msg := failed(func() { tr.apply(w) }); msg != "" {
			return x.rec.text(res)
		}
	}
	x.rec.comment("fair suffix")
	failed(func() { x.checkWorld(w); x.converge(w) })
	return x.rec.text(res)
}

func reportExplore(t *testing.T, name string, p xParams, x *explorer, res *xResult, took time.Duration) {
	t.Logf("%s: %d distinct states, %d transitions run, %d slept, %d fair suffixes (%d joined one already run), max depth %d, %v", name, x.states, x.edges, x.slept, x.sfx, x.sfxHit, x.maxDepth, took)
	t.Logf("%s: effects seen (prefix and suffixes): %v", name, x.seen)
	if res == nil {
		return
	}
	tr := replay(t, p, res)
	if *exWriteDir != "" {
		f := fmt.Sprintf("%s/explore_%s.txt", *exWriteDir, name)
		if err := os.WriteFile(f, []byte(tr), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (fill in with: go test -run TestInteraction -rewrite)", f)
	}
	t.Errorf("%s: counterexample after %v: %s\ntranscript:\n%s", name, res.path, res.msg, tr)
}

// TestExplore explores the default bounds (the flags) exhaustively.
func TestExplore(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive exploration")
	}
	p := defaultParams()
	start := time.Now()
	x, res := explore(t, p)
	reportExplore(t, "default", p, x, res, time.Since(start))
}

// TestExploreNegativeControl breaks one rule (the fork choice follows
// arrival order, Config's test-only hook) and requires the explorer to
// find a counterexample: an explorer that finds nothing cannot pass.
func TestExploreNegativeControl(t *testing.T) {
	p := xParams{n: 3, commits: 2, ticks: 2, cfg: xCfg}
	p.cfg.testingOnlyArrivalOrder = true
	// Iterative deepening finds a shortest counterexample quickly.
	var x *explorer
	var res *xResult
	for p.depth = 1; p.depth <= 8 && res == nil; p.depth++ {
		x, res = explore(t, p)
	}
	t.Logf("negative control: counterexample at depth %d, %d distinct states", p.depth-1, x.states)
	if res == nil {
		t.Fatal("the explorer found no counterexample with the fork choice broken")
	}
	tr := replay(t, p, res)
	t.Logf("counterexample: %s\n%s", res.msg, tr)
	// The transcript replays through the interaction interpreter (with
	// the same broken rule) to the same divergence: members of their head
	// on different heads at the end.
	out := runTranscript(t, tr, true)
	heads := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, "done=false") {
			h, _, _ := strings.Cut(strings.SplitN(l, "head=", 2)[1], " ")
			heads[h] = true
		}
	}
	if len(heads) < 2 {
		t.Fatalf("the transcript does not replay the divergence; final state:\n%s", out)
	}
}

// TestExploreSpammer: the first member queues an intent at every
// opportunity; the rate limit must keep the group moving and the second
// member's removal of it must land, from every explored state.
func TestExploreSpammer(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive exploration")
	}
	p := xParams{n: 3, commits: 2, msgs: 0, ticks: 2, depth: 5, faults: []string{"drop", "crash"}, cfg: xCfg, spam: true}
	start := time.Now()
	x, res := explore(t, p)
	reportExplore(t, "spammer", p, x, res, time.Since(start))
}
