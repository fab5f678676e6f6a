package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"grove/mls"
	"grove/node/api"
	"grove/store"
)

// Managing a group: who its admins are and what it is called.
//
// Both live in the policy (identity.go), a GroupContext extension, so that
// every member reads the same admins and the same name from the group
// state itself. An admin changes them with a GroupContextExtensions
// proposal (RFC 9420, Section 12.1.7) that it commits by value, like the
// last admin's handover (leave.go): commitorder classes such a Commit with
// the Adds and accepts it only from an admin (class 1), and every member
// checks the new policy with policyRule, so a Commit that would leave the
// group without an admin, or name it with hidden characters, is invalid
// everywhere. Only one GroupContextExtensions proposal fits in a Commit,
// so all the policy changes queued when a Commit is made (promotions,
// demotions, a rename, a handover) are folded into one new policy.
//
// The group's shared name becomes each member's local name when the
// rename's epoch is applied; a member that already has another group of
// that name shows this one as "name (2)", so that a name still means one
// group on a device (groupname.go).
//
// Muting is local: the device shows no notifications for a muted group
// (the CLI's notifier asks Group.Muted) and counts its unread messages as
// before.

// intentPolicy is a local intent: commit a policy change (op) made by this
// device, an admin.
const intentPolicy intentKind = 14

// policyOp is the policy change an intentPolicy makes.
type policyOp uint8

const (
	opPromote policyOp = iota + 1 // make target an admin
	opDemote                      // take the admin role from target
	opRename                      // name the group name
)

// rejectPolicy: a Commit whose new policy is unreadable, names the group
// with a name no member could create, or leaves no admin among the
// members.
const rejectPolicy rejectReason = "bad_policy"

func mutedSetting(hexID string) string  { return "group-muted/" + hexID }
func joinedSetting(hexID string) string { return "group-joined/" + hexID }

// loadLocalSettings reads the group's device-local settings (muted, when
// this device joined) into the actor. Called before the actor starts.
func (a *groupActor) loadLocalSettings() {
	if _, err := a.n.db.Setting(mutedSetting(a.hexID)); err == nil {
		a.muted = true
	}
	if raw, err := a.n.db.Setting(joinedSetting(a.hexID)); err == nil && len(raw) == 8 {
		a.joinedAt = time.Unix(0, int64(binary.BigEndian.Uint64(raw))).UTC()
		a.joinedNs.Store(a.joinedAt.UnixNano())
	}
}

// setMuted stores whether the group is muted on this device.
func (a *groupActor) setMuted(muted bool) error {
	var err error
	if muted {
		err = a.n.db.SetSetting(mutedSetting(a.hexID), []byte{1})
	} else if err = a.n.db.DeleteSetting(mutedSetting(a.hexID)); errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return api.Errorf(api.CodeInternal, "save mute setting: %v", err)
	}
	a.muted = muted
	return nil
}

// setJoined records that this device joined the group (through an invite)
// at t: the history before it is not available here.
func (a *groupActor) setJoined(t time.Time) {
	raw := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
	if err := a.n.db.SetSetting(joinedSetting(a.hexID), raw); err != nil {
		a.log.Warn("save join time", "err", err)
		return
	}
	a.joinedAt = t.UTC()
	a.joinedNs.Store(t.UnixNano())
}

// shownName returns the group's local name from any goroutine (the actor
// changes it on a rename, under n.mu).
func (a *groupActor) shownName() string {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	return a.name
}

// policyIntent checks a promote, demote or rename request against the
// head epoch and returns the intent that commits it.
func (a *groupActor) policyIntent(req api.ChangeRequest) (*intent, error) {
	if a.phase == phaseRemoved {
		return nil, a.errRemoved()
	}
	_, g := a.head()
	if g == nil {
		return nil, api.Errorf(api.CodeUnavailable, "group %q is not ready on this device yet", a.name)
	}
	pol := groupPolicy(g)
	if !a.isAdmin() {
		what := "rename the group"
		switch req.Kind {
		case api.ChangeHistory:
			what = "change the group's history for new members"
		case api.ChangeRename:
		default:
			what = "promote or demote members"
		}
		return nil, api.Errorf(api.CodeForbidden, "only admins may %s", what)
	}
	it := &intent{kind: intentPolicy}
	switch req.Kind {
	case api.ChangeHistory:
		return historyIntent(req, pol) // history.go
	case api.ChangeRename:
		if err := checkGroupName(req.Name); err != nil {
			return nil, err
		}
		if req.Name == a.name || req.Name == pol.Name {
			return nil, api.Errorf(api.CodeInvalidArgument, "the group is already named %q", req.Name)
		}
		if other := a.n.groupNamed(req.Name); other != nil && other != a {
			return nil, api.Errorf(api.CodeConflict, "you already have a group named %q (id %s): choose another name", req.Name, other.hexID)
		}
		it.op, it.name = opRename, req.Name
		return it, nil
	case api.ChangePromote, api.ChangeDemote:
	default:
		return nil, api.Errorf(api.CodeInvalidArgument, "unknown change %q", req.Kind)
	}
	if len(pol.Admins) == 0 {
		return nil, api.Errorf(api.CodeInvalidArgument, "group %q has no admin list: every member may manage it already", a.name)
	}
	m, shown, err := a.memberNamed(g, req.Member)
	if err != nil {
		return nil, err
	}
	admin := containsID(pol.Admins, m.Identity)
	it.target = m.Identity
	if req.Kind == api.ChangePromote {
		if admin {
			return nil, api.Errorf(api.CodeConflict, "%s is already an admin of %q", shown.Name, a.name)
		}
		it.op = opPromote
		return it, nil
	}
	if !admin {
		return nil, api.Errorf(api.CodeConflict, "%s is not an admin of %q", shown.Name, a.name)
	}
	if adminMembers(g, slices.DeleteFunc(slices.Clone(pol.Admins), func(b []byte) bool { return bytes.Equal(b, m.Identity) })) == 0 {
		who := shown.Name + " is"
		if shown.Self {
			who = "you are"
		}
		return nil, api.Errorf(api.CodeConflict, "%s the only admin of %q: promote another member first", who, a.name)
	}
	it.op = opDemote
	return it, nil
}

// memberNamed finds the member of g that the user names by display name
// (as shown, or its own when two look alike), peer id or fingerprint
// prefix.
func (a *groupActor) memberNamed(g *mls.Group, member string) (mls.Member, api.Member, error) {
	var match []api.Member
	for _, m := range a.members() {
		name := m.Name
		if lm, err := g.Member(mls.LeafIndex(m.Leaf)); err == nil {
			if id, err := parseIdentity(lm.Identity); err == nil {
				name = id.Name
			}
		}
		if m.Name == member || name == member || m.PeerID == member ||
			(len(member) >= 4 && strings.HasPrefix(strings.ReplaceAll(m.Fingerprint, " ", ""), strings.ReplaceAll(member, " ", ""))) {
			match = append(match, m)
		}
	}
	switch {
	case len(match) == 0:
		return mls.Member{}, api.Member{}, api.Errorf(api.CodeNotFound, "no member %q", member)
	case len(match) > 1:
		return mls.Member{}, api.Member{}, api.Errorf(api.CodeInvalidArgument, "member %q is ambiguous: use the peer id", member)
	}
	m, err := g.Member(mls.LeafIndex(match[0].Leaf))
	if err != nil {
		return mls.Member{}, api.Member{}, api.Errorf(api.CodeNotFound, "no member %q", member)
	}
	return m, match[0], nil
}

func containsID(ids [][]byte, id []byte) bool {
	return slices.ContainsFunc(ids, func(b []byte) bool { return bytes.Equal(b, id) })
}

// adminMembers counts the members of g named in admins.
func adminMembers(g *mls.Group, admins [][]byte) int {
	n := 0
	for _, m := range g.Members() {
		if containsID(admins, m.Identity) {
			n++
		}
	}
	return n
}

func (p *policy) clone() *policy {
	out := &policy{RateLimit: p.RateLimit, Name: p.Name, History: p.History}
	for _, a := range p.Admins {
		out.Admins = append(out.Admins, bytes.Clone(a))
	}
	for _, r := range p.Rotations {
		out.Rotations = append(out.Rotations, bytes.Clone(r))
	}
	return out
}

// applyToPolicy applies intent it (a handover or a policy change) to pol,
// the policy a Commit on parent is building. It reports false when the
// change has nothing left to do (done by a Commit since, or impossible
// now: the member is gone, or a concurrent demotion took the other admin).
func (a *groupActor) applyToPolicy(parent *mls.Group, pol *policy, it *intent) bool {
	if it.kind == intentHandover {
		// The admins that are still members, without this device, plus
		// the successor.
		members := parent.Members()
		var next [][]byte
		for _, ad := range pol.Admins {
			if bytes.Equal(ad, a.n.selfID) || bytes.Equal(ad, it.target) {
				continue
			}
			if slices.ContainsFunc(members, func(m mls.Member) bool { return bytes.Equal(m.Identity, ad) }) {
				next = append(next, ad)
			}
		}
		pol.Admins = append(next, it.target)
		return true
	}
	switch it.op {
	case opPromote:
		if _, in := leafOf(parent, it.target); !in || containsID(pol.Admins, it.target) {
			return false
		}
		pol.Admins = append(pol.Admins, bytes.Clone(it.target))
	case opDemote:
		rest := slices.DeleteFunc(slices.Clone(pol.Admins), func(b []byte) bool { return bytes.Equal(b, it.target) })
		if len(rest) == len(pol.Admins) || adminMembers(parent, rest) == 0 {
			return false
		}
		pol.Admins = rest
	case opRename:
		if pol.Name == it.name {
			return false
		}
		pol.Name = it.name
	case opRotation:
		return applyRotation(pol, it.rotation)
	case opHistory:
		if pol.History == it.history {
			return false
		}
		pol.History = it.history
	default:
		return false
	}
	return true
}

// policyProposal replaces g's policy with pol, keeping every other
// extension (the proposal replaces the whole list).
func policyProposal(g *mls.Group, pol *policy) *mls.Proposal {
	exts := slices.Clone(g.GroupContext().Extensions)
	exts = slices.DeleteFunc(exts, func(e mls.Extension) bool { return e.Type == ExtensionPolicy })
	exts = append(exts, mls.Extension{Type: ExtensionPolicy, Data: pol.marshal()})
	return &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}
}

// policyRule is commitRule's check of a Commit that changes the policy:
// the new one must be readable (an unreadable policy reads as "no admin
// list", which would make every member an admin), name the group with a
// name this device would accept for a group, and keep at least one admin
// among the members.
func policyRule(parent, next *mls.Group) rejectReason {
	before, hadPolicy := parent.GroupContext().Extensions.Find(ExtensionPolicy)
	after, ok := next.GroupContext().Extensions.Find(ExtensionPolicy)
	if ok == hadPolicy && bytes.Equal(before.Data, after.Data) {
		return ""
	}
	if !ok {
		return rejectPolicy
	}
	p, err := unmarshalPolicy(after.Data)
	if err != nil {
		return rejectPolicy
	}
	if p.Name != "" && checkName(p.Name) != nil {
		return rejectPolicy
	}
	if adminMembers(next, p.Admins) == 0 {
		return rejectPolicy
	}
	prev := &policy{}
	if hadPolicy {
		if prev, err = unmarshalPolicy(before.Data); err != nil {
			prev = &policy{}
		}
	}
	return rotationRule(prev, p)
}

// notePolicy tells subscribers what a newly applied epoch changed in the
// policy, and takes over a new group name.
func (a *groupActor) notePolicy(parent, next *mls.Group) {
	if parent == nil || next == nil {
		return
	}
	before, after := groupPolicy(parent), groupPolicy(next)
	a.n.learnRotations(after)
	shown := displayNamesOf(next)
	name := func(id []byte) string {
		if s, ok := shown[string(id)]; ok {
			return s
		}
		if pi, err := parseIdentity(id); err == nil {
			return pi.Name
		}
		return "a member"
	}
	var notes []string
	for _, m := range next.Members() {
		was, is := containsID(before.Admins, m.Identity), containsID(after.Admins, m.Identity)
		who := name(m.Identity)
		if bytes.Equal(m.Identity, a.n.selfID) {
			who = "you"
		}
		switch {
		case is && !was && len(before.Admins) > 0:
			notes = append(notes, who+" became an admin")
		case was && !is && len(after.Admins) > 0:
			notes = append(notes, who+" stopped being an admin")
		}
	}
	if after.Name != "" && after.Name != before.Name {
		a.setName(after.Name)
		notes = append(notes, fmt.Sprintf("the group was renamed to %q", after.Name))
	}
	for _, d := range notes {
		a.n.emit(api.Event{Kind: api.EventGroupChanged, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Epoch: next.Epoch(), Detail: d})
	}
}

// setName makes name the group's local name, or "name (2)", "name (3)", …
// when another group of this device is called name already.
func (a *groupActor) setName(name string) {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	a.name = a.n.uniqueNameLocked(name, a)
}

// uniqueName returns name, or "name (2)", … when a group of this device
// has it (a group joined under a name already taken here).
func (n *Node) uniqueName(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.uniqueNameLocked(name, nil)
}

// uniqueNameLocked is uniqueName ignoring the group except. Callers hold
// n.mu.
func (n *Node) uniqueNameLocked(name string, except *groupActor) string {
	taken := func(s string) bool {
		for _, o := range n.groups {
			if o != except && o.name == s {
				return true
			}
		}
		return false
	}
	local := name
	for i := 2; taken(local); i++ {
		local = fmt.Sprintf("%s (%d)", name, i)
	}
	return local
}

// policyChangeDone reports whether the head epoch already shows the policy
// change w asked for (our Commit made it, or another admin's did first).
func (a *groupActor) policyChangeDone(w *changeWait) bool {
	_, g := a.head()
	if g == nil {
		return false
	}
	pol := groupPolicy(g)
	switch w.c.Kind {
	case api.ChangePromote:
		return containsID(pol.Admins, w.target)
	case api.ChangeDemote:
		return !containsID(pol.Admins, w.target)
	case api.ChangeRename:
		return pol.Name == w.c.Name
	case api.ChangeHistory:
		return pol.History == w.c.History
	}
	return false
}
