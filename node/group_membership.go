// Membership of a group's actor: who is in the head epoch (members,
// isAdmin, the peers served or asked: headMemberPeers, memberPeers), the
// events a membership change emits (memberEvents), an admin's removal of
// a member (remove), and a Commit removing this device that is not final
// yet (pendingRemoval, errRemoving). Leaving is in leave.go, rejoining
// after a lost branch in rejoin.go.

package node

import (
	"bytes"
	"strings"

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
	nextNames, parentNames := displayNamesOf(next), displayNamesOf(parent)
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
	return isGroupAdmin(g, a.n.selfID)
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
		// One person, several devices: only a certificate that holds
		// for this leaf names the device (devices.go).
		if v, err := verifyDevice(m.Identity, m.SignatureKey); err == nil && v.Cert != nil {
			out.Device, out.Account = v.Cert.Device.Name, v.Cert.Account.Fingerprint()
			// The account's current key once it was rotated
			// (accountrotate.go), so that one person shows one account.
			if k := memberAccount(g, m); k != nil {
				out.Account = k.Fingerprint()
			}
		}
	}
	out.Self = bytes.Equal(m.Identity, a.n.selfID)
	out.Admin = isGroupAdmin(g, m.Identity)
	return out
}

func (a *groupActor) members() []api.Member {
	_, g := a.head()
	if g == nil || a.phase == phaseRemoved {
		return nil
	}
	var out []api.Member
	shown := displayNamesOf(g)
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
	var match []api.Member
	for _, m := range a.members() {
		// By the name shown ("alice #1a2b3c4d" when two look alike) or
		// the name itself (then ambiguous if two members share it).
		name := m.Name
		if lm, err := g.Member(mls.LeafIndex(m.Leaf)); err == nil {
			if id, err := parseIdentity(lm.Identity); err == nil {
				name = id.Name
			}
		}
		if m.Name == member || name == member || m.PeerID == member || (m.Device != "" && member == m.Name+" ("+m.Device+")") ||
			(len(member) >= 4 && strings.HasPrefix(strings.ReplaceAll(m.Fingerprint, " ", ""), strings.ReplaceAll(member, " ", ""))) {
			match = append(match, m)
		}
	}
	// A person's name removes all of that person's devices (devices.go):
	// every match certified by one account, none of them this device.
	if len(match) > 1 && onePerson(match) {
		for _, m := range match[:len(match)-1] {
			lm, _ := g.Member(mls.LeafIndex(m.Leaf))
			if err := a.queueIntent(&intent{kind: intentRemove, target: lm.Identity}); err != nil {
				return nil, err
			}
		}
		match = match[len(match)-1:]
	}
	switch {
	case len(match) == 0:
		return nil, api.Errorf(api.CodeNotFound, "no member %q", member)
	case len(match) > 1:
		return nil, api.Errorf(api.CodeInvalidArgument, "member %q is ambiguous: use the peer id", member)
	case match[0].Self:
		return nil, api.Errorf(api.CodeInvalidArgument, "use leave to leave the group")
	}
	m, _ := g.Member(mls.LeafIndex(match[0].Leaf))
	it := &intent{kind: intentRemove, target: m.Identity}
	return it, a.queueIntent(it)
}

// onePerson reports whether the members are devices of one account, none
// of them this device.
func onePerson(ms []api.Member) bool {
	for _, m := range ms {
		if m.Account == "" || m.Account != ms[0].Account || m.Self {
			return false
		}
	}
	return true
}
