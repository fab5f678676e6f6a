// A group's actor: groupActor owns one group's state on one goroutine
// (run), loaded from the store (loadGroup) and started with its topic
// subscription (startActor); other goroutines reach it through do and
// post, and stop ends it. A message's paths through it are in the other
// group_*.go files: group_receive.go (gossip in), group_send.go (the
// outbox out), group_commit.go (intents and commits), group_order.go
// (commitorder's events and effects), group_sync.go (tips and sync
// requests), group_membership.go, group_persist.go (its own writes).

package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// groupPhase is where this device stands in a group's life. The phases
// exclude each other, so they are one value rather than the two booleans
// (removed, stale) they once were:
//
//   - phaseActive: a member on the group's chain; the zero value.
//   - phaseRejoining: commitorder emitted Rejoin (this device's branch lost
//     beyond the retention window). Its commitorder is Done and takes no
//     events; the old epochs are kept, Send is refused, and rejoin.go
//     tries to come back by external Commit. a.rejoin is set exactly in
//     this phase.
//   - phaseRemoved: commitorder emitted Removed (a Commit removing this
//     device is final). Every epoch state is erased; final.
//
// Transitions: active -> rejoining (effect Rejoin, startRejoin); rejoining
// -> active (finishRejoin replaces commitorder and the epochs); active ->
// removed (effect Removed). loadGroup starts in any phase: a Done
// commitorder with no epoch states was removed, with states it is a
// rejoin that had not finished. There is no rejoining -> removed: a Done
// commitorder emits nothing until the rejoin replaces it.
//
// Leaving is not a phase: it is this device's request (leaving, leaveMsg,
// leaveEpoch, takenOver), held in any phase until finishLeave deletes the
// group; a removed group being left is deleted at once. The other
// booleans (caughtUp, replaying, deepSync, syncWanted, orderDirty) are
// independent flags.
type groupPhase int

const (
	phaseActive groupPhase = iota
	phaseRejoining
	phaseRemoved
)

func (p groupPhase) String() string {
	switch p {
	case phaseActive:
		return "active"
	case phaseRejoining:
		return "rejoining"
	case phaseRemoved:
		return "removed"
	}
	return fmt.Sprintf("groupPhase(%d)", int(p))
}

// groupActor owns one group's state. Only its goroutine touches the fields
// below quit; others reach it through do and deliver.
type groupActor struct {
	n       *Node
	log     *slog.Logger
	id      []byte
	hexID   string
	name    string
	created time.Time

	cmds    chan func()
	inbound chan inMsg
	// pipe: gossip messages taken from inbound, in arrival order, not
	// yet applied; verified wakes the actor when the pool checked a
	// signature; prepared is the result applyEntry hands to processWith
	// (verify.go).
	pipe     []*inEntry
	verified chan struct{}
	prepared *preparedMsg
	quit     chan struct{}
	done     chan struct{}
	sub      p2p.Subscription
	// wire holds the group's topic and envelope keys (envelope.go); set
	// by startActor before the subscription, read-only after.
	wire *wireKeys

	co         *commitorder.Group
	epochs     map[commitorder.EpochID]*mls.Group
	own        map[commitorder.CommitID]*ownCommit
	intents    map[commitorder.IntentID]*intent
	held       *heldBuffer
	seen       map[[32]byte]struct{}
	dirty      map[commitorder.EpochID]bool
	phase      groupPhase // active, rejoining or removed; see groupPhase
	lastSync   time.Time
	syncs      int // sync requests in flight
	tipCount   int
	selfRemove map[commitorder.EpochID]pendingRemoval
	orderDirty bool // commitorder evidence not yet saved
	deepSync   bool // next sync starts below the root (a member is on another branch)
	// epochKeys caches the sealing key of each epoch (epochseal.go);
	// sealedHeld keeps seals none of them opened, for retrySealed;
	// misses counts them since the head became missHead, at missSince
	// (unsealable).
	epochKeys       map[commitorder.EpochID]epochKeyEntry
	sealedHeld      [][]byte
	sealedHeldBytes int
	retryingSealed  bool
	misses          int
	missSince       time.Time
	missHead        commitorder.EpochID
	rejoin          *rejoinState // set exactly while phase is phaseRejoining
	rejoinedOn      rejoinBase   // see makeTip
	// resent: ids re-sent by the last rejoin, kept until that rejoin's
	// epoch is final (in memory: a duplicate re-send is harmless).
	resent      map[[16]byte]bool
	resentEpoch uint64
	// unheard: outbox entries last published while gossip reached no
	// member, with who could read the epoch they were encrypted in (see
	// resendUnheard). In memory: after a crash the replay publishes
	// every entry left in the outbox again.
	unheard map[[16]byte]map[string]bool
	// settled: outbox entries commitorder settled, with when; they are
	// deleted outboxLinger later (dropSettled). In memory: after a crash
	// the replay publishes them again.
	settled map[[16]byte]time.Time
	// replaying: replayOutbox is publishing (see published).
	replaying bool
	// caughtUp: the newest member tip taken named an epoch we hold, no
	// newer than our head (see resendUnheard). False after a start
	// until such a tip arrives.
	caughtUp bool
	// leaving: this device has left the group and waits to see its own
	// removal (leave.go); leaveMsg is the intent it re-publishes.
	leaving  bool
	leaveMsg *appPayload
	// leaveEpoch: the epoch the leave intent went out in; takenOver:
	// when an admin's tip first showed it past that epoch (see
	// noteTakeOver).
	leaveEpoch uint64
	takenOver  time.Time

	// syncWanted: a sync was asked for while another was in flight or
	// had just been made; it goes out when that one ends or on the next
	// tip tick (from syncPrefer first, if set) rather than being dropped.
	syncWanted bool
	syncPrefer []peer.ID // newest request's first, at most maxSyncPrefer
	syncRound  int       // rotates which members anti-entropy asks
	lastTick   time.Time // commitorder's clock as last fed
	// heardAt: when each member's tip was last seen (a member silent for
	// a while and heard again is asked what it sent meanwhile).
	heardAt map[string]time.Time
	// tipTime: the send time of each member's newest tip taken; tipMaxAge:
	// how old a tip may be (the finality age).
	tipTime    map[string]uint64
	tipMaxAge  time.Duration
	cut        *cutOff               // see noteCutOff
	epochsSeen map[uint64]*epochSeen // see noteHeadMembers
	restart    *restartHold          // see restarthold.go
	// forkPoint: the epoch a branch switch in the current step rolled
	// back to (forkpoint.go), nil when none.
	forkPoint *commitorder.EpochID
	// floor: Commits on parents older than this can never concern this
	// device: the first epoch it held (its join), or after a rejoin that
	// epoch's parent (the rejoin's genesis records the commit there, so
	// commitorder can judge its siblings).
	floor uint64

	writes deferredWrites // see durable.go

	// rotateDue and rotateIntent: see autoRotate (group_order.go).
	rotateDue    time.Time
	rotateIntent commitorder.IntentID

	history       *membershipHistory    // see removalsync.go
	removedServed map[peer.ID]time.Time // see removedSyncRange
	// unsyncedSends counts messages send published whose writes Node.Send
	// has not yet synced (decremented off the actor, hence atomic).
	unsyncedSends atomic.Int32

	reach   reachState                           // see reach.go
	changes map[commitorder.IntentID]*changeWait // see change.go
	// muted and joinedAt are device-local settings (manage.go).
	muted    bool
	joinedAt time.Time
	joinedNs atomic.Int64 // joinedAt for other goroutines (history.go)
	// rejects sums rejected messages for the log (reject.go); shown is
	// the names members are shown by (names.go). Both are reached from
	// other goroutines and guard themselves.
	rejects rejectLog
	shown   shownNames
}

func newActor(n *Node, id []byte, name string, created time.Time) *groupActor {
	hexID := hex.EncodeToString(id)
	a := &groupActor{
		n: n, log: n.log.With("group", hexID[:8]), id: id, hexID: hexID, name: name, created: created,
		cmds: make(chan func()), inbound: make(chan inMsg, 256), verified: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
		epochs:     make(map[commitorder.EpochID]*mls.Group),
		own:        make(map[commitorder.CommitID]*ownCommit),
		intents:    make(map[commitorder.IntentID]*intent),
		seen:       make(map[[32]byte]struct{}),
		held:       newHeldBuffer(defaultHeldMessages, defaultHeldBytes),
		tipMaxAge:  n.coConfig(DefaultCommitRate).MaxAge,
		dirty:      make(map[commitorder.EpochID]bool),
		selfRemove: make(map[commitorder.EpochID]pendingRemoval),
	}
	a.loadLocalSettings()
	return a
}

// loadGroup rebuilds a group's actor from the store.
func (n *Node) loadGroup(id []byte) (*groupActor, error) {
	meta, err := n.db.Group(id)
	if err != nil {
		return nil, err
	}
	a := newActor(n, id, meta.Name, meta.Created)
	states, err := n.db.EpochStates(id)
	if err != nil {
		return nil, err
	}
	rate := DefaultCommitRate
	for _, st := range states {
		g, err := mls.UnmarshalGroup(st.State)
		if err != nil {
			return nil, fmt.Errorf("node: epoch state: %w", err)
		}
		// The secret tree bounds are stored with each state: without this,
		// a group stored before groupConfig's window was raised would keep
		// the old one (256 skipped keys) for ever, and with it the resync
		// stall the raise fixed.
		if err := g.SetSecretTreeConfig(groupConfig().SecretTree); err != nil {
			return nil, fmt.Errorf("node: epoch state: %w", err)
		}
		a.epochs[commitorder.EpochID(st.EID)] = g
		if p := groupPolicy(g); p.RateLimit > 0 {
			rate = int(p.RateLimit)
		}
	}
	a.co, err = commitorder.Unmarshal(n.coConfig(rate), meta.Data)
	if err != nil {
		return nil, fmt.Errorf("node: commit order state: %w", err)
	}
	if a.co.Done() {
		// Done is either Removed (every epoch state erased) or a Rejoin
		// that had not finished before the restart (states kept).
		if len(a.epochs) == 0 {
			a.phase = phaseRemoved
		} else {
			_, root := a.co.Root()
			rs := &rejoinState{members: map[string]bool{}, forkEpoch: root - min(root, deepSyncEpochs)}
			if head, _ := a.co.Head(); a.epochs[head] != nil {
				for _, m := range a.epochs[head].Members() {
					rs.members[string(m.Identity)] = true
				}
			}
			if ids, err := n.db.OutboxEntries(id, store.OutboxPending, store.OutboxSent); err == nil {
				for _, e := range ids {
					rs.outbox = append(rs.outbox, commitorder.MsgID(e.ID))
				}
			}
			a.phase, a.rejoin = phaseRejoining, rs
		}
	}
	if a.phase == phaseActive {
		a.dropUnknownStates()
		a.startRestartHold()
	}
	if head, _ := a.co.Head(); a.epochs[head] == nil && a.phase == phaseActive && !a.resumeRemoval() {
		return nil, fmt.Errorf("node: head epoch state missing: %w", store.ErrCorrupt)
	}
	if err := a.skipSendGenerations(); err != nil {
		return nil, err
	}
	return a, nil
}

// dropUnknownStates deletes, at load, the epoch states commitorder does not
// know. A Commit's new epoch is persisted before commitorder is told of
// it (onCommit), so a crash between the two leaves such a state, and the
// Commit is not in the log either (it is logged once handled). Kept, the
// state decrypted the next epoch's Commit when that arrived first (gossip
// right after the restart, before sync brought the lost one again):
// commitorder held it for its unknown parent while the log marked it
// processed, so no sync ever fed it again and the device stayed an epoch
// behind for good (testnet TestCrash, 4 runs in 50 under load). Dropped,
// that Commit waits in the held buffer until sync brings the lost Commit,
// which is processed again from its parent's state, kept by the restart.
// Finalised and abandoned epochs' states are deleted as commitorder drops
// them, so nothing else is unknown to it.
func (a *groupActor) dropUnknownStates() {
	for eid, g := range a.epochs {
		if a.co.Known(eid) {
			continue
		}
		a.log.Info("dropping an epoch state left by a crash; its Commit is fetched again", "epoch", g.Epoch())
		g.Erase()
		delete(a.epochs, eid)
		if err := a.n.db.DeleteEpochState(a.id, store.EpochID(eid)); err != nil {
			a.log.Warn("delete epoch state left by a crash", "err", err)
		}
		a.n.requestPurge()
	}
}

// startActor registers the actor, subscribes to the group topic and starts
// the actor goroutine (and its subscription reader).
func (n *Node) startActor(a *groupActor) {
	a.initWire()
	n.mu.Lock()
	if a.leaving {
		n.leaving[a.hexID] = a
	} else {
		n.groups[a.hexID] = a
	}
	n.mu.Unlock()
	if a.phase != phaseRemoved {
		sub, err := n.net.Subscribe(a.wire.topic, a.validate)
		if err != nil {
			a.log.Warn("subscribe failed", "err", err)
		} else {
			a.sub = sub
		}
	}
	n.wg.Add(1)
	go a.run()
}

// initWire derives the group's wire keys from the group secret in its
// epoch states (all of them carry the same one).
func (a *groupActor) initWire() {
	var secret []byte
	if _, g := a.head(); g != nil {
		secret = groupSecret(g)
	}
	for _, g := range a.epochs {
		if secret != nil {
			break
		}
		secret = groupSecret(g)
	}
	w, err := newWireKeys(a.id, secret)
	if err != nil {
		// HKDF of 32 bytes cannot fail; a broken build is no reason to
		// run a group in the clear.
		panic(err)
	}
	a.wire = w
}

// stop ends the actor and waits for it.
func (a *groupActor) stop() {
	select {
	case <-a.quit:
	default:
		close(a.quit)
	}
	<-a.done
}

// do runs fn on the actor and returns its error.
func (a *groupActor) do(ctx context.Context, fn func() error) error {
	errc := make(chan error, 1)
	f := func() { errc <- fn() }
	select {
	case a.cmds <- f:
	case <-a.done:
		return api.Errorf(api.CodeUnavailable, "group is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post runs fn on the actor without waiting; it is dropped if the actor
// has stopped.
func (a *groupActor) post(fn func()) {
	select {
	case a.cmds <- fn:
	case <-a.done:
	}
}

func (a *groupActor) run() {
	defer a.n.wg.Done()
	defer close(a.done)
	readerDone := make(chan struct{})
	if a.sub != nil {
		go a.readSub(readerDone)
	} else {
		close(readerDone)
	}
	defer func() {
		if a.sub != nil {
			a.sub.Close()
		}
		<-readerDone
		a.endRestartHold()
		a.flush()
	}()
	tips := time.NewTicker(a.n.cfg.TipInterval)
	defer tips.Stop()
	persist := time.NewTicker(a.n.cfg.PersistEvery)
	defer persist.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	a.step(commitorder.Tick{Now: a.n.cfg.Clock.Now()})
	a.loadFloor()
	if eid, g := a.head(); g != nil {
		a.noteHeadMembers(eid, g)
	}
	a.replayOutbox()
	for {
		d := time.Hour
		if a.phase != phaseRemoved {
			if dl := a.co.NextDeadline(); !dl.IsZero() {
				d = max(dl.Sub(a.n.cfg.Clock.Now()), time.Millisecond)
			}
		}
		timer.Reset(d)
		inbound := a.inbound
		if len(a.pipe) >= maxStaged {
			inbound = nil // until the pool catches up (verify.go)
		}
		select {
		case <-a.quit:
			return
		case f := <-a.cmds:
			f()
		case m := <-inbound:
			a.enqueue(m)
		case <-a.verified:
			a.pump()
		case <-timer.C:
			a.step(commitorder.Tick{Now: a.n.cfg.Clock.Now()})
		case <-tips.C:
			a.checkRestartHold()
			if a.rejoin != nil {
				a.tryRejoin()
			}
			a.sendTip()
			a.tipCount++
			// Periodic anti-entropy with one member covers gossip that
			// was lost while the mesh formed.
			a.resendAfterCut()
			a.resendUnheard()
			if a.leaving {
				a.republishLeave()
				a.finishLeaveIfTakenOver()
			}
			if a.tipCount%10 == 0 {
				a.requestSync("", true)
			} else if a.syncWanted {
				a.requestSyncFrom(a.syncPrefer, false)
			}
		case <-persist.C:
			a.flush()
			a.dropSettled()
			a.autoRotate()
		}
	}
}

// inMsg is a gossip payload out of its envelope and the peer that
// forwarded it.
type inMsg struct {
	data []byte
	from peer.ID
}

func (a *groupActor) readSub(done chan struct{}) {
	defer close(done)
	for {
		m, err := a.sub.Next(a.n.ctx)
		if err != nil {
			return
		}
		body, err := a.wire.open(m.Data)
		if err != nil {
			continue // the validator rejected it already
		}
		select {
		case a.inbound <- inMsg{data: body, from: m.ReceivedFrom}:
		case <-a.quit:
			return
		}
	}
}

func (a *groupActor) head() (commitorder.EpochID, *mls.Group) {
	eid, _ := a.co.Head()
	return eid, a.epochs[eid]
}

func (a *groupActor) info() api.Group {
	g := api.Group{ID: a.hexID, Name: a.name, State: api.GroupActive, Unread: a.n.unreadCount(a.hexID), Mentions: a.n.mentionCount(a.hexID)}
	eid, hg := a.head()
	if hg != nil && a.phase != phaseRemoved {
		g.Epoch, g.EpochID, g.Members, g.Admin = hg.Epoch(), hex.EncodeToString(eid[:]), len(hg.Members()), a.isAdmin()
	}
	pending, removing := a.selfRemove[eid]
	switch {
	case removing && hg == nil && a.phase != phaseRemoved:
		g.State, g.Epoch, g.Members = api.GroupRemoving, pending.epoch, pending.members
	case a.phase == phaseRemoved:
		g.State = api.GroupRemoved
	case a.phase == phaseRejoining:
		g.State = api.GroupRejoinNeeded
	}
	g.Sync = api.SyncState{CatchingUp: a.syncs > 0}
	g.Muted, g.JoinedAt = a.muted, a.joinedAt
	if hg != nil {
		g.HistoryForNewMembers = groupPolicy(hg).History // history.go
	}
	return g
}
