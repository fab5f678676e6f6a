package node

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"time"

	"grove/mls"
	"grove/node/api"
)

// Leaving and the admin role.
//
// A member leaves by asking the group to remove it (an intent that an
// admin commits: RFC 9420, Section 12.2 forbids a Commit that removes its
// own committer). An admin that is the group's last admin cannot be
// removed by anyone, and leaving it would leave a group in which nobody may
// add or remove again. So the policy is: when the last admin leaves, the
// admin role passes first, deterministically, to the longest-standing
// remaining member — the one on the lowest leaf (leaves fill from the left,
// so that is the earliest-added member still present, unless a removal
// freed a lower leaf for a later join). The departing admin commits that
// handover (a GroupContextExtensions proposal rewriting the policy, RFC
// 9420, Section 12.1.7) and waits until it is applied; only then does it
// ask to be removed, which the new admin commits. If the handover cannot
// be committed in time, Leave fails and changes nothing: the user tries
// again. A group with no other member is simply deleted here.

// intentHandover is a local intent: commit a policy that names a successor
// admin (target) before this device, the last admin, leaves.
const intentHandover intentKind = 12

// handoverWait bounds how long Leave waits for its handover Commit.
const handoverWait = 30 * time.Second

// successor returns the member to whom the admin role must pass before this
// device leaves, or nil if none is needed (the group has no admin list,
// this device is not an admin, another remaining member is one, or no
// other member remains).
func (a *groupActor) successor() []byte {
	_, g := a.head()
	if g == nil || a.removed || !a.isAdmin() {
		return nil
	}
	admins := groupPolicy(g).Admins
	if len(admins) == 0 {
		return nil
	}
	others := slices.DeleteFunc(g.Members(), func(m mls.Member) bool { return bytes.Equal(m.Identity, a.n.selfID) })
	for _, m := range others {
		if slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, m.Identity) }) {
			return nil
		}
	}
	if len(others) == 0 {
		return nil
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Leaf < others[j].Leaf })
	return others[0].Identity
}

// handoverProposal rewrites g's policy: the admins that are still members,
// without this device, plus the successor; every other extension is kept
// (a GroupContextExtensions proposal replaces the whole list).
func (a *groupActor) handoverProposal(g *mls.Group, successor []byte) *mls.Proposal {
	pol := groupPolicy(g)
	members := g.Members()
	next := &policy{RateLimit: pol.RateLimit}
	for _, ad := range pol.Admins {
		if bytes.Equal(ad, a.n.selfID) || bytes.Equal(ad, successor) {
			continue
		}
		if slices.ContainsFunc(members, func(m mls.Member) bool { return bytes.Equal(m.Identity, ad) }) {
			next.Admins = append(next.Admins, ad)
		}
	}
	next.Admins = append(next.Admins, successor)
	exts := slices.Clone(g.GroupContext().Extensions)
	exts = slices.DeleteFunc(exts, func(e mls.Extension) bool { return e.Type == ExtensionPolicy })
	exts = append(exts, mls.Extension{Type: ExtensionPolicy, Data: next.marshal()})
	return &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}
}

// isAdminID reports whether identity is an admin in the canonical epoch
// (as isAdmin: a group without an admin list lets everyone manage it).
func (a *groupActor) isAdminID(identity []byte) bool {
	_, g := a.head()
	if g == nil {
		return false
	}
	admins := groupPolicy(g).Admins
	return len(admins) == 0 || slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, identity) })
}

// handOver makes sure another remaining member is an admin before this
// device leaves: it queues the handover Commit if one is needed and waits
// until the canonical epoch names the successor.
func (n *Node) handOver(ctx context.Context, a *groupActor) error {
	var succ []byte
	err := a.do(ctx, func() error {
		if succ = a.successor(); succ != nil {
			return a.queueIntent(&intent{kind: intentHandover, target: succ})
		}
		return nil
	})
	if err != nil || succ == nil {
		return err
	}
	n.log.Info("last admin leaving: handing the admin role over", "group", a.hexID[:8])
	wctx, cancel := context.WithTimeout(ctx, handoverWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var done bool
		if err := a.do(wctx, func() error { done = a.isAdminID(succ); return nil }); err != nil {
			break
		}
		if done {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-wctx.Done():
		}
		break
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return api.Errorf(api.CodeTimeout, "this device is the group's last admin and could not hand the role over within %v (is another member online?): nothing changed, try again", handoverWait)
}
