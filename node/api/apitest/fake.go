// Package apitest provides Fake, a deterministic in-memory api.Service for
// testing the local API transport and its clients (the grove CLI, UIs)
// without a daemon. It models one device's view of its groups well enough to
// exercise every method and every error code; it is not a messenger: there
// is no network, no encryption and no second device.
package apitest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"grove/node/api"
)

// Epoch0 is the fake clock's start; every change advances it by a second.
var Epoch0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Fake is a deterministic api.Service. The zero value is not usable; call
// New.
type Fake struct {
	mu       sync.Mutex
	self     api.Member
	clock    time.Time
	seq      int
	groups   []*fakeGroup              // in creation order
	invites  map[string]api.InviteInfo // by code
	joinable map[string]string         // invite code -> group name for Join
	peers    []api.Peer
	errs     map[string]error
	subs     map[int]chan api.Event
	nextSub  int
	// JoinBlocks makes Join wait until its context ends, as a daemon does
	// while no inviter answers.
	joinBlocks bool
	// changesStuck: requested changes never get committed.
	changesStuck bool
	changes      map[string]api.Change
}

type fakeGroup struct {
	id       string
	name     string
	epoch    uint64
	admin    bool
	members  []api.Member
	messages []api.Message
	unread   int
	reach    api.Reach
	muted    bool
}

var _ api.Service = (*Fake)(nil)

// New returns a Fake for a device called name.
func New(name string) *Fake {
	return &Fake{
		self: api.Member{
			Name:        name,
			PeerID:      "12D3KooW" + strings.Repeat("A", 8) + name,
			Fingerprint: Fingerprint(name),
			Admin:       true,
			Self:        true,
		},
		clock:    Epoch0,
		invites:  make(map[string]api.InviteInfo),
		joinable: make(map[string]string),
		errs:     make(map[string]error),
		subs:     make(map[int]chan api.Event),
	}
}

// Fingerprint is the fake safety fingerprint of a member called name.
func Fingerprint(name string) string {
	var sum uint32 = 2166136261
	for _, b := range []byte(name) {
		sum = (sum ^ uint32(b)) * 16777619
	}
	return fmt.Sprintf("%05d %05d %05d", sum%100000, (sum/7)%100000, (sum/13)%100000)
}

// SetError makes every later call of method (the Service method name, e.g.
// "Send") fail with err; nil clears it.
func (f *Fake) SetError(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, method)
	} else {
		f.errs[method] = err
	}
}

// SetJoinBlocks makes Join wait for its context instead of answering.
func (f *Fake) SetJoinBlocks(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joinBlocks = b
}

// AddJoinable makes Join(code) succeed once, joining a group named name.
func (f *Fake) AddJoinable(code, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joinable[code] = name
}

// SetReach sets what Groups reports as group's reach; a cut-off group's
// sends are Queued.
func (f *Fake) SetReach(group string, r api.Reach) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.group(group)
	if err != nil {
		return err
	}
	g.reach = r
	return nil
}

// SetChangesStuck makes requested changes stay requested (as while no
// member confirms them) instead of being done at once.
func (f *Fake) SetChangesStuck(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changesStuck = b
}

// SetPeers sets what Peers returns.
func (f *Fake) SetPeers(ps []api.Peer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = slices.Clone(ps)
}

// AddMember adds a member to group as if it had joined; admin marks it an
// admin. It returns an error if the group does not exist.
func (f *Fake) AddMember(group, name string, admin bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.group(group)
	if err != nil {
		return err
	}
	m := api.Member{Name: name, PeerID: "12D3KooW" + strings.Repeat("B", 8) + name, Fingerprint: Fingerprint(name),
		Leaf: uint32(len(g.members)), Admin: admin}
	g.members = append(g.members, m)
	f.emit(api.Event{Kind: api.EventMemberAdded, Group: g.id, Member: &m})
	return nil
}

// Receive adds a message from another member to group's view.
func (f *Fake) Receive(group, sender, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.group(group)
	if err != nil {
		return err
	}
	f.addMessage(g, sender, "12D3KooW"+strings.Repeat("B", 8)+sender, text, false)
	return nil
}

// SetAdmin sets whether this device is an admin of group.
func (f *Fake) SetAdmin(group string, admin bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.group(group)
	if err != nil {
		return err
	}
	g.admin = admin
	g.members[0].Admin = admin
	return nil
}

// Subscribers reports how many subscriptions are live, so tests can check
// that cancelled subscriptions end on the service side.
func (f *Fake) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// tick advances the fake clock. Callers hold mu.
func (f *Fake) tick() time.Time {
	f.clock = f.clock.Add(time.Second)
	return f.clock
}

// injected returns the error set for method. Callers hold mu.
func (f *Fake) injected(method string) error { return f.errs[method] }

// group resolves a group by name or id. Callers hold mu.
func (f *Fake) group(ref string) (*fakeGroup, error) {
	if ref == "" {
		return nil, api.Errorf(api.CodeInvalidArgument, "group name required")
	}
	for _, g := range f.groups {
		if g.id == ref || g.name == ref {
			return g, nil
		}
	}
	return nil, api.Errorf(api.CodeNotFound, "no group %q", ref)
}

func (f *Fake) groupInfo(g *fakeGroup) api.Group {
	return api.Group{ID: g.id, Name: g.name, Epoch: g.epoch, EpochID: fmt.Sprintf("%016x", g.epoch*0x9e3779b97f4a7c15),
		Members: len(g.members), Admin: g.admin, Unread: g.unread, State: api.GroupActive, Reach: g.reach, Muted: g.muted}
}

// emit delivers ev to every subscriber that has room. Callers hold mu.
func (f *Fake) emit(ev api.Event) {
	ev.Time = f.clock
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *Fake) addMessage(g *fakeGroup, sender, peer, text string, own bool) api.Message {
	f.seq++
	m := api.Message{Group: g.id, ID: fmt.Sprintf("%032x", f.seq), Sender: sender, SenderPeer: peer,
		Text: text, Time: f.tick(), Epoch: g.epoch, Own: own}
	g.messages = append(g.messages, m)
	if !own {
		g.unread++
	}
	f.emit(api.Event{Kind: api.EventMessage, Group: g.id, Message: &m})
	return m
}

func (f *Fake) Status(ctx context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Status"); err != nil {
		return api.Status{}, err
	}
	return api.Status{Name: f.self.Name, PeerID: f.self.PeerID, Fingerprint: f.self.Fingerprint,
		Addrs:  []string{"/ip4/127.0.0.1/tcp/4001"},
		Groups: len(f.groups), Peers: len(f.peers), StartedAt: Epoch0, Version: "test"}, nil
}

func (f *Fake) CreateGroup(ctx context.Context, name string) (api.Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("CreateGroup"); err != nil {
		return api.Group{}, err
	}
	if name == "" {
		return api.Group{}, api.Errorf(api.CodeInvalidArgument, "group name required")
	}
	if _, err := f.group(name); err == nil {
		return api.Group{}, api.Errorf(api.CodeConflict, "a group named %q exists", name)
	}
	f.seq++
	self := f.self
	g := &fakeGroup{id: fmt.Sprintf("%032x", 0xab00+f.seq), name: name, admin: true, members: []api.Member{self}}
	f.groups = append(f.groups, g)
	f.tick()
	return f.groupInfo(g), nil
}

func (f *Fake) Groups(ctx context.Context) ([]api.Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Groups"); err != nil {
		return nil, err
	}
	var out []api.Group
	for _, g := range f.groups {
		out = append(out, f.groupInfo(g))
	}
	return out, nil
}

func (f *Fake) Invite(ctx context.Context, group string) (api.Invite, error) {
	return f.InviteWith(ctx, api.InviteRequest{Group: group})
}

// InviteWith is Invite with a chosen lifetime.
func (f *Fake) InviteWith(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Invite"); err != nil {
		return api.Invite{}, err
	}
	g, err := f.group(req.Group)
	if err != nil {
		return api.Invite{}, err
	}
	if !g.admin {
		return api.Invite{}, api.Errorf(api.CodeForbidden, "only admins may invite")
	}
	f.seq++
	code := fmt.Sprintf("grove1-%s-%04d", g.name, f.seq)
	life := req.Expires
	if life == 0 {
		life = 24 * time.Hour
	}
	inv := api.Invite{Code: code, Group: g.id, Expires: f.tick().Add(life)}
	f.invites[code] = api.InviteInfo{ID: fmt.Sprintf("%08x", f.seq), Group: g.id, Expires: inv.Expires}
	return inv, nil
}

// Invites lists the codes issued and not revoked, oldest first.
func (f *Fake) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Invites"); err != nil {
		return nil, err
	}
	var out []api.InviteInfo
	for _, inv := range f.invites {
		out = append(out, inv)
	}
	slices.SortFunc(out, func(a, b api.InviteInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// RevokeInvite forgets the code with the given id.
func (f *Fake) RevokeInvite(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("RevokeInvite"); err != nil {
		return err
	}
	for code, inv := range f.invites {
		if inv.ID == id {
			delete(f.invites, code)
			return nil
		}
	}
	return api.Errorf(api.CodeNotFound, "no invite %q", id)
}

func (f *Fake) Join(ctx context.Context, code string) (api.Group, error) {
	f.mu.Lock()
	if err := f.injected("Join"); err != nil {
		f.mu.Unlock()
		return api.Group{}, err
	}
	if f.joinBlocks {
		f.mu.Unlock()
		<-ctx.Done()
		return api.Group{}, api.Errorf(api.CodeTimeout, "no answer from the inviter: %v", ctx.Err())
	}
	defer f.mu.Unlock()
	name, ok := f.joinable[code]
	if !ok {
		return api.Group{}, api.Errorf(api.CodeInvalidArgument, "invalid or used invite code")
	}
	delete(f.joinable, code)
	f.seq++
	g := &fakeGroup{id: fmt.Sprintf("%032x", 0xcd00+f.seq), name: name, epoch: 1,
		members: []api.Member{{Name: "inviter", PeerID: "12D3KooWinviter", Fingerprint: Fingerprint("inviter"), Admin: true}}}
	self := f.self
	self.Admin = false
	self.Leaf = 1
	g.members = append(g.members, self)
	g.members[0], g.members[1] = g.members[1], g.members[0] // self first, as in created groups
	f.groups = append(f.groups, g)
	f.tick()
	f.emit(api.Event{Kind: api.EventGroupJoined, Group: g.id})
	return f.groupInfo(g), nil
}

func (f *Fake) Send(ctx context.Context, group, text string) (api.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Send"); err != nil {
		return api.Message{}, err
	}
	g, err := f.group(group)
	if err != nil {
		return api.Message{}, err
	}
	if err := api.CheckText(text); err != nil {
		return api.Message{}, err
	}
	m := f.addMessage(g, f.self.Name, f.self.PeerID, text, true)
	if g.reach.CutOff() {
		m.Queued = true
		g.reach.Waiting++
	}
	return m, nil
}

func (f *Fake) Log(ctx context.Context, group string, limit int) ([]api.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Log"); err != nil {
		return nil, err
	}
	g, err := f.group(group)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	ms := g.messages
	if len(ms) > limit {
		ms = ms[len(ms)-limit:]
	}
	return slices.Clone(ms), nil
}

// MarkRead implements api.Service.
func (f *Fake) MarkRead(ctx context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("MarkRead"); err != nil {
		return err
	}
	g, err := f.group(group)
	if err != nil {
		return err
	}
	g.unread = 0
	return nil
}

func (f *Fake) Search(ctx context.Context, req api.SearchRequest) (api.SearchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Search"); err != nil {
		return api.SearchResult{}, err
	}
	terms := strings.Fields(strings.ToLower(req.Query))
	if len(terms) == 0 {
		return api.SearchResult{}, api.Errorf(api.CodeInvalidArgument, "empty query")
	}
	groups := f.groups
	if req.Group != "" {
		g, err := f.group(req.Group)
		if err != nil {
			return api.SearchResult{}, err
		}
		groups = []*fakeGroup{g}
	}
	var res api.SearchResult
	for _, g := range groups {
	messages:
		for _, m := range g.messages {
			// Sender and time filters as the node applies them: sender by
			// name or peer id, Since inclusive, Until exclusive.
			if req.Sender != "" && m.Sender != req.Sender && m.SenderPeer != req.Sender ||
				!req.Since.IsZero() && m.Time.Before(req.Since) ||
				!req.Until.IsZero() && !m.Time.Before(req.Until) {
				continue
			}
			text := strings.ToLower(m.Text)
			for _, t := range terms {
				if !strings.Contains(text, strings.TrimSuffix(t, "*")) {
					continue messages
				}
			}
			res.Hits = append(res.Hits, api.SearchHit{Message: m, Score: float64(len(terms))})
		}
	}
	return res, nil
}

func (f *Fake) Members(ctx context.Context, group string) ([]api.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Members"); err != nil {
		return nil, err
	}
	g, err := f.group(group)
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.members), nil
}

func (f *Fake) Remove(ctx context.Context, group, member string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Remove"); err != nil {
		return err
	}
	g, err := f.group(group)
	if err != nil {
		return err
	}
	return f.remove(g, member)
}

// remove removes member from g. Callers hold mu.
func (f *Fake) remove(g *fakeGroup, member string) error {
	if !g.admin {
		return api.Errorf(api.CodeForbidden, "only admins may remove members")
	}
	for i, m := range g.members {
		if m.Name == member || m.PeerID == member {
			if m.Self {
				return api.Errorf(api.CodeInvalidArgument, "use leave to remove yourself")
			}
			g.members = slices.Delete(g.members, i, i+1)
			g.epoch++
			f.tick()
			f.emit(api.Event{Kind: api.EventMemberRemoved, Group: g.id, Member: &m})
			return nil
		}
	}
	return api.Errorf(api.CodeNotFound, "no member %q in %s", member, g.name)
}

func (f *Fake) Rotate(ctx context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Rotate"); err != nil {
		return err
	}
	g, err := f.group(group)
	if err != nil {
		return err
	}
	f.rotate(g)
	return nil
}

// rotate makes an epoch. Callers hold mu.
func (f *Fake) rotate(g *fakeGroup) {
	g.epoch++
	f.tick()
	f.emit(api.Event{Kind: api.EventEpoch, Group: g.id, Epoch: g.epoch})
}

// RequestChange implements api.Service: the change is done at once (in
// the next epoch), unless SetChangesStuck.
func (f *Fake) RequestChange(ctx context.Context, req api.ChangeRequest) (api.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("RequestChange"); err != nil {
		return api.Change{}, err
	}
	g, err := f.group(req.Group)
	if err != nil {
		return api.Change{}, err
	}
	f.seq++
	c := api.Change{ID: fmt.Sprintf("%032x", f.seq), Group: g.id, Kind: req.Kind, Member: req.Member, Name: req.Name, State: api.ChangeRequested}
	switch req.Kind {
	case api.ChangeMute, api.ChangeUnmute:
		// Local: done at once.
		g.muted = req.Kind == api.ChangeMute
		c.State, c.Epoch = api.ChangeDone, g.epoch
		if f.changes == nil {
			f.changes = map[string]api.Change{}
		}
		f.changes[c.ID] = c
		return c, nil
	case api.ChangeRename:
		if !g.admin {
			return api.Change{}, api.Errorf(api.CodeForbidden, "only admins may rename the group")
		}
		g.name = req.Name
		f.rotate(g)
		c.State, c.Epoch = api.ChangeDone, g.epoch
		if f.changes == nil {
			f.changes = map[string]api.Change{}
		}
		f.changes[c.ID] = c
		return c, nil
	case api.ChangeRotate:
	case api.ChangeRemove:
		if !g.admin {
			return api.Change{}, api.Errorf(api.CodeForbidden, "only admins may remove members")
		}
		if !slices.ContainsFunc(g.members, func(m api.Member) bool { return m.Name == req.Member || m.PeerID == req.Member }) {
			return api.Change{}, api.Errorf(api.CodeNotFound, "no member %q in %s", req.Member, g.name)
		}
	default:
		return api.Change{}, api.Errorf(api.CodeInvalidArgument, "unknown change %q", req.Kind)
	}
	if f.changes == nil {
		f.changes = map[string]api.Change{}
	}
	f.changes[c.ID] = c
	if f.changesStuck {
		return c, nil
	}
	if req.Kind == api.ChangeRemove {
		if err := f.remove(g, req.Member); err != nil {
			return api.Change{}, err
		}
	} else {
		f.rotate(g)
	}
	done := c
	done.State, done.Epoch = api.ChangeDone, g.epoch
	f.changes[c.ID] = done
	return c, nil
}

// AwaitChange implements api.Service; a stuck change is reported as
// waiting once timeout has passed.
func (f *Fake) AwaitChange(ctx context.Context, group, id string, timeout time.Duration) (api.Change, error) {
	f.mu.Lock()
	c, ok := f.changes[id]
	err := f.injected("AwaitChange")
	f.mu.Unlock()
	switch {
	case err != nil:
		return api.Change{}, err
	case !ok:
		return api.Change{}, api.Errorf(api.CodeNotFound, "no change %q", id)
	case c.State == api.ChangeDone:
		return c, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return api.Change{}, ctx.Err()
	}
	c.Waiting = "this device's turn to commit"
	return c, nil
}

func (f *Fake) Leave(ctx context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Leave"); err != nil {
		return err
	}
	g, err := f.group(group)
	if err != nil {
		return err
	}
	f.groups = slices.DeleteFunc(f.groups, func(x *fakeGroup) bool { return x == g })
	f.tick()
	return nil
}

func (f *Fake) Peers(ctx context.Context) ([]api.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Peers"); err != nil {
		return nil, err
	}
	return slices.Clone(f.peers), nil
}

// ConnectPeer adds the peer of addr (which must end in /p2p/ID) to Peers, as an
// outbound connection.
func (f *Fake) ConnectPeer(ctx context.Context, addr string) (api.Peer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("ConnectPeer"); err != nil {
		return api.Peer{}, err
	}
	i := strings.LastIndex(addr, "/p2p/")
	if !strings.HasPrefix(addr, "/") || i < 0 || i+len("/p2p/") == len(addr) {
		return api.Peer{}, api.Errorf(api.CodeInvalidArgument, "address %q does not end in /p2p/PEER_ID", addr)
	}
	transport := "tcp"
	if strings.Contains(addr, "/quic") {
		transport = "quic"
	}
	p := api.Peer{ID: addr[i+len("/p2p/"):], Addrs: []string{addr[:i]},
		Conns: []api.Conn{{Addr: addr[:i], Direction: "outbound", Transport: transport, Opened: f.tick()}}}
	f.peers = append(f.peers, p)
	return p, nil
}

// Export calls fn for each message of group at or after since. It does not
// hold the lock while fn runs, so fn may block (as a slow client does).
func (f *Fake) Export(ctx context.Context, group string, since time.Time, fn func(api.Message) error) error {
	f.mu.Lock()
	if err := f.injected("Export"); err != nil {
		f.mu.Unlock()
		return err
	}
	g, err := f.group(group)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	ms := slices.Clone(g.messages)
	f.mu.Unlock()
	for _, m := range ms {
		if m.Time.Before(since) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe returns a buffered event channel, closed when ctx ends. Events
// that do not fit the buffer are dropped, as a daemon drops them for a
// subscriber that does not keep up.
func (f *Fake) Subscribe(ctx context.Context) (<-chan api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Subscribe"); err != nil {
		return nil, err
	}
	ch := make(chan api.Event, 256)
	id := f.nextSub
	f.nextSub++
	f.subs[id] = ch
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
		close(ch)
	})
	return ch, nil
}
