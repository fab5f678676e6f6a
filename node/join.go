package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// pendingInvite is an invite this device issued and not yet redeemed.
type pendingInvite struct {
	group   string // hex id
	expires time.Time
	used    bool
	// redeemer is the MLS signature key of the device that redeemed the
	// code; that device (and only it) may redeem the code again: a join
	// that timed out on the joiner's side is retried with the same code.
	// Once its Welcome was written to the join stream (delivered), only
	// while the leaf that Welcome was for is unused (retryReplacesUnused):
	// the write does not prove the joiner read it.
	redeemer  []byte
	delivered bool
	// uses is how many devices may redeem the code (invite --uses); 0
	// and 1 mean one. used, redeemer and delivered describe the first;
	// more holds the others, each with the same retry rule.
	uses int
	more []redemption
	// dropped lists the redeemers whose latest attempt gave up before its
	// Welcome was handed over, so that the leaf it had was removed as
	// unused (abandonAdd, withdrawJoin), with our head epoch then. Such a
	// device never was in the group, and it may redeem the code again even
	// after its first Welcome was handed over (retryReplacesUnused): the
	// joiner SIGKILLed mid-join in the chaos runs of issue 17, refused for
	// good because the leaf was gone. A delivered Welcome clears the mark.
	dropped []droppedLeaf
}

// droppedLeaf records that a redeemer's unused leaf was dropped when its
// join gave up, at head epoch epoch.
type droppedLeaf struct {
	key   []byte // MLS signature key
	epoch uint64
}

// redemption is one device's redemption of a code usable several times.
type redemption struct {
	key       []byte // MLS signature key
	delivered bool
}

// pendingInviteVersion 2 added redeemer and delivered; version 1 records
// (used or not) still load. Version 3 (pendingInviteUses) adds uses and
// the further redemptions; a one-time code is still written as version 2.
// Version 4 (pendingInviteDropped) is version 3 (for any uses) followed by
// the dropped leaves, written only while there are any, so that older
// records and the common case keep their encoding.
const (
	pendingInviteVersion = 2
	pendingInviteUses    = 3
	pendingInviteDropped = 4
)

// droppedAt reports whether sigKey's leaf was dropped as unused after its
// join gave up, and at which head epoch.
func (p *pendingInvite) droppedAt(sigKey []byte) (uint64, bool) {
	for _, d := range p.dropped {
		if bytes.Equal(d.key, sigKey) {
			return d.epoch, true
		}
	}
	return 0, false
}

// undrop clears sigKey's dropped mark.
func (p *pendingInvite) undrop(sigKey []byte) {
	p.dropped = slices.DeleteFunc(p.dropped, func(d droppedLeaf) bool { return bytes.Equal(d.key, sigKey) })
}

// maxUses is how many devices may redeem pi.
func (p *pendingInvite) maxUses() int { return max(p.uses, 1) }

// redemptions counts the devices that redeemed pi.
func (p *pendingInvite) redemptions() int {
	if !p.used {
		return 0
	}
	return 1 + len(p.more)
}

// redeemedBy reports whether the device of sigKey redeemed pi, and if so
// whether its Welcome was handed over.
func (p *pendingInvite) redeemedBy(sigKey []byte) (found, delivered bool) {
	if p.used && bytes.Equal(p.redeemer, sigKey) {
		return true, p.delivered
	}
	for _, r := range p.more {
		if bytes.Equal(r.key, sigKey) {
			return true, r.delivered
		}
	}
	return false, false
}

// spent reports whether pi can only serve retries: every use redeemed
// and every Welcome handed over.
func (p *pendingInvite) spent() bool {
	if p.redemptions() < p.maxUses() || !p.delivered {
		return false
	}
	for _, r := range p.more {
		if !r.delivered {
			return false
		}
	}
	return true
}

func (p *pendingInvite) clone() *pendingInvite {
	c := *p
	c.more = slices.Clone(p.more)
	c.dropped = slices.Clone(p.dropped)
	return &c
}

func inviteSetting(secret [16]byte) string { return "invite." + hex.EncodeToString(secret[:]) }

func (p *pendingInvite) marshal() []byte {
	var w wbuf
	multi := p.uses > 1 || len(p.dropped) > 0
	switch {
	case len(p.dropped) > 0:
		w.u8(pendingInviteDropped)
	case multi:
		w.u8(pendingInviteUses)
	default:
		w.u8(pendingInviteVersion)
	}
	w.u8(boolByte(p.used))
	w.u64(uint64(p.expires.Unix()))
	w.vec([]byte(p.group))
	w.vec(p.redeemer)
	w.u8(boolByte(p.delivered))
	if multi {
		w.u64(uint64(p.maxUses()))
		w.u64(uint64(len(p.more)))
		for _, r := range p.more {
			w.vec(r.key)
			w.u8(boolByte(r.delivered))
		}
	}
	if len(p.dropped) > 0 {
		w.u64(uint64(len(p.dropped)))
		for _, d := range p.dropped {
			w.vec(d.key)
			w.u64(d.epoch)
		}
	}
	return w.b
}

// readBool reads a boolean byte: 0 or 1, nothing else (canonical, so that
// a record re-encodes to the same bytes).
func readBool(r *rbuf, what string) bool {
	switch r.u8(what) {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(what + " (not a boolean)")
	return false
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func unmarshalPendingInvite(data []byte) (*pendingInvite, error) {
	r := rbuf{b: data}
	v := r.u8("version")
	if r.err == nil && (v < 1 || v > pendingInviteDropped) {
		return nil, fmt.Errorf("%w: invite record version %d", ErrMalformed, v)
	}
	p := &pendingInvite{used: readBool(&r, "used")}
	p.expires = time.Unix(int64(r.u64("expires")), 0)
	p.group = string(r.vec(2*maxGroupID, "group"))
	if v >= pendingInviteVersion {
		p.redeemer = r.vec(maxSignatureKey, "redeemer")
		p.delivered = readBool(&r, "delivered")
	}
	if v >= pendingInviteUses {
		uses, more := r.u64("uses"), r.u64("redemptions")
		// Canonical: a one-time code is version 2 (or 4, with uses 1);
		// only redeemed codes list further redemptions, and never more
		// than the uses.
		least := uint64(2)
		if v == pendingInviteDropped {
			least = 1
		}
		if r.err == nil && (uses < least || uses > api.MaxInviteUses || more >= uses || (more > 0 && !p.used)) {
			r.fail("uses")
		}
		p.uses = int(uses)
		for i := uint64(0); i < more && r.err == nil; i++ {
			p.more = append(p.more, redemption{key: r.vec(maxSignatureKey, "redeemer"), delivered: readBool(&r, "delivered")})
		}
	}
	if v == pendingInviteDropped {
		// Canonical: at least one, each a redeemer of the code, once.
		n := r.u64("dropped")
		if r.err == nil && (n == 0 || n > uint64(p.redemptions())) {
			r.fail("dropped")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			d := droppedLeaf{key: r.vec(maxSignatureKey, "dropped key"), epoch: r.u64("dropped epoch")}
			if found, _ := p.redeemedBy(d.key); r.err == nil && !found {
				r.fail("dropped key (not a redeemer)")
			}
			if _, dup := p.droppedAt(d.key); r.err == nil && dup {
				r.fail("dropped key (twice)")
			}
			p.dropped = append(p.dropped, d)
		}
	}
	if err := r.done("invite record"); err != nil {
		return nil, err
	}
	return p, nil
}

// joinKeepalive is how often an inviter tells a waiting joiner that its
// Welcome is still coming (the Add's epoch is not final yet).
const joinKeepalive = 5 * time.Second

func (n *Node) newKeyPackage() (*mls.KeyPackageBundle, error) {
	now := n.cfg.Clock.Now()
	// not_before orders this device's KeyPackages (checkAdd): strictly
	// increasing, in whole seconds as the wire carries them.
	notBefore := now.Add(-time.Hour).Truncate(time.Second)
	n.mu.Lock()
	if !notBefore.After(n.lastNotBefore) {
		notBefore = n.lastNotBefore.Add(time.Second)
	}
	n.lastNotBefore = notBefore
	n.mu.Unlock()
	return mls.NewKeyPackage(&mls.KeyPackageParams{
		Suite: n.cfg.CipherSuite, Credential: mls.NewBasicCredential(n.selfID), SigningKey: n.sig,
		NotBefore: notBefore, NotAfter: now.Add(90 * 24 * time.Hour),
		Capabilities: mls.Capabilities{Extensions: groveExtensions},
		Rand:         rand.Reader,
	})
}

// CreateGroup implements api.Service.
func (n *Node) CreateGroup(ctx context.Context, name string) (api.Group, error) {
	if err := checkGroupName(name); err != nil {
		return api.Group{}, err
	}
	// One create at a time, so that two with the same name cannot both
	// pass the check.
	n.createMu.Lock()
	defer n.createMu.Unlock()
	if a := n.groupNamed(name); a != nil {
		return api.Group{}, api.Errorf(api.CodeConflict, "you already have a group named %q (id %s): choose another name", name, a.hexID)
	}
	kp, err := n.newKeyPackage()
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInternal, "key package: %v", err)
	}
	defer kp.Erase()
	pol := &policy{Admins: [][]byte{n.selfID}, RateLimit: uint8(n.cfg.CommitRate)}
	pol.Rotations = n.ownRotationsForPolicy() // accountrotate.go
	g, err := mls.CreateGroup(&mls.CreateParams{
		Suite: n.cfg.CipherSuite, Own: kp, Rand: rand.Reader, Now: n.cfg.Clock.Now(),
		Extensions: mls.Extensions{{Type: ExtensionPolicy, Data: pol.marshal()}, newGroupSecretExtension()},
		Config:     groupConfig(),
	})
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInternal, "create group: %v", err)
	}
	a, err := n.adoptGroup(g, name, commitorder.Genesis{})
	if err != nil {
		return api.Group{}, err
	}
	var out api.Group
	err = a.do(ctx, func() error { out = a.info(); return nil })
	return out, err
}

// adoptGroup persists a new group state (created or joined) and starts its
// actor.
func (n *Node) adoptGroup(g *mls.Group, name string, gen commitorder.Genesis) (*groupActor, error) {
	// Two ways into one group may finish at once (a join and a restored
	// device's own rejoin, accountjoin.go): one actor per group.
	n.dev.adoptMu.Lock()
	defer n.dev.adoptMu.Unlock()
	n.mu.Lock()
	_, exists := n.groups[hex.EncodeToString(g.GroupID())]
	n.mu.Unlock()
	if exists {
		return nil, api.Errorf(api.CodeConflict, "already a member of this group")
	}
	eid, err := epochID(g)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "%v", err)
	}
	gen.Eid, gen.Epoch, gen.Members, gen.Admins = eid, g.Epoch(), memberIDs(g), adminIDs(g)
	rate := DefaultCommitRate
	if p := groupPolicy(g); p.RateLimit > 0 {
		rate = int(p.RateLimit)
	}
	co, err := commitorder.New(n.coConfig(rate), commitorder.MemberID(n.selfID), gen, n.cfg.Clock.Now())
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "commit order: %v", err)
	}
	a := newActor(n, g.GroupID(), name, n.cfg.Clock.Now())
	a.co = co
	a.epochs[eid] = g
	if err := a.persist(eid); err != nil {
		return nil, api.Errorf(api.CodeInternal, "persist: %v", err)
	}
	a.saveOrder()
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, api.Errorf(api.CodeUnavailable, "node is closed")
	}
	n.startActor(a)
	return a, nil
}

// invite creates an invite code for group valid for life (the configured
// default when zero).
func (n *Node) invite(ctx context.Context, group string, life time.Duration, uses int) (api.Invite, error) {
	if life <= 0 {
		life = n.cfg.InviteExpiry
	}
	a, err := n.lookup(group)
	if err != nil {
		return api.Invite{}, err
	}
	// Any member may invite: a non-admin inviter has an admin commit the
	// Add (a join request, joinrequest.go).
	var removed error // read on the actor: it names the group, which a rename changes
	var stale bool
	if err := a.do(ctx, func() error {
		if a.phase == phaseRemoved {
			removed = a.errRemoved()
		}
		stale = a.phase == phaseRejoining
		return nil
	}); err != nil {
		return api.Invite{}, err
	}
	if removed != nil {
		return api.Invite{}, removed
	}
	if stale {
		return api.Invite{}, api.Errorf(api.CodeConflict, "this device's state of the group lost to the rest of the group beyond the retention window: leave and be invited again")
	}
	iv := &invite{Group: a.id, Expires: n.cfg.Clock.Now().Add(life).Truncate(time.Second), Peer: []byte(n.net.ID())}
	rand.Read(iv.Secret[:])
	for _, ad := range n.net.AddrInfo().Addrs {
		if len(iv.Addrs) < maxAddrs {
			iv.Addrs = append(iv.Addrs, ad.String())
		}
	}
	pi := &pendingInvite{group: a.hexID, expires: iv.Expires, uses: uses}
	// Persisted so that a code outlives a daemon restart.
	if err := n.db.SetSetting(inviteSetting(iv.Secret), pi.marshal()); err != nil {
		return api.Invite{}, api.Errorf(api.CodeInternal, "save invite: %v", err)
	}
	n.mu.Lock()
	n.invites[iv.Secret] = pi
	n.indexInvite(iv.Secret)
	n.mu.Unlock()
	return api.Invite{Code: iv.encode(), Group: a.hexID, Expires: iv.Expires, Uses: pi.maxUses()}, nil
}

// Join implements api.Service.
func (n *Node) Join(ctx context.Context, code string) (api.Group, error) {
	// A code copied off a screen where it wrapped carries line breaks
	// (grove chat's invite pane): no code contains whitespace.
	iv, err := decodeInvite(strings.Join(strings.Fields(code), ""))
	if err != nil {
		return api.Group{}, badInviteError(err)
	}
	if !n.cfg.Clock.Now().Before(iv.Expires) {
		return api.Group{}, api.Errorf(api.CodeInvalidArgument, "invite code expired at %s", iv.Expires.Format(time.RFC3339))
	}
	if a, err := n.lookup(hex.EncodeToString(iv.Group)); err == nil {
		var removed bool
		if err := a.do(ctx, func() error { removed = a.phase == phaseRemoved; return nil }); err != nil {
			return api.Group{}, err
		}
		if removed {
			// Its old history is still here; joining again would need it
			// gone first, and deleting it is the user's call.
			return api.Group{}, api.Errorf(api.CodeConflict, "this device was removed from group %q earlier: leave it first (which deletes its old history here), then join again", a.shownName())
		}
		return api.Group{}, api.Errorf(api.CodeConflict, "already a member of this group")
	}
	// Joining a group we have left but not yet seen our removal from: the
	// old copy goes now (the admin replaces our old leaf with the new one).
	if err := n.dropLeaving(hex.EncodeToString(iv.Group)); err != nil {
		return api.Group{}, err
	}
	pid, err := peer.IDFromBytes(iv.Peer)
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInvalidArgument, "invite code: bad peer id")
	}
	ai := peer.AddrInfo{ID: pid}
	for _, s := range iv.Addrs {
		if m, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	hexGroup := hex.EncodeToString(iv.Group)
	start := n.cfg.Clock.Now()
	progress := func(what string) {
		n.emit(api.Event{Kind: api.EventJoinProgress, Group: hexGroup, Time: n.cfg.Clock.Now(), Detail: what})
	}
	progress("connecting to the inviter's device")
	if err := n.net.Connect(ctx, ai); err != nil {
		n.log.Info("join: inviter not reachable", "err", err)
		return api.Group{}, errInviterUnreachable(iv.Addrs)
	}
	kp, err := n.newKeyPackage()
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInternal, "key package: %v", err)
	}
	defer kp.Erase()
	msg, err := mls.NewMLSMessage(&kp.KeyPackage)
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	kpBytes, err := msg.MarshalBinary()
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	s, err := n.net.OpenStream(ctx, pid, p2p.ProtocolJoin)
	if err != nil {
		n.log.Info("join: inviter not reachable", "err", err)
		return api.Group{}, errInviterUnreachable(iv.Addrs)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := s.Send((&joinRequest{Secret: iv.Secret, KeyPackage: kpBytes}).marshal()); err != nil {
		return api.Group{}, api.Errorf(api.CodeUnavailable, "send join request: %v", err)
	}
	progress("asked the inviter to add you")
	var resp *joinResponse
	lastWait := ""
	for {
		frame, err := s.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return api.Group{}, joinTimeout(lastWait)
			}
			n.log.Info("join: stream to the inviter ended", "err", err)
			if errors.Is(err, io.EOF) {
				return api.Group{}, api.Errorf(api.CodeUnavailable, "the inviter's device ended the join without an answer: run join again with the same code to retry")
			}
			return api.Group{}, api.Errorf(api.CodeUnavailable, "lost the connection to the inviter's device: run join again with the same code to retry")
		}
		resp, err = unmarshalJoinResponse(frame)
		if err != nil {
			return api.Group{}, api.Errorf(api.CodeUnavailable, "join: the inviter's answer: %v", err)
		}
		if resp.Status != joinWaiting {
			break
		}
		if resp.Reason != "" {
			lastWait = resp.Reason
		}
		what := lastWait
		if what == "" {
			what = "waiting to be added"
		}
		progress(fmt.Sprintf("%s (%d s)", what, int(n.cfg.Clock.Now().Sub(start).Seconds())))
	}
	if resp.Status == joinRejected || resp.Status == joinFailed {
		return api.Group{}, joinRefusal(resp)
	}
	g, err := mls.JoinFromWelcome(&mls.JoinParams{Welcome: resp.Welcome, KeyPackage: kp, Config: groupConfig(), Now: n.cfg.Clock.Now()})
	if err != nil {
		return api.Group{}, api.Errorf(api.CodeUnavailable, "welcome: %v", err)
	}
	if !bytes.Equal(g.GroupID(), iv.Group) {
		g.Erase()
		return api.Group{}, api.Errorf(api.CodeUnavailable, "welcome is for another group")
	}
	// The name the group's admins gave it, else the inviter's; unique on
	// this device (manage.go).
	name := groupPolicy(g).Name
	if name == "" {
		name = resp.Name
	}
	if name == "" {
		name = hex.EncodeToString(iv.Group[:4])
	}
	a, err := n.adoptGroup(g, n.uniqueName(name), commitorder.Genesis{})
	if err != nil {
		return api.Group{}, err
	}
	a.post(func() { a.setJoined(n.cfg.Clock.Now()) })
	n.fetchMemberHistory(a, pid) // history.go
	n.emit(api.Event{Kind: api.EventGroupJoined, Group: a.hexID, Time: n.cfg.Clock.Now()})
	var out api.Group
	err = a.do(ctx, func() error { out = a.info(); return nil })
	return out, err
}

// errInviterUnreachable is Join's error when the inviter's device cannot
// be dialled. The dialler's own error (a list of per-address libp2p
// failures) goes to the log: it says nothing the user can act on.
func errInviterUnreachable(addrs []string) error {
	where := "(the invite lists no address)"
	if len(addrs) > 0 {
		where = strings.Join(addrs, ", ")
	}
	return api.Errorf(api.CodeUnavailable, "could not reach the inviter's device at %s: is its daemon running and reachable?", where)
}

// joinTimeout is Join's error when its deadline passes while the inviter
// still waits; lastWait is what it last said it waits for.
func joinTimeout(lastWait string) error {
	switch lastWait {
	case joinWaitNoAdmin:
		return api.Errorf(api.CodeTimeout, "no admin of the group was online to add you (the inviter is not an admin): run join again with the same code once an admin is online")
	case joinWaitAdmin:
		return api.Errorf(api.CodeTimeout, "no admin of the group added you before the deadline (the inviter is not an admin): run join again with the same code to retry")
	}
	return api.Errorf(api.CodeTimeout, "not welcomed before the deadline: run join again with the same code to retry")
}

// joinRefusal is Join's error for a rejection or failure from the inviter.
func joinRefusal(resp *joinResponse) error {
	switch resp.Code {
	case joinReasonInviterLeaving:
		return api.Errorf(api.CodeUnavailable, "the inviter is leaving or being removed from the group: ask another member for an invite")
	case joinReasonNoAdmin:
		return api.Errorf(api.CodeUnavailable, "no admin of the group answered (the inviter is not an admin): run join again with the same code once an admin is online")
	case joinReasonRateLimited:
		return api.Errorf(api.CodeUnavailable, "the inviter is turning join attempts away for now (too many): wait a minute, then run join again with the same code")
	}
	if resp.Status == joinRejected {
		return api.Errorf(api.CodeForbidden, "invite refused: %s", resp.Reason)
	}
	return api.Errorf(api.CodeUnavailable, "the inviter could not add this device: %s", resp.Reason)
}

// inviterGone reports whether this device has left the group, or a Commit
// removing it is known: it can no longer add anyone.
func (a *groupActor) inviterGone() bool {
	eid, _ := a.head()
	_, removing := a.selfRemove[eid]
	return a.phase == phaseRemoved || a.leaving || removing
}

// joinWait says what an inviter waits for while its joiner waits: its own
// Commit (an admin), or an admin's, and whether one is connected.
func (a *groupActor) joinWait(admin bool) string {
	if admin {
		return joinWaitInviter
	}
	_, g := a.head()
	if g == nil {
		return joinWaitAdmin
	}
	connected := map[peer.ID]bool{}
	for _, p := range a.n.net.Peers() {
		connected[p] = true
	}
	for _, ad := range groupPolicy(g).Admins {
		if id, err := parseIdentity(ad); err == nil && connected[id.Peer] {
			return joinWaitAdmin
		}
	}
	return joinWaitNoAdmin
}

// serveJoin is the inviter's side of /grove/join/1.
func (n *Node) serveJoin(ctx context.Context, s p2p.Stream) {
	reject := func(st joinStatus, reason string) {
		s.Send((&joinResponse{Status: st, Reason: reason}).marshal())
		s.CloseWrite()
	}
	gone := func() {
		s.Send((&joinResponse{Status: joinFailed, Reason: "the inviter is leaving or being removed from the group", Code: joinReasonInviterLeaving}).marshal())
		s.CloseWrite()
	}
	frame, err := s.Recv()
	if err != nil {
		s.Reset()
		return
	}
	req, err := unmarshalJoinRequest(frame)
	if err != nil {
		reject(joinRejected, "malformed request")
		return
	}
	m, err := mls.UnmarshalMLSMessage(req.KeyPackage)
	if err != nil || m.WireFormat != mls.WireFormatKeyPackage {
		reject(joinFailed, "not a key package")
		return
	}
	// The credential must name the peer that presents it: members serve
	// history by peer ID.
	id, err := parseIdentity(m.KeyPackage.LeafNode.Credential.Identity)
	if err != nil || id.Peer != s.RemotePeer() {
		reject(joinFailed, "credential does not match the connecting peer")
		return
	}
	sigKey := m.KeyPackage.LeafNode.SignatureKey
	pi, spent, why := n.redeemInvite(req.Secret, sigKey)
	if why != "" {
		n.log.Info("join refused", "peer", s.RemotePeer(), "reason", why)
		reject(joinRejected, why)
		return
	}
	dropped := n.inviteDropped(req.Secret, sigKey)
	a, err := n.lookup(pi.group)
	if err != nil {
		n.mu.Lock()
		_, leaving := n.leaving[pi.group]
		n.mu.Unlock()
		if leaving {
			gone()
			return
		}
		reject(joinFailed, "group no longer here")
		return
	}
	// An admin commits the Add itself; any other member asks the admins
	// with a join request and relays their Welcome (joinrequest.go).
	var results <-chan joinResult
	var gaveUp bool
	it := &intent{kind: intentAdd, kp: m.KeyPackage, join: make(chan joinResult, 1)}
	var admin, isGone, refused bool
	err = a.do(ctx, func() error {
		if isGone = a.inviterGone(); isGone {
			return a.errRemoved()
		}
		if err := a.validateKeyPackage(m.KeyPackage); err != nil {
			return fmt.Errorf("invalid key package: %w", err)
		}
		if spent && !retryReplacesUnused(a, m.KeyPackage, dropped) {
			refused = true
			return errInviteUsed
		}
		if _, g := a.head(); g != nil {
			if why := addConflict(g, m.KeyPackage, nil); why != "" {
				return errors.New(why)
			}
		}
		if admin = a.isAdmin(); admin {
			return a.queueIntent(it)
		}
		return nil
	})
	switch {
	case isGone:
		gone()
		return
	case refused:
		n.log.Info("join refused", "peer", s.RemotePeer(), "reason", "welcome handed over and the leaf it added is gone or in use")
		reject(joinRejected, errInviteUsed.Error())
		return
	case err != nil:
		reject(joinFailed, "cannot add: "+err.Error())
		return
	case admin:
		results = it.join
	default:
		ch, stop, err := n.requestJoin(ctx, a, req.KeyPackage)
		if err != nil {
			reject(joinFailed, "cannot ask the group's admins: "+err.Error())
			return
		}
		defer func() { stop(gaveUp) }()
		results = ch
	}
	// The joiner gave up before its Welcome: the Add it asked for must
	// not leave a leaf that nobody will use (abandonAdd, withdrawJoin).
	// The device never got into the group, so the code stays usable for
	// its retry even if an earlier Welcome was handed over (inviteDrop).
	giveUp := func() {
		var epoch uint64
		err := a.do(ctx, func() error {
			// Before the drop: abandonAdd may commit it at once.
			if _, hg := a.head(); hg != nil {
				epoch = hg.Epoch()
			}
			if admin {
				a.abandonAdd(it)
			}
			return nil
		})
		if !admin {
			gaveUp = true
		}
		if err == nil {
			n.inviteDrop(req.Secret, sigKey, epoch)
		}
	}
	tick := time.NewTicker(joinKeepalive)
	defer tick.Stop()
	for {
		select {
		case res := <-results:
			if res.err != nil {
				var left bool
				if a.do(ctx, func() error { left = a.inviterGone(); return nil }) == nil && left {
					gone()
					return
				}
				reject(joinFailed, res.err.Error())
				return
			}
			if err := s.Send((&joinResponse{Status: joinOK, Welcome: res.welcome, Name: a.shownName()}).marshal()); err != nil {
				giveUp()
			} else {
				n.inviteDelivered(req.Secret, sigKey)
			}
			s.CloseWrite()
			return
		case <-tick.C:
			var wait string
			var left bool
			if a.do(ctx, func() error { wait, left = a.joinWait(admin), a.inviterGone(); return nil }) == nil && left {
				giveUp()
				gone()
				return
			}
			if err := s.Send((&joinResponse{Status: joinWaiting, Reason: wait}).marshal()); err != nil {
				giveUp()
				return
			}
		case <-ctx.Done():
			s.Reset()
			return
		}
	}
}

// maxSignatureKey bounds a stored signature public key.
const maxSignatureKey = 256

// errInviteUsed is the refusal of a code another device redeemed, or
// whose Welcome its device got and used.
var errInviteUsed = errors.New("invite code already used")

// redeemInvite checks an invite secret presented with a KeyPackage signed
// by sigKey and marks the invite used by that key. It returns why the
// invite is refused, or "". A used code is accepted again only from the
// device that first redeemed it: a joiner whose wait timed out retries with
// the same code (the inviter then replaces the leaf its first attempt
// added, see staleLeaf). Once the Welcome was handed over (written to the
// join stream) the retry is accepted with spent set: the caller must still
// check, against the group, that the leaf that Welcome was for is unused
// (retryReplacesUnused), since a successful write does not mean the joiner
// read it (the link may have died with the frame in flight).
func (n *Node) redeemInvite(secret [16]byte, sigKey []byte) (pi *pendingInvite, spent bool, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pi = n.invites[secret]
	if pi == nil {
		if raw, err := n.db.Setting(inviteSetting(secret)); err == nil {
			pi, _ = unmarshalPendingInvite(raw)
			if pi != nil {
				n.invites[secret] = pi
			}
		}
	}
	switch {
	case pi == nil:
		return nil, false, "unknown invite code"
	case !n.cfg.Clock.Now().Before(pi.expires):
		return nil, false, "invite code expired"
	}
	if found, delivered := pi.redeemedBy(sigKey); found {
		// Same device, nothing to record.
		return pi, delivered, ""
	}
	if pi.redemptions() >= pi.maxUses() {
		return nil, false, errInviteUsed.Error()
	}
	prev := pi.clone()
	// One use taken, whatever happens next.
	if !pi.used {
		pi.used, pi.redeemer = true, bytes.Clone(sigKey)
	} else {
		pi.more = append(pi.more, redemption{key: bytes.Clone(sigKey)})
	}
	if err := n.db.SetSetting(inviteSetting(secret), pi.marshal()); err != nil {
		*pi = *prev
		return nil, false, "internal error"
	}
	return pi, false, ""
}

// retryReplacesUnused reports whether the redeemer of a code whose Welcome
// was handed over may use it again with kp. Either the group's head still
// holds a leaf of kp's signature key that was never used (still the leaf
// of an older KeyPackage, not committed from: checkAdd's addReplaces), so
// that the retry's Add replaces it rather than adding the device a second
// time; or the head holds no leaf of that key because we dropped it as
// unused when the device's later attempt gave up (dropped, see
// inviteDrop), and the device has not been added since. Why this is safe:
//   - Only the holder of the signature key can sign kp, and the code's
//     redeemer is that key (redeemInvite), so no other device gets in.
//   - A device that read its Welcome and committed since has a leaf of
//     source commit or update: refused, the code is spent for it.
//   - A device removed since (by an admin, or by its own leave) has no
//     leaf: refused, so an old code cannot undo a removal. Nor while its
//     removal is queued here (the retry would race it). A dropped mark
//     does not change that: a drop happens only on a later attempt of the
//     device's own, which it makes only while not a member, and once the
//     device was added again after the drop (membership history, with a
//     span that starts after the epoch the drop was recorded at plus the
//     one a still unsettled Add could create) the mark counts for nothing.
//   - A device that did read its Welcome but never committed still has a
//     KeyPackage leaf, and its retry replaces that working leaf. Only the
//     device itself can ask for that (it must hold the key, and its Join
//     refuses while it is a member), so it harms nobody but the asker, and
//     the group's membership is the same before and after: that device.
//
// Without this a lost Welcome stranded the joiner (the code refused,
// fresh codes needed) and left the unused leaf in the group for good.
func retryReplacesUnused(a *groupActor, kp *mls.KeyPackage, dropped droppedMark) bool {
	_, g := a.head()
	if g == nil {
		return false
	}
	id := kp.LeafNode.Credential.Identity
	switch _, c := checkAdd(g, kp); c {
	case addReplaces:
	case addNew:
		mi, err := parseIdentity(id)
		if err != nil || !dropped.ok || a.membership().addedAfter(mi.Peer, dropped.epoch+1) {
			return false
		}
	default:
		return false
	}
	for _, it := range a.intents {
		if (it.kind == intentLeave || it.kind == intentRemove) && bytes.Equal(it.target, id) {
			return false
		}
	}
	return true
}

// droppedMark is a redeemer's dropped leaf as retryReplacesUnused needs
// it: whether there is one, and the head epoch it was recorded at.
type droppedMark struct {
	ok    bool
	epoch uint64
}

// inviteDropped returns sigKey's dropped mark on the invite of secret.
func (n *Node) inviteDropped(secret [16]byte, sigKey []byte) droppedMark {
	n.mu.Lock()
	defer n.mu.Unlock()
	pi := n.loadInvite(secret)
	if pi == nil {
		return droppedMark{}
	}
	e, ok := pi.droppedAt(sigKey)
	return droppedMark{ok: ok, epoch: e}
}

// inviteDrop records that the redeemer sigKey gave up waiting for its
// Welcome at head epoch epoch, so that the leaf its attempt added (if
// any) is removed as unused: it may redeem the code again
// (retryReplacesUnused).
func (n *Node) inviteDrop(secret [16]byte, sigKey []byte, epoch uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pi := n.invites[secret]
	if pi == nil {
		return
	}
	if found, _ := pi.redeemedBy(sigKey); !found {
		return
	}
	pi.undrop(sigKey)
	pi.dropped = append(pi.dropped, droppedLeaf{key: bytes.Clone(sigKey), epoch: epoch})
	if err := n.db.SetSetting(inviteSetting(secret), pi.marshal()); err != nil {
		n.log.Warn("save invite", "err", err)
	}
}

// inviteDelivered records that an invite's Welcome was handed over, which
// limits the redeemer's retries with the same code to replacing its
// unused leaf (retryReplacesUnused).
func (n *Node) inviteDelivered(secret [16]byte, sigKey []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pi := n.invites[secret]
	if pi == nil {
		return
	}
	if pi.used && bytes.Equal(pi.redeemer, sigKey) {
		pi.delivered = true
	}
	for i := range pi.more {
		if bytes.Equal(pi.more[i].key, sigKey) {
			pi.more[i].delivered = true
		}
	}
	// This Welcome's leaf is the device's now, used or not.
	pi.undrop(sigKey)
	if err := n.db.SetSetting(inviteSetting(secret), pi.marshal()); err != nil {
		n.log.Warn("save invite", "err", err)
	}
}

// addCheck says how an Add of a KeyPackage relates to the tree.
type addCheck int

const (
	addNew      addCheck = iota // no leaf has its signature key
	addReplaces                 // replace the leaf of the device's earlier attempt
	addObsolete                 // the device already has a newer (or this) leaf
)

// checkAdd looks for a leaf with the KeyPackage's signature key. RFC 9420
// (Section 7.3) forbids two leaves with one signature key, so an Add for a
// device whose earlier join attempt left a leaf behind (it gave up before
// its Welcome) must remove that leaf in the same Commit (Removes apply
// before Adds, RFC 9420, Section 12.3). A leaf is replaced only if its
// device never used it (it is still the KeyPackage leaf) and came from an
// older KeyPackage (earlier not_before; newKeyPackage makes them strictly
// increasing): a join request that arrives late, after the device's newer
// attempt is in, must not evict the member. Only the key's holder can sign
// the KeyPackage, so nobody can evict another member this way; our own
// leaf is never replaced (a Commit cannot remove its committer).
func checkAdd(g *mls.Group, kp *mls.KeyPackage) (mls.LeafIndex, addCheck) {
	for _, m := range g.Members() {
		if !bytes.Equal(m.SignatureKey, kp.LeafNode.SignatureKey) {
			continue
		}
		ln := g.Tree().LeafNode(m.Leaf)
		if m.Leaf != g.OwnLeaf() && ln != nil && ln.Source == mls.LeafNodeSourceKeyPackage &&
			ln.Lifetime.NotBefore < kp.LeafNode.Lifetime.NotBefore {
			return m.Leaf, addReplaces
		}
		return m.Leaf, addObsolete
	}
	return 0, addNew
}

// welcomeEarly hands the Welcomes of our Commit cid over at once, before
// its parent is final, when no rival Commit on that parent can exist: every
// other member of the parent is an unused leaf of a joiner that gave up,
// which this Commit removes (such a leaf has no group state, so it cannot
// commit). This is the two-person group whose joiner lost the first
// Welcome: waiting for the parent's finality would wait for the joiner to
// act, which it can only do once welcomed.
func (a *groupActor) welcomeEarly(parent *mls.Group, stale map[mls.LeafIndex]bool, cid commitorder.CommitID) {
	if len(stale) == 0 {
		return
	}
	for _, m := range parent.Members() {
		if m.Leaf != parent.OwnLeaf() && !stale[m.Leaf] {
			return
		}
	}
	oc := a.own[cid]
	if oc == nil || oc.welcome == nil {
		return
	}
	for _, id := range oc.intents {
		if it := a.intents[id]; it != nil && it.join != nil {
			it.join <- joinResult{welcome: oc.welcome}
			delete(a.intents, id)
		}
	}
}

// intentDropLeaf is a local intent: remove the leaf an abandoned join
// added (kp's leaf), if it is still there unused.
const intentDropLeaf intentKind = 13

// abandonAdd is called when the joiner of an Add we queued gave up before
// it was welcomed. An Add not yet committed is dropped. A committed one
// left a leaf that nobody will ever use, and such a leaf costs the group
// for good: every epoch it is in can only become final by age, never by
// all members acting on it, so later joiners wait minutes for their
// Welcome. So its removal is queued (a retry of the joiner would replace
// it anyway, checkAdd), and the Add is marked abandoned: if its Commit
// loses to a sibling (a fork after a partition), commitorder hands the
// intent back, and adding it again would leave the leaf behind after the
// removal had found nothing to remove (chaos seed 77 with 60 s faults: a
// re-invited member's join timed out and the group kept its leaf).
func (a *groupActor) abandonAdd(it *intent) {
	if a.phase == phaseRemoved {
		return
	}
	if _, queued := a.intents[it.id]; queued && !a.carried(it.id) {
		delete(a.intents, it.id)
		return
	}
	if q := a.intents[it.id]; q != nil {
		q.abandoned = true
	}
	a.queueIntent(&intent{kind: intentDropLeaf, kp: it.kp})
}

// unusedLeaf finds kp's own leaf in g while its holder never used it (it
// has not committed since being added: the leaf is still kp's).
func unusedLeaf(g *mls.Group, kp *mls.KeyPackage) (mls.LeafIndex, bool) {
	for _, m := range g.Members() {
		if bytes.Equal(m.EncryptionKey, kp.LeafNode.EncryptionKey) && m.Leaf != g.OwnLeaf() {
			if ln := g.Tree().LeafNode(m.Leaf); ln != nil && ln.Source == mls.LeafNodeSourceKeyPackage {
				return m.Leaf, true
			}
		}
	}
	return 0, false
}

// errNotMember is returned to sync requesters outside the group.
var errNotMember = fmt.Errorf("node: sync refused: not a member")

// addedAfter reports whether p was added to the group in an epoch after
// epoch, by the membership history this device kept (removalsync.go).
func (h *membershipHistory) addedAfter(p peer.ID, epoch uint64) bool {
	return slices.ContainsFunc(h.spans, func(s membershipSpan) bool { return s.Peer == p && s.First > epoch })
}
