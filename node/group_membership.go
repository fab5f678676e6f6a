// Membership of a group's actor: who is in the head epoch (members,
// isAdmin, the peers served or asked: headMemberPeers, memberPeers), the
// events a membership change emits (memberEvents), an admin's removal of
// a member (remove), and a Commit removing this device that is not final
// yet (pendingRemoval, errRemoving). Leaving is in leave.go, rejoining
// after a lost branch in rejoin.go.

package node

import (
	"bytes"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/mls"
	"grove/node/api"
)

// pendingRemoval is an epoch, named by its Commit, that removes this device:
// we hold no state for it (we are not in it), only what the group list
// shows until commitorder makes the removal final or a sibling beats it.
type pendingRemoval struct {
	epoch   uint64
	members int
}

// errRemoving is the error for sending while a Commit removing this device
// is the head but not yet final. Removed members see no later epoch, so
// only the finality age settles it (commitorder's rootFinal).
func (a *groupActor) errRemoving() error {
	return api.Errorf(api.CodeForbidden, "group %q: a commit removing this device was received; it becomes final within %v and this device can no longer send", a.name, a.n.coConfig(0).MaxAge)
}

func (a *groupActor) memberEvents(parent, next *mls.Group) {
	if parent == nil || next == nil {
		return
	}
	before := map[string]bool{}
	for _, m := range parent.Members() {
		before[string(m.Identity)] = true
	}
	after := map[string]bool{}
	nextNames, parentNames := displayNames(identities(next)), displayNames(identities(parent))
	for _, m := range next.Members() {
		after[string(m.Identity)] = true
		if !before[string(m.Identity)] {
			mm := a.apiMember(next, m, nextNames)
			a.n.emit(api.Event{Kind: api.EventMemberAdded, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Member: &mm})
		}
	}
	for _, m := range parent.Members() {
		if !after[string(m.Identity)] {
			mm := a.apiMember(parent, m, parentNames)
			a.n.emit(api.Event{Kind: api.EventMemberRemoved, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Member: &mm})
		}
	}
}

func (a *groupActor) isAdmin() bool {
	_, g := a.head()
	if g == nil {
		return false
	}
	admins := groupPolicy(g).Admins
	return len(admins) == 0 || slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, a.n.selfID) })
}

// apiMember describes member m of g; shown is displayNames of g's members,
// so that two members whose names look alike are shown apart.
func (a *groupActor) apiMember(g *mls.Group, m mls.Member, shown map[string]string) api.Member {
	out := api.Member{Leaf: uint32(m.Leaf), Fingerprint: fingerprint(m.SignatureKey, m.Identity)}
	if id, err := parseIdentity(m.Identity); err == nil {
		out.Name, out.PeerID = id.Name, id.Peer.String()
		if s, ok := shown[string(m.Identity)]; ok {
			out.Name = s
		}
	}
	out.Self = bytes.Equal(m.Identity, a.n.selfID)
	admins := groupPolicy(g).Admins
	out.Admin = len(admins) == 0 || slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, m.Identity) })
	return out
}

func (a *groupActor) members() []api.Member {
	_, g := a.head()
	if g == nil || a.phase == phaseRemoved {
		return nil
	}
	var out []api.Member
	shown := displayNames(identities(g))
	for _, m := range g.Members() {
		out = append(out, a.apiMember(g, m, shown))
	}
	return out
}

// headMemberPeers lists the peer IDs of the members of the canonical epoch:
// the only peers served the log (a member removed on the canonical chain
// is refused at once, not after finality).
func (a *groupActor) headMemberPeers() map[peer.ID]bool {
	out := map[peer.ID]bool{}
	_, g := a.head()
	if g == nil {
		return out
	}
	for _, m := range g.Members() {
		if id, err := parseIdentity(m.Identity); err == nil {
			out[id.Peer] = true
		}
	}
	return out
}

// memberPeers lists the peer IDs of the members of every retained epoch.
func (a *groupActor) memberPeers() map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, g := range a.epochs {
		for _, m := range g.Members() {
			if id, err := parseIdentity(m.Identity); err == nil {
				out[id.Peer] = true
			}
		}
	}
	return out
}

func (a *groupActor) remove(member string) error {
	_, err := a.removeIntent(member)
	return err
}

// removeIntent queues the removal of member and returns its intent.
func (a *groupActor) removeIntent(member string) (*intent, error) {
	if a.phase == phaseRemoved {
		return nil, a.errRemoved()
	}
	if !a.isAdmin() {
		return nil, api.Errorf(api.CodeForbidden, "only admins may remove members")
	}
	_, g := a.head()
	m, shown, err := a.memberNamed(g, member)
	if err != nil {
		return nil, err
	}
	if shown.Self {
		return nil, api.Errorf(api.CodeInvalidArgument, "use leave to leave the group")
	}
	it := &intent{kind: intentRemove, target: m.Identity}
	return it, a.queueIntent(it)
}
