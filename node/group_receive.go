// The receive path of a group's actor: a gossip message is checked by
// validate, then receive drops duplicates (seen set, then the log), holds
// what no retained epoch can decrypt yet (heldBuffer, retried by
// retryHeld), decrypts it and hands it to commitorder: an application
// message via onApplication, a Commit via onCommit. ciphertextPending and
// parentMissing tell commitorder what the framing of an undecryptable
// message claims.

package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/p2p"
	"grove/store"
)

// validate is the gossip validator: cheap structural checks only (size,
// MLSMessage parse, group id binding, no standalone Proposal, tip parse).
// Runs on p2p's goroutines. What it rejects is counted (rejectLog).
func (a *groupActor) validate(_ context.Context, _ peer.ID, data []byte) p2p.ValidationResult {
	if futureTip(data) {
		// A newer node's tip: dropped, its sender not penalised (wire.go,
		// tipPrefix).
		return p2p.Ignore
	}
	if reason := a.precheck(data); reason != "" {
		a.reject(reason)
		return p2p.Reject
	}
	return p2p.Accept
}

// precheck returns why data can never be a message of this group, or "".
// Both the gossip validator and receive (which also takes synced
// messages) apply it, before anything is cached or logged.
func (a *groupActor) precheck(data []byte) rejectReason {
	if len(data) == 0 || len(data) > store.MaxMLSMessageLen {
		return rejectSize
	}
	if isTip(data) {
		t, err := unmarshalTip(data)
		switch {
		case err != nil:
			return rejectMalformed
		case !bytes.Equal(t.Group, a.id):
			return rejectOtherGroup
		}
		return ""
	}
	gid, _, ct, err := frameKind(data)
	switch {
	case err != nil:
		return rejectMalformed
	case !bytes.Equal(gid, a.id):
		return rejectOtherGroup
	case ct == mls.ContentTypeProposal:
		// Grove commits every change by value inside its Commit
		// (ARCHITECTURE.md, section 3), so a standalone Proposal, whoever
		// signed it, is never needed. Accepting one would let anyone who
		// sees the topic (a new_member_proposal needs no membership, only
		// the group id and epoch) make every member cache it in the
		// epoch state and keep it in the log.
		return rejectProposal
	}
	return ""
}

// frameInfo parses an MLSMessage and returns the group id, epoch and
// whether it is a Commit.
func frameInfo(data []byte) (group []byte, epoch uint64, commit bool, err error) {
	group, epoch, ct, err := frameKind(data)
	return group, epoch, ct == mls.ContentTypeCommit, err
}

// frameKind parses an MLSMessage and returns the group id, epoch and
// content type its framing claims (in the clear for both wire formats).
func frameKind(data []byte) (group []byte, epoch uint64, ct mls.ContentType, err error) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		return nil, 0, 0, err
	}
	switch m.WireFormat {
	case mls.WireFormatPublicMessage:
		c := &m.PublicMessage.Content
		return c.GroupID, c.Epoch, c.ContentType, nil
	case mls.WireFormatPrivateMessage:
		p := m.PrivateMessage
		return p.GroupID, p.Epoch, p.ContentType, nil
	}
	return nil, 0, 0, fmt.Errorf("%w: wire format %d on a group topic", ErrMalformed, m.WireFormat)
}

func (a *groupActor) receive(data []byte) {
	if a.phase == phaseRemoved {
		return
	}
	if reason := a.precheck(data); reason != "" {
		// Gossip was checked by validate already; synced and held
		// messages were not.
		a.reject(reason)
		return
	}
	a.beginWrites() // view and log of this message: durable at the next flush (durable.go)
	defer a.endWrites()
	if isTip(data) {
		a.onTip(data)
		return
	}
	h := sha256.Sum256(data)
	if _, dup := a.seen[h]; dup {
		return
	}
	gid, epoch, _, err := frameInfo(data)
	if err != nil || !bytes.Equal(gid, a.id) {
		return
	}
	if _, err := a.n.db.LogEntry(a.id, epoch, store.MessageHash(h)); err == nil {
		a.markSeen(h)
		return
	}
	var cands []commitorder.EpochID
	headEid, headG := a.head()
	for eid, g := range a.epochs {
		if g.Epoch() == epoch {
			cands = append(cands, eid)
		}
	}
	if len(cands) == 0 {
		a.parentMissing(data, epoch)
		if headG != nil && epoch > headG.Epoch() {
			a.held.add(h, epoch, data)
			a.ciphertextPending(data, epoch)
			a.requestSync("", false)
		}
		return
	}
	// Try the canonical head first, then siblings, in a fixed order.
	sort.Slice(cands, func(i, j int) bool {
		if (cands[i] == headEid) != (cands[j] == headEid) {
			return cands[i] == headEid
		}
		return bytes.Compare(cands[i][:], cands[j][:]) < 0
	})
	now := a.n.cfg.Clock.Now()
	var lastErr error
	for _, eid := range cands {
		g := a.epochs[eid]
		pm, err := g.ProcessMessage(data, mls.ProcessOptions{Now: now})
		if errors.Is(err, mls.ErrOwnCommit) || errors.Is(err, mls.ErrOwnMessage) {
			a.markSeen(h)
			return
		}
		if err != nil {
			lastErr = err
			continue
		}
		a.markSeen(h)
		a.n.metrics.messagesIn.Add(1)
		switch pm.Kind {
		case mls.KindApplication:
			a.dirty[eid] = true
			a.onApplication(eid, g, pm)
		case mls.KindCommit:
			if !a.onCommit(eid, g, pm.Commit, commitorder.CommitID(h), data) {
				// Invalid for Grove: neither kept nor served to others.
				return
			}
		}
		// Logged only once handled: the log is also the "already
		// processed" marker after a restart, so a crash between the two
		// must leave the message unlogged (it is then processed again and
		// deduplicated by its application id) rather than logged but
		// never shown.
		if _, err := a.appendLog(epoch, h, data); err != nil {
			a.log.Warn("log message", "err", err)
		}
		return
	}
	a.parentMissing(data, epoch)
	a.log.Debug("message not decryptable with any retained epoch yet", "epoch", epoch, "err", lastErr)
	// Perhaps sent in a sibling of our epoch whose Commit has not reached
	// us yet (gossip does not keep the order across senders): keep it
	// until that Commit arrives (see heldBuffer).
	a.held.add(h, epoch, data)
	a.ciphertextPending(data, epoch)
}

// messageAD is the authenticated_data of Grove's application messages: a
// version byte and the id of the epoch the message is sent in (the
// format of parentAD). It lets a member that does not hold that epoch
// name it to commitorder (CiphertextPending) before it can decrypt
// anything; like parentAD it is an exporter output and reveals nothing
// else. The framing carries it in the clear, so until the message is
// decrypted it is only a claim.
func messageAD(eid commitorder.EpochID) []byte { return parentAD(eid) }

// ciphertextPending tells commitorder about an application message held
// because no retained epoch could decrypt it: a hint (from unauthenticated
// framing) that a branch we do not hold exists, so commitorder fetches
// the range (from the members seen on it first) and holds depth finality
// back until the epoch is known (commitorder.CiphertextPending). Messages
// without messageAD (older senders) give no epoch id and no hint.
func (a *groupActor) ciphertextPending(data []byte, epoch uint64) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPrivateMessage {
		return
	}
	pm := m.PrivateMessage
	if pm.ContentType != mls.ContentTypeApplication || len(pm.AuthenticatedData) != 17 || pm.AuthenticatedData[0] != 1 {
		return
	}
	var eid commitorder.EpochID
	copy(eid[:], pm.AuthenticatedData[1:])
	a.step(commitorder.CiphertextPending{Eid: eid, Epoch: epoch})
}

// parentAD is the authenticated_data of Grove's Commits: a version byte and
// the parent's epoch id. It names the parent for members that no longer (or
// never) held it, so commitorder can judge a sibling that arrives beyond
// the window; it is an exporter output and reveals nothing else.
func parentAD(eid commitorder.EpochID) []byte { return append([]byte{1}, eid[:]...) }

// parentMissing tells commitorder about a Commit whose parent state we do
// not hold, with the class and committer as claimed by its framing
// (commitorder uses them only to judge our own final branch).
func (a *groupActor) parentMissing(data []byte, epoch uint64) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPublicMessage {
		return
	}
	c := &m.PublicMessage.Content
	if c.ContentType != mls.ContentTypeCommit || c.Commit == nil ||
		len(c.AuthenticatedData) != 17 || c.AuthenticatedData[0] != 1 {
		return
	}
	if epoch < a.floor {
		// From before we joined (a replay, or a deep sync that reached
		// below our join, as after a split): it says nothing about our
		// chain, but commitorder, which keeps no join epoch, would take a
		// commit on an unknown parent at or below its root as evidence
		// that our chain diverged and, with two members claiming another
		// chain final, have us rejoin the losing half. The joining
		// commit itself is among them: a Welcome's genesis does not carry
		// it (join.go), so commitorder has no history to judge it by.
		return
	}
	var parent commitorder.EpochID
	copy(parent[:], c.AuthenticatedData[1:])
	var props []*mls.Proposal
	for _, p := range c.Commit.Proposals {
		if p.Proposal != nil {
			props = append(props, p.Proposal)
		}
	}
	class := classOf(props)
	var committer []byte
	switch c.Sender.Type {
	case mls.SenderTypeMember:
		// Leaf indices are stable across epochs unless a removal frees
		// one; the oldest retained epoch is the best guess for an older
		// commit.
		rootEid, _ := a.co.Root()
		if g := a.epochs[rootEid]; g != nil {
			if mem, err := g.Member(c.Sender.LeafIndex); err == nil {
				committer = mem.Identity
			}
		}
	case mls.SenderTypeNewMemberCommit:
		// Another member's rejoin (Grove makes no other external
		// Commit; onCommit drops them), classed as onCommit classes a
		// resync. It must reach commitorder: when two members of a
		// losing half rejoin at once, the one whose rejoin lost holds
		// only its own rejoin epoch and learns that it lost from
		// nothing else.
		if c.Commit.Path != nil {
			committer = c.Commit.Path.LeafNode.Credential.Identity
		}
		class = commitorder.ClassUpdate
	}
	if len(committer) == 0 {
		return
	}
	a.step(commitorder.ParentMissing{Parent: parent, ParentEpoch: epoch, Cid: commitorder.CommitID(sha256.Sum256(data)),
		Class: class, Committer: commitorder.MemberID(committer)})
}

func (a *groupActor) markSeen(h [32]byte) {
	if len(a.seen) > 1<<16 {
		clear(a.seen) // the log check behind it still deduplicates
	}
	a.seen[h] = struct{}{}
}

func (a *groupActor) onApplication(eid commitorder.EpochID, g *mls.Group, pm *mls.ProcessedMessage) {
	m, err := g.Member(pm.Sender.LeafIndex)
	if err != nil {
		return
	}
	a.step(commitorder.AppMessageSeen{Eid: eid, Epoch: g.Epoch(), Sender: commitorder.MemberID(m.Identity)})
	p, err := unmarshalPayload(pm.ApplicationData)
	if err != nil {
		a.log.Debug("bad application payload", "err", err)
		return
	}
	switch p.Kind {
	case kindText:
		a.addToView(p, m.Identity, g.Epoch(), 0)
	case kindIntent:
		a.onIntent(p, m.Identity)
	case kindWelcome:
		a.onRelayedWelcome(p, m.Identity)
	}
}

func (a *groupActor) addToView(p *appPayload, sender []byte, epoch uint64, flags store.MessageFlags) {
	sm := store.Message{Group: a.id, ID: store.MessageID(p.ID), Time: p.Time, Sender: sender, Text: p.Text, Epoch: epoch, Flags: flags}
	if err := a.storeReceived(sm); err != nil {
		a.log.Warn("add message to view", "err", err)
	}
}

// onCommit hands a processed Commit to commitorder and keeps the epoch it
// produces. It reports false for a Commit that is invalid for Grove
// (dropped, or judged invalid), which is then not logged.
func (a *groupActor) onCommit(parentEid commitorder.EpochID, parent *mls.Group, sc *mls.StagedCommit, cid commitorder.CommitID, data []byte) bool {
	var committer []byte
	class := classOf(sc.Proposals)
	switch sc.Sender.Type {
	case mls.SenderTypeMember:
		m, err := parent.Member(sc.Sender.LeafIndex)
		if err != nil {
			sc.Discard()
			return false
		}
		committer = m.Identity
	case mls.SenderTypeNewMemberCommit:
		// An external Commit. Grove uses them only for a member's rejoin
		// that replaces its own old leaf (RFC 9420, Section 12.4.3.2,
		// resync): that is a member rotating its own keys, which the policy
		// allows any member, so it is classed as an update (commitorder's
		// doc counts leaf replacement as a removal, which with admins would
		// make a non-admin's rejoin always invalid). Any other external
		// Commit (a stranger joining, or one claiming a member's identity
		// under another key) is dropped: it must not reach the admin check
		// under a borrowed identity.
		id, selfOnly := externalCommitter(parent, data, sc)
		if id != nil && selfOnly {
			committer = id
			class = commitorder.ClassUpdate
		} else if committer = accountJoinCommitter(parent, data, sc); committer != nil {
			// A new device of an admin's account adding itself: the
			// account's admin acts (accountjoin.go).
			class = commitorder.ClassAdd
		} else {
			sc.Discard()
			a.reject(rejectExternal)
			return false
		}
	default:
		sc.Discard()
		return false
	}
	ev := commitorder.CommitSeen{
		Parent: parentEid, Epoch: sc.Epoch, Cid: cid, Class: class,
		Committer: commitorder.MemberID(committer), Valid: true,
	}
	if sc.SelfRemoved && sc.Sender.Type == mls.SenderTypeMember {
		// No next epoch to compare (we are not in it): the committer's new
		// leaf is in the Commit's path.
		if id, ok := pathIdentity(data); ok && !bytes.Equal(id, committer) {
			sc.Discard()
			a.invalidCommit(ev, rejectIdentity)
			return false
		}
	}
	if sc.SelfRemoved {
		// We cannot compute the next epoch (we are not in it); name it by
		// its commit so commitorder can still judge it and, once final,
		// tell us we were removed.
		s := sha256.Sum256(append([]byte("grove removed"), cid[:]...))
		copy(ev.Eid[:], s[:16])
		for _, m := range memberIDs(parent) {
			if m != commitorder.MemberID(a.n.selfID) {
				ev.Members = append(ev.Members, m)
			}
		}
		ev.Admins = adminIDs(parent)
		a.selfRemove[ev.Eid] = pendingRemoval{epoch: sc.Epoch, members: len(ev.Members)}
		sc.Discard()
	} else {
		next, err := sc.Merge()
		if err != nil {
			return false
		}
		if reason := commitRule(parent, next, sc.Sender); reason != "" {
			next.Erase()
			a.invalidCommit(ev, reason)
			return false
		}
		eid, err := epochID(next)
		if err != nil {
			return false
		}
		a.epochs[eid] = next
		if err := a.persist(eid); err != nil {
			a.log.Warn("persist epoch", "err", err)
		}
		ev.Eid, ev.Members, ev.Admins = eid, memberIDs(next), adminIDs(next)
	}
	a.step(ev)
	a.retryHeld(sc.Epoch)
	return true
}

// invalidCommit tells commitorder about a Commit that is valid by RFC 9420
// but breaks Grove's rules (commitRule): seen, so it is not asked for
// again, but invalid, so it can never be canonical nor count as its
// committer's act. Its epoch is named by its commit, as it is never
// computed.
func (a *groupActor) invalidCommit(ev commitorder.CommitSeen, reason rejectReason) {
	a.reject(reason)
	s := sha256.Sum256(append([]byte("grove invalid"), ev.Cid[:]...))
	copy(ev.Eid[:], s[:16])
	ev.Valid, ev.Members, ev.Admins = false, nil, nil
	a.step(ev)
}

// pathIdentity returns the credential identity of the committer's new leaf
// in a PublicMessage Commit with a path.
func pathIdentity(data []byte) ([]byte, bool) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPublicMessage {
		return nil, false
	}
	c := m.PublicMessage.Content.Commit
	if c == nil || c.Path == nil {
		return nil, false
	}
	return c.Path.LeafNode.Credential.Identity, true
}

// retryHeld processes again the messages held for epoch, now that a
// Commit produced an epoch with that number (a held Commit among them may
// produce the next one, whose messages it then retries in turn).
func (a *groupActor) retryHeld(epoch uint64) {
	for _, d := range a.held.take(epoch) {
		a.receive(d)
	}
}
