package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// Version is reported by Status.
const Version = "grove/0.1"

var _ api.Service = (*Node)(nil)

// Node is one Grove device: its store, network, identity and group actors.
type Node struct {
	cfg Config
	log *slog.Logger

	db      *store.DB
	net     p2p.Network
	ownNet  bool
	suite   *mls.Suite
	sig     *mls.SigningKey
	self    memberIdentity
	selfID  []byte // encoded credential identity
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// createMu serialises CreateGroup's name check and creation.
	createMu sync.Mutex

	mu     sync.Mutex
	groups map[string]*groupActor // by hex group id
	// leaving: groups this device has left and that wait to see its
	// removal (leave.go); not listed, not usable, still synced.
	leaving map[string]*groupActor
	// leaveMu orders the deletion of a left group (finishLeave) with a
	// new join of it (dropLeaving).
	leaveMu sync.Mutex
	subs    map[chan api.Event]struct{}
	invites map[[16]byte]*pendingInvite
	// unread and unreadDirty: see unread.go.
	unread      map[string]int
	unreadDirty map[string]bool
	relays      map[commitorder.IntentID]*relayWait // join requests we wait on
	// seenJoins (in seenJoinOrder, oldest first): members' join requests
	// queued here as an admin, for withdrawals (joinrequest.go).
	seenJoins     map[commitorder.IntentID]*seenJoin
	seenJoinOrder []commitorder.IntentID
	unreadIO      sync.Mutex // orders unread count writes (unread.go)
	// lastNotBefore keeps our KeyPackages' not_before increasing.
	lastNotBefore time.Time
	// purgeKick requests a purge of deleted data (purgeLoop); capacity 1,
	// so requests made while one is pending coalesce.
	purgeKick chan struct{}
	closed    bool
	metrics   metrics
	// verifier checks received messages' signatures for every group
	// (verify.go); started by Start.
	verifier *verifyPool
	// testingOnlyVerifyHook, if set, runs before each signature check
	// the pipeline makes (verify.go), with the group id.
	testingOnlyVerifyHook atomic.Pointer[func(group []byte)]
	reach                 reachTotals // see reach.go
	dev                   devState    // account and devices (devices.go)

	// edits counts messages rewritten by edits since the search index
	// was last optimised (content.go, optimizeAfterEdits).
	edits atomic.Int64
}

// New checks cfg and returns a Node that is not yet running.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "node"),
		groups:  make(map[string]*groupActor),
		leaving: make(map[string]*groupActor),
		subs:    make(map[chan api.Event]struct{}),
		invites: make(map[[16]byte]*pendingInvite),

		unread:      make(map[string]int),
		unreadDirty: make(map[string]bool),
		relays:      make(map[commitorder.IntentID]*relayWait),
		seenJoins:   make(map[commitorder.IntentID]*seenJoin),
		purgeKick:   make(chan struct{}, 1),
	}, nil
}

// Setting names in the store.
const (
	settingName   = "node.name"
	settingSigKey = "node.mls-signature-key"
)

// Start opens the store, the network and the identity, and starts one actor
// per stored group. On failure everything opened is closed again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	db, err := store.Open(store.Options{Dir: filepath.Join(n.cfg.Home, "db"), Key: n.cfg.StoreKey, Logger: n.cfg.Logger, Now: n.cfg.Clock.Now})
	if err != nil {
		return fmt.Errorf("node: open store: %w", err)
	}
	n.db = db
	if n.cfg.Network != nil {
		n.net = n.cfg.Network
	} else {
		pc := n.cfg.P2P
		if pc.IdentityFile == "" {
			pc.IdentityFile = filepath.Join(n.cfg.Home, "peer.key")
		}
		if pc.IdentityKey == nil {
			pc.IdentityKey = n.cfg.StoreKey
		}
		if pc.PeerstoreFile == "" {
			pc.PeerstoreFile = filepath.Join(n.cfg.Home, "peers")
		}
		if pc.Logger == nil {
			pc.Logger = n.cfg.Logger
		}
		h, err := p2p.New(pc)
		if err != nil {
			return fmt.Errorf("node: start p2p: %w", err)
		}
		n.net, n.ownNet = h, true
	}
	if err := n.loadIdentity(); err != nil {
		return err
	}
	n.started = n.cfg.Clock.Now()
	n.verifier = newVerifyPool(n.ctx, &n.wg, 0)
	n.net.Serve(p2p.ProtocolJoin, n.serveJoin)
	n.net.Serve(p2p.ProtocolSync, n.serveSync)
	n.net.Serve(ProtocolFile, n.serveFile) // files.go
	n.net.Serve(protocolLink, n.serveLink)
	n.net.Serve(protocolRevoke, n.serveRevoke)
	n.net.Serve(protocolAccountRotate, n.serveAccountRotate)
	n.net.Serve(protocolMemberHistory, n.serveMemberHistory)
	n.net.Serve(protocolAccountJoin, n.serveAccountJoin)
	// /grove/keypackage/1 is deliberately not served: a device's KeyPackage
	// reaches a group only inside a join request it makes itself (invite
	// redemption), which is its consent to join that group. Serving
	// KeyPackages on demand would let anyone it shares a group with add it
	// to other groups, and drain its one-time init keys.
	ids, err := n.db.Groups()
	if err != nil {
		return fmt.Errorf("node: list groups: %w", err)
	}
	for _, id := range ids {
		a, err := n.loadGroup(id)
		if err != nil {
			n.log.Warn("group not loaded", "group", hex.EncodeToString(id), "err", err)
			continue
		}
		if _, err := n.db.Setting(leavingSetting(a.hexID)); err == nil {
			a.leaving = true
			if !a.awaitsRemoval() {
				if err := n.deleteGroupData(a); err != nil {
					n.log.Warn("delete left group", "group", a.hexID, "err", err)
				}
				continue
			}
		}
		n.startActor(a)
	}
	n.wg.Add(1)
	go n.peerLoop()
	n.wg.Add(1)
	go n.purgeLoop()
	n.wg.Add(1)
	go n.joinLinkedGroups()
	n.wg.Add(1)
	go n.rejoinRestoredGroups()
	// Deletions made before a crash or restart (their marks survive in
	// the store) are purged once now.
	n.requestPurge()
	return nil
}

func (n *Node) loadIdentity() error {
	name, err := n.db.Setting(settingName)
	nameErr := err
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A linked or restored device takes its account's name, saved
		// once the account is (loadAccount).
		if n.cfg.Name == "" && n.cfg.Link == "" && n.cfg.Restore == nil {
			return fmt.Errorf("node: no display name: run init with a name first")
		}
		name = []byte(n.cfg.Name)
	case err != nil:
		return fmt.Errorf("node: read name: %w", err)
	case n.cfg.Name != "" && n.cfg.Name != string(name):
		return &AlreadyNamedError{Name: string(name), Want: n.cfg.Name}
	}
	suite, err := n.cfg.CipherSuite.Suite()
	if err != nil {
		return err
	}
	n.suite = suite
	raw, err := n.db.Setting(settingSigKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		k, err := suite.GenerateSigningKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("node: generate signature key: %w", err)
		}
		// The suite is stored with the key: groups created later must use it.
		if err := n.db.SetSetting(settingSigKey, append([]byte{byte(n.cfg.CipherSuite >> 8), byte(n.cfg.CipherSuite)}, k.Bytes()...)); err != nil {
			return fmt.Errorf("node: save signature key: %w", err)
		}
		n.sig = k
	case err != nil:
		return fmt.Errorf("node: read signature key: %w", err)
	default:
		if len(raw) < 3 {
			return fmt.Errorf("node: stored signature key: %w", store.ErrCorrupt)
		}
		cs := mls.CipherSuite(uint16(raw[0])<<8 | uint16(raw[1]))
		if n.suite, err = cs.Suite(); err != nil {
			return fmt.Errorf("node: stored signature key suite: %w", err)
		}
		n.cfg.CipherSuite = cs
		if n.sig, err = n.suite.ParseSigningKey(raw[2:]); err != nil {
			return fmt.Errorf("node: stored signature key: %w", err)
		}
		clear(raw)
	}
	if n.self, err = n.loadAccount(string(name)); err != nil {
		return err
	}
	if n.self.Name != string(name) || errors.Is(nameErr, store.ErrNotFound) {
		if err := n.db.SetSetting(settingName, []byte(n.self.Name)); err != nil {
			return fmt.Errorf("node: save name: %w", err)
		}
	}
	n.selfID = n.self.marshal()
	return nil
}

// Close closes the network first (if the node opened it), so that peers
// see a disconnect rather than a leave, then stops every actor and
// background goroutine and closes the store.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	actors := make([]*groupActor, 0, len(n.groups)+len(n.leaving))
	for _, a := range n.groups {
		actors = append(actors, a)
	}
	for _, a := range n.leaving {
		actors = append(actors, a)
	}
	n.mu.Unlock()
	if n.cancel != nil {
		n.cancel()
	}
	var errs []error
	if n.net != nil && n.ownNet {
		errs = append(errs, n.net.Close())
	}
	for _, a := range actors {
		a.stop()
	}
	n.wg.Wait()
	n.mu.Lock()
	for ch := range n.subs {
		close(ch)
		delete(n.subs, ch)
	}
	n.mu.Unlock()
	if n.sig != nil {
		n.sig.Erase()
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	return errors.Join(errs...)
}

// PeerID is this device's libp2p peer ID.
func (n *Node) PeerID() peer.ID { return n.net.ID() }

// AddrInfo is how other devices reach this one.
func (n *Node) AddrInfo() peer.AddrInfo { return n.net.AddrInfo() }

// Connect dials a peer (tests and bootstrap without DHT).
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) error { return n.net.Connect(ctx, ai) }

func (n *Node) peerLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-n.net.Events():
			if !ok {
				return
			}
			n.emit(api.Event{Kind: api.EventPeers, Time: n.cfg.Clock.Now(), Detail: ev.Kind.String()})
			n.peerSeen(ev.Peer, ev.Kind == p2p.PeerConnected)
			switch ev.Kind {
			case p2p.PeerConnected:
				// A (re)connected member may hold what we missed (or,
				// for a group we are leaving, miss what we hold).
				for _, a := range n.allActors() {
					a.peerConnected(ev.Peer)
				}
			case p2p.PeerDisconnected:
				for _, a := range n.allActors() {
					a.peerDisconnected(ev.Peer)
				}
			}
		}
	}
}

// allActors lists the actors of listed groups and of groups being left.
func (n *Node) allActors() []*groupActor {
	out := n.actorList()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.leaving {
		out = append(out, a)
	}
	return out
}

// lookupServing finds the actor of group (a hex id), listed or being
// left: a device that has left a group still serves it until it is
// removed (leave.go).
func (n *Node) lookupServing(group string) (*groupActor, error) {
	n.mu.Lock()
	a, ok := n.leaving[strings.ToLower(group)]
	n.mu.Unlock()
	if ok {
		return a, nil
	}
	return n.lookup(group)
}

func (n *Node) actorList() []*groupActor {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*groupActor, 0, len(n.groups))
	for _, a := range n.groups {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].hexID < out[j].hexID })
	return out
}

// emit sends an event to every subscriber without blocking: a subscriber
// that does not keep up loses events rather than stalling the node.
func (n *Node) emit(ev api.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// lookup resolves a group by hex id, id prefix or name.
func (n *Node) lookup(group string) (*groupActor, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.groups[strings.ToLower(group)]; ok {
		return a, nil
	}
	var found []*groupActor
	for _, a := range n.groups {
		if a.name == group {
			found = append(found, a)
		}
	}
	if len(found) == 0 && len(group) >= 6 {
		for id, a := range n.groups {
			if strings.HasPrefix(id, strings.ToLower(group)) {
				found = append(found, a)
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, api.Errorf(api.CodeNotFound, "no group %q", group)
	case 1:
		return found[0], nil
	}
	return nil, api.Errorf(api.CodeInvalidArgument, "group name %q is ambiguous: use its id", group)
}

// ---- api.Service ----

// Status implements api.Service.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	ai := n.net.AddrInfo()
	addrs := make([]string, 0, len(ai.Addrs))
	for _, a := range ai.Addrs {
		addrs = append(addrs, a.String()+"/p2p/"+ai.ID.String())
	}
	n.mu.Lock()
	ng := len(n.groups)
	n.mu.Unlock()
	return api.Status{
		Name: n.self.Name, PeerID: n.net.ID().String(),
		Fingerprint: fingerprint(n.sig.PublicKey(), n.selfID),
		Addrs:       addrs, Groups: ng, Peers: len(n.net.Peers()),
		StartedAt: n.started, Version: Version,
		Device: n.self.deviceName(), Account: n.accountFingerprintNow(),
		ReceiptsOff: !n.receiptsOn(),
	}, nil
}

// Groups implements api.Service.
func (n *Node) Groups(ctx context.Context) ([]api.Group, error) {
	var out []api.Group
	for _, a := range n.actorList() {
		var g api.Group
		if err := a.do(ctx, func() error { g = a.info(); g.Reach = a.reachInfo(); return nil }); err != nil {
			continue
		}
		out = append(out, g)
	}
	return out, nil
}

// Send implements api.Service.
func (n *Node) Send(ctx context.Context, group, text string) (api.Message, error) {
	if err := api.CheckText(text); err != nil {
		return api.Message{}, err
	}
	a, err := n.lookup(group)
	if err != nil {
		return api.Message{}, err
	}
	var m api.Message
	var sent bool
	err = a.do(ctx, func() error {
		var err error
		m, err = a.send(text)
		sent = err == nil && !m.Pending
		// Accepted either way; the user is told it waits.
		m.Queued = err == nil && a.reachInfo().CutOff()
		return err
	})
	if err == nil && sent {
		// Published already; durable before we say so (groupActor.send).
		// (When ctx ends while the actor sends, nobody syncs here and
		// the count stays up: later sends then sync first, which is
		// only slower.)
		if err := a.syncSend(); err != nil {
			return api.Message{}, err
		}
	}
	return m, err
}

// Log implements api.Service.
func (n *Node) Log(ctx context.Context, group string, limit int) ([]api.Message, error) {
	a, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLogPage
	}
	all, err := n.db.Messages(a.id, time.Time{}, 1<<30)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "read log: %v", err)
	}
	if len(all) > limit {
		all = all[len(all)-limit:]
	}
	out := make([]api.Message, len(all))
	for i, m := range all {
		out[i] = n.apiMessage(a, m)
	}
	return out, nil
}

func (n *Node) apiMessage(a *groupActor, m store.Message) api.Message {
	out := api.Message{
		Group: a.hexID, ID: hex.EncodeToString(m.ID[:]), Text: m.Text, Time: m.Time, Epoch: m.Epoch,
		Orphaned: m.Flags&store.FlagOrphanedBranch != 0, Resent: m.Flags&store.FlagResent != 0,
	}
	if id, err := parseIdentity(m.Sender); err == nil {
		// Shown as the member list shows it, and with its tag when the
		// sender, no longer a member, has a name like a member's.
		out.Sender, out.SenderPeer = a.shown.name(m.Sender, id.Name), id.Peer.String()
		out.SenderDevice = id.deviceName()
	}
	// Our own messages are those sent under our credential identity (name
	// and peer id together), never merely from our peer id: a member that
	// forged a credential with our peer id must not pass as us.
	out.Own = bytes.Equal(m.Sender, n.selfID)
	out.BeforeJoined = a.beforeJoined(m.Time) // history.go
	if out.Own {
		if e, err := n.db.Outbox(a.id, m.ID); err == nil && e.State == store.OutboxPending {
			out.Pending = true
		}
	}
	n.decorate(a, &out, m)
	return out
}

// senderName is the name in a sender's credential, without the tag a
// look-alike name is shown with (apiMessage).
func senderName(identity []byte) string {
	id, err := parseIdentity(identity)
	if err != nil {
		return ""
	}
	return id.Name
}

// Search implements api.Service.
func (n *Node) Search(ctx context.Context, req api.SearchRequest) (api.SearchResult, error) {
	q := store.Query{Text: req.Query, From: req.Since, To: req.Until, Limit: req.Limit}
	if req.ByRecency {
		q.Order = store.OrderRecency
	}
	var byID map[string]*groupActor
	if req.Group != "" {
		a, err := n.lookup(req.Group)
		if err != nil {
			return api.SearchResult{}, err
		}
		q.Group = a.id
	}
	if req.Cursor != "" {
		c, err := hex.DecodeString(req.Cursor)
		if err != nil {
			return api.SearchResult{}, api.Errorf(api.CodeInvalidArgument, "bad cursor")
		}
		q.Cursor = c
	}
	byID = make(map[string]*groupActor)
	for _, a := range n.actorList() {
		byID[string(a.id)] = a
	}
	res, err := n.db.Search(ctx, q)
	if err != nil {
		if errors.Is(err, store.ErrEmptyQuery) {
			return api.SearchResult{}, api.Errorf(api.CodeInvalidArgument, "query has no searchable words")
		}
		return api.SearchResult{}, api.Errorf(api.CodeInvalidArgument, "search: %v", err)
	}
	var out api.SearchResult
	for _, h := range res.Hits {
		a := byID[string(h.Message.Group)]
		if a == nil {
			continue
		}
		m := n.apiMessage(a, h.Message)
		if req.Sender != "" && m.Sender != req.Sender && m.SenderPeer != req.Sender && senderName(h.Message.Sender) != req.Sender {
			continue
		}
		out.Hits = append(out.Hits, api.SearchHit{Message: m, Score: h.Score})
	}
	if len(res.Next) > 0 {
		out.Next = hex.EncodeToString(res.Next)
	}
	return out, nil
}

// Members implements api.Service.
func (n *Node) Members(ctx context.Context, group string) ([]api.Member, error) {
	a, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var out []api.Member
	err = a.do(ctx, func() error {
		if a.phase == phaseRemoved {
			return a.errRemoved() // an empty list would read as an empty group
		}
		out = a.members()
		return nil
	})
	return out, err
}

// Remove implements api.Service.
func (n *Node) Remove(ctx context.Context, group, member string) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	return a.do(ctx, func() error { return a.remove(member) })
}

// Rotate implements api.Service.
func (n *Node) Rotate(ctx context.Context, group string) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	return a.do(ctx, func() error { return a.queueIntent(&intent{kind: intentUpdate}) })
}

// Leave implements api.Service: it asks the group to remove this device (an
// intent a member allowed to commits), then deletes the group's data here.
func (n *Node) Leave(ctx context.Context, group string) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	// The last admin passes the role on first (see leave.go).
	if err := n.handOver(ctx, a); err != nil {
		return err
	}
	var wait bool
	if err := a.do(ctx, func() error {
		wait = a.othersRemain()
		return a.leave()
	}); err != nil {
		return err
	}
	if wait {
		return n.awaitRemoval(a)
	}
	n.mu.Lock()
	delete(n.groups, a.hexID)
	n.mu.Unlock()
	a.stop()
	n.releasePeers(a)
	return n.deleteGroupData(a)
}

// deleteGroupData deletes a stopped actor's group from the store: its
// data, the leaving mark, the unread count, the membership history (who
// was in the group goes with it) and the key rotation schedule in one
// batch, so that no crash leaves a
// mark of a group that is gone, then has the deleted secrets and plaintext
// purged from disk.
func (n *Node) deleteGroupData(a *groupActor) error {
	// Under unreadIO, so that no unread count written meanwhile outlives
	// the batch (see saveUnread).
	n.unreadIO.Lock()
	n.mu.Lock()
	delete(n.unread, a.hexID)
	delete(n.unreadDirty, a.hexID)
	n.mu.Unlock()
	err := n.db.DeleteGroup(a.id, leavingSetting(a.hexID), unreadSetting(a.hexID), membershipSetting(a.hexID), rotatedSetting(a.hexID),
		mutedSetting(a.hexID), joinedSetting(a.hexID), mentionsSetting(a.hexID), fileAccessSetting(a.hexID))
	n.unreadIO.Unlock()
	if err != nil {
		return api.Errorf(api.CodeInternal, "delete group data: %v", err)
	}
	n.dropGroupFiles(a) // files.go
	n.requestPurge()
	return nil
}

// requestPurge asks purgeLoop to purge deleted data from disk soon; it
// never blocks.
func (n *Node) requestPurge() {
	select {
	case n.purgeKick <- struct{}{}:
	default: // one is pending already: it covers this request too
	}
}

// purgeLoop makes deleted secrets and plaintext (finalised epoch states,
// left groups) unrecoverable from the database directory
// (store.DB.PurgeDeleted), at most once every Config.PurgeEvery: a purge
// flushes the memtable and compacts, which is too much work to do per
// finalised epoch, while requests that arrive meanwhile are served by one
// purge at the end of the interval. The interval is measured on the wall
// clock, not Config.Clock: it paces disk work, not protocol time. It stops
// when the node's context is cancelled (Close), before the store closes.
func (n *Node) purgeLoop() {
	defer n.wg.Done()
	var last time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.purgeKick:
		}
		if wait := n.cfg.PurgeEvery - time.Since(last); wait > 0 && !last.IsZero() {
			t := time.NewTimer(wait)
			select {
			case <-n.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		n.optimizeAfterEdits() // content.go: before the purge compacts
		if !n.db.PurgePending() {
			continue
		}
		last = time.Now()
		if err := n.db.PurgeDeleted(n.ctx); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			// The ranges stay queued in the store; the next request
			// retries them.
			n.log.Warn("purge deleted data", "err", err)
		}
	}
}

// Peers implements api.Service.
func (n *Node) Peers(ctx context.Context) ([]api.Peer, error) {
	known := make(map[peer.ID]api.Peer)
	for _, a := range n.actorList() {
		var ms []api.Member
		var name string
		if a.do(ctx, func() error { ms, name = a.members(), a.name; return nil }) != nil {
			continue
		}
		for _, m := range ms {
			id, err := peer.Decode(m.PeerID)
			if err != nil {
				continue
			}
			p := known[id]
			p.Name = m.Name
			p.Groups = append(p.Groups, name)
			known[id] = p
		}
	}
	// Hosts on real networks know the connections' addresses; MemNetwork
	// has none.
	addrs, _ := n.net.(interface {
		PeerAddrs(peer.ID) []ma.Multiaddr
	})
	var out []api.Peer
	for _, id := range n.net.Peers() {
		p := known[id]
		p.ID = id.String()
		p.Conns = n.peerConns(id)
		if addrs != nil {
			for _, a := range addrs.PeerAddrs(id) {
				p.Addrs = append(p.Addrs, a.String())
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Export implements api.Service.
func (n *Node) Export(ctx context.Context, group string, since time.Time, fn func(api.Message) error) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	// The view is read in one pass: history export is rare and bounded by
	// what this device holds.
	ms, err := n.db.Messages(a.id, since, 1<<30)
	if err != nil {
		return api.Errorf(api.CodeInternal, "read history: %v", err)
	}
	for _, m := range ms {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(n.apiMessage(a, m)); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe implements api.Service.
func (n *Node) Subscribe(ctx context.Context) (<-chan api.Event, error) {
	ch := make(chan api.Event, defaultSubscriberBuff)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, api.Errorf(api.CodeUnavailable, "node is closed")
	}
	n.subs[ch] = struct{}{}
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-ctx.Done():
		case <-n.ctx.Done():
			return // Close closes the channel.
		}
		n.mu.Lock()
		if _, ok := n.subs[ch]; ok {
			delete(n.subs, ch)
			close(ch)
		}
		n.mu.Unlock()
	}()
	return ch, nil
}
