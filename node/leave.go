package node

import (
	"bytes"
	"context"
	"crypto/rand"
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
	if g == nil || a.phase == phaseRemoved || !a.isAdmin() {
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

// Leaving a group whose other members may be offline.
//
// A leave is a request that an admin commits, and after a handover the
// only admin may be a member that is offline: the handover Commit and the
// leave intent reached nobody. Deleting the group's data at once (as Leave
// did) deleted the only copy of both, so the member, back online, never
// became admin, never removed the leaver, and kept encrypting to it: a
// group nobody could manage any more. So a device that leaves a group with
// other members keeps the group, unlisted and unusable, until it sees its
// own removal: it still serves the log to members (sync) so that the
// handover and the intent reach them when they come back, re-publishes the
// intent now and then, and deletes everything once removed. The state is
// stored (leavingSetting), so a restart resumes it.

func leavingSetting(hexID string) string { return "group-leaving/" + hexID }

// leaveRepublishTips is how many tip intervals apart a leaving device
// publishes its leave intent again (it is also in its log for sync).
const leaveRepublishTips = 10

// othersRemain reports whether the group has members besides this device
// that could commit its removal (so Leave waits for it).
func (a *groupActor) othersRemain() bool {
	if a.phase != phaseActive {
		return false
	}
	_, g := a.head()
	return g != nil && len(g.Members()) > 1
}

// awaitsRemoval reports whether a group being left still waits for this
// device's removal (as loaded after a restart).
func (a *groupActor) awaitsRemoval() bool { return a.othersRemain() }

// awaitRemoval moves a group this device has just asked to leave from the
// listed groups to the leaving ones; its actor deletes it once removed.
func (n *Node) awaitRemoval(a *groupActor) error {
	if err := n.db.SetSetting(leavingSetting(a.hexID), []byte{1}); err != nil {
		return api.Errorf(api.CodeInternal, "mark group left: %v", err)
	}
	n.mu.Lock()
	delete(n.groups, a.hexID)
	n.leaving[a.hexID] = a
	n.mu.Unlock()
	a.post(func() {
		a.leaving = true
		if a.phase == phaseRemoved {
			n.finishLeave(a)
		}
	})
	n.forgetUnread(a.hexID)
	return nil
}

// finishLeave stops a left group's actor and deletes its data, from a
// goroutine of its own (the actor may be the caller). A node closing first
// leaves that to the next start.
func (n *Node) finishLeave(a *groupActor) {
	n.mu.Lock()
	if n.closed || n.leaving[a.hexID] != a {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		// Under leaveMu, and the entry dropped only with the data, so that
		// a Join of the same group (dropLeaving) never runs between.
		n.leaveMu.Lock()
		defer n.leaveMu.Unlock()
		n.mu.Lock()
		mine := n.leaving[a.hexID] == a
		n.mu.Unlock()
		if !mine {
			return // dropped meanwhile by dropLeaving, or a second call
		}
		a.stop()
		n.releasePeers(a)
		if err := n.deleteGroupData(a); err != nil {
			n.log.Warn("delete left group", "group", a.hexID[:8], "err", err)
		}
		n.mu.Lock()
		delete(n.leaving, a.hexID)
		n.mu.Unlock()
		n.log.Info("left group: its data is deleted", "group", a.hexID[:8])
	}()
}

// republishLeave publishes the leave intent again, under its id (an admin
// queues it once), or a new one after a restart.
func (a *groupActor) republishLeave() {
	if a.phase != phaseActive || a.tipCount%leaveRepublishTips != leaveRepublishTips/2 {
		return
	}
	if _, g := a.head(); g == nil {
		return
	}
	if a.leaveMsg == nil {
		a.leave()
		return
	}
	if err := a.encryptAndPublishIntent(a.leaveMsg); err != nil {
		a.log.Debug("leave intent", "err", err)
	}
}

// noteTakeOver notes, for a group being left, the first tip of an admin
// (in our head: after a handover, the successor) whose head is past the
// epoch our leave intent went out in. That admin holds our handover and,
// from the same epoch, the intent, which it commits.
//
// We still wait for our removal, but not for ever: a removed member is
// refused sync at once (serveSync), so if the removing Commit's gossip
// missed us (as it does when the admin commits right after its restart,
// before the mesh forms) nothing else would ever bring it.
func (a *groupActor) noteTakeOver(member []byte, epoch uint64) {
	if !a.leaving || a.leaveEpoch == 0 || !a.takenOver.IsZero() || epoch <= a.leaveEpoch {
		return
	}
	_, g := a.head()
	if g == nil || !slices.ContainsFunc(groupPolicy(g).Admins, func(b []byte) bool { return bytes.Equal(b, member) }) {
		return
	}
	a.takenOver = a.n.cfg.Clock.Now()
}

// finishLeaveIfTakenOver deletes a group being left once an admin has
// taken over (noteTakeOver) and the finality age has passed without our
// removal reaching us.
func (a *groupActor) finishLeaveIfTakenOver() {
	if a.takenOver.IsZero() || a.n.cfg.Clock.Now().Sub(a.takenOver) < a.tipMaxAge {
		return
	}
	a.log.Info("left group: an admin took over, our removal did not reach us; deleting it")
	a.n.finishLeave(a)
}

// dropLeaving deletes at once a group this device is leaving (it is joining
// it again: two actors must never share a group's data).
func (n *Node) dropLeaving(hexID string) error {
	n.leaveMu.Lock()
	defer n.leaveMu.Unlock()
	n.mu.Lock()
	a := n.leaving[hexID]
	n.mu.Unlock()
	if a == nil {
		return nil
	}
	a.stop()
	n.releasePeers(a)
	err := n.deleteGroupData(a)
	n.mu.Lock()
	delete(n.leaving, hexID)
	n.mu.Unlock()
	return err
}

// leave asks the group to remove this device.
func (a *groupActor) leave() error {
	if a.phase == phaseRemoved {
		return nil
	}
	p := &appPayload{Kind: kindIntent, Time: a.n.cfg.Clock.Now().UTC(), Intent: intentLeave, Target: a.n.selfID}
	rand.Read(p.ID[:])
	_, g := a.head()
	if g == nil {
		return nil
	}
	a.leaveMsg, a.leaveEpoch = p, g.Epoch()
	return a.encryptAndPublishIntent(p)
}
