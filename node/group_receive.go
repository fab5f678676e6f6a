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

// validate is the gossip validator: cheap checks only (size, the
// group's envelope, then the MLSMessage parse, group id binding and no
// standalone Proposal, or a sealed tip's shape). Runs on p2p's
// goroutines. What it rejects is counted (rejectLog).
func (a *groupActor) validate(_ context.Context, _ peer.ID, data []byte) p2p.ValidationResult {
	if len(data) == 0 || len(data) > paddedSize(store.MaxMLSMessageLen) {
		a.reject(rejectSize)
		return p2p.Reject
	}
	body, err := a.wire.open(data)
	if err != nil {
		// Not sealed with this group's secret: an outsider (who could
		// only have guessed or been told the topic name) or corruption.
		// (A later envelope format comes with a new topic name.)
		a.reject(rejectEnvelope)
		return p2p.Reject
	}
	if isSealed(body) && len(body) > len(sealedPrefix) && body[len(sealedPrefix)] > sealedVersion {
		// A newer node's seal: dropped, its sender not penalised, so the
		// next version can be rolled out.
		return p2p.Ignore
	}
	if reason := a.precheck(body); reason != "" {
		a.reject(reason)
		return p2p.Reject
	}
	if !isSealed(body) && !externalCommit(body) {
		// Only a rejoin's external Commit travels unsealed (epochseal.go).
		a.reject(rejectUnsealed)
		return p2p.Reject
	}
	return p2p.Accept
}

// precheck returns why data (an MLS message, or a seal) can never be a
// message of this group, or "". Both the gossip validator and receive
// (which also takes synced messages) apply it, before anything is cached
// or logged. A seal is only checked for size here: what it holds needs
// its epoch's key (onSealed), and is checked then.
func (a *groupActor) precheck(data []byte) rejectReason {
	if len(data) == 0 || len(data) > store.MaxMLSMessageLen {
		return rejectSize
	}
	if isSealed(data) {
		if len(data) > sealedLen {
			return rejectSize
		}
		return ""
	}
	if isTip(data) {
		// Plain tips come only with a sync response (onSyncedTip).
		return rejectMalformed
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

// externalCommit reports whether data is an MLSMessage carrying an
// external Commit (a PublicMessage from a new member).
func externalCommit(data []byte) bool {
	m, err := mls.UnmarshalMLSMessage(data)
	return err == nil && m.WireFormat == mls.WireFormatPublicMessage &&
		m.PublicMessage.Content.ContentType == mls.ContentTypeCommit &&
		m.PublicMessage.Content.Sender.Type == mls.SenderTypeNewMemberCommit
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

// receive takes an MLS message (or a sealed tip) from sync or the held
// buffer.
func (a *groupActor) receive(data []byte) { a.receiveFrom(data, "") }

// receiveFrom takes an MLS message or a sealed tip, forwarded to us by
// from when it came by gossip.
func (a *groupActor) receiveFrom(data []byte, from peer.ID) {
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
	if isSealed(data) {
		a.onSealed(data, from)
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
	cands := a.candidates(epoch)
	_, headG := a.head()
	if len(cands) == 0 && a.receiveKept(data, h, epoch) {
		return // an epoch finalised while held after a restart (restarthold.go)
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
	now := a.n.cfg.Clock.Now()
	var lastErr error
	for _, eid := range cands {
		g := a.epochs[eid]
		pm, err := a.processWith(eid, g, data, mls.ProcessOptions{Now: now})
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
			if !a.onApplication(eid, g, pm) {
				return // ephemeral (typing): never logged, so never served again
			}
		case mls.KindCommit:
			// Decrypting it consumed a handshake key of the epoch.
			a.dirty[eid] = true
			if !a.onCommit(eid, g, pm.Commit, commitorder.CommitID(h), data, pm.AuthenticatedData) {
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

// candidates returns the retained epochs numbered epoch in the order
// receiveFrom tries them: the canonical head first, then siblings in a
// fixed order.
func (a *groupActor) candidates(epoch uint64) []commitorder.EpochID {
	var cands []commitorder.EpochID
	headEid, _ := a.head()
	for eid, g := range a.epochs {
		if g.Epoch() == epoch {
			cands = append(cands, eid)
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if (cands[i] == headEid) != (cands[j] == headEid) {
			return cands[i] == headEid
		}
		return bytes.Compare(cands[i][:], cands[j][:]) < 0
	})
	return cands
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

// parentAD is the authenticated_data of the external Commit of a rejoin
// (rejoin.go): a version byte (1) and the parent's epoch id. It names the
// parent for members that no longer (or never) held it, so commitorder
// can judge a sibling that arrives beyond the window; it is an exporter
// output and reveals nothing else.
func parentAD(eid commitorder.EpochID) []byte { return append([]byte{1}, eid[:]...) }

// commitADVersion tags commitAD.
const commitADVersion = 2

// commitAD is the authenticated_data of a member's Commit: a version byte
// (2), the parent's epoch id, the Commit's class and the committer's rank
// on that parent (commitorder.RankOf). The Commit itself is encrypted, so
// a member that does not hold the parent learns what commitorder needs to
// judge it beyond the window (parentMissing) from these alone, as claimed
// by the committer (signed with the Commit, checked by every member that
// decrypts it: checkCommitAD). The rank names the committer only to those
// who knew it and the parent: the members of the parent epoch.
func commitAD(parent commitorder.EpochID, class commitorder.Class, committer commitorder.MemberID) []byte {
	rank := commitorder.RankOf(parent, committer)
	out := make([]byte, 0, 1+len(parent)+1+len(rank))
	out = append(out, commitADVersion)
	out = append(out, parent[:]...)
	out = append(out, byte(class))
	return append(out, rank[:]...)
}

// parseCommitAD decodes commitAD.
func parseCommitAD(ad []byte) (parent commitorder.EpochID, class commitorder.Class, rank commitorder.Rank, ok bool) {
	if len(ad) != 1+len(parent)+1+len(rank) || ad[0] != commitADVersion {
		return parent, 0, rank, false
	}
	copy(parent[:], ad[1:])
	class = commitorder.Class(ad[1+len(parent)])
	copy(rank[:], ad[2+len(parent):])
	return parent, class, rank, true
}

// parentMissing tells commitorder about a Commit whose parent state we do
// not hold, with the class and committer (or its rank) as claimed by its
// framing (commitorder uses them only to judge our own final branch).
func (a *groupActor) parentMissing(data []byte, epoch uint64) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
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
	cid := commitorder.CommitID(sha256.Sum256(data))
	if m.WireFormat == mls.WireFormatPrivateMessage {
		pm := m.PrivateMessage
		if pm.ContentType != mls.ContentTypeCommit {
			return
		}
		parent, class, rank, ok := parseCommitAD(pm.AuthenticatedData)
		if !ok {
			return
		}
		a.step(commitorder.ParentMissing{Parent: parent, ParentEpoch: epoch, Cid: cid, Class: class, Rank: rank})
		return
	}
	if m.WireFormat != mls.WireFormatPublicMessage {
		return
	}
	c := &m.PublicMessage.Content
	if c.ContentType != mls.ContentTypeCommit || c.Commit == nil ||
		len(c.AuthenticatedData) != 17 || c.AuthenticatedData[0] != 1 {
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
	a.step(commitorder.ParentMissing{Parent: parent, ParentEpoch: epoch, Cid: cid,
		Class: class, Committer: commitorder.MemberID(committer)})
}

func (a *groupActor) markSeen(h [32]byte) {
	if len(a.seen) > 1<<16 {
		clear(a.seen) // the log check behind it still deduplicates
	}
	a.seen[h] = struct{}{}
}

// onApplication handles a decrypted application message; it reports
// whether the message belongs in the log (not an ephemeral one).
func (a *groupActor) onApplication(eid commitorder.EpochID, g *mls.Group, pm *mls.ProcessedMessage) bool {
	m, err := g.Member(pm.Sender.LeafIndex)
	if err != nil {
		return true
	}
	a.step(commitorder.AppMessageSeen{Eid: eid, Epoch: g.Epoch(), Sender: commitorder.MemberID(m.Identity)})
	p, err := unmarshalPayload(pm.ApplicationData)
	if err != nil {
		a.log.Debug("bad application payload", "err", err)
		return true
	}
	switch p.Kind {
	case kindText:
		// Through receivePost: edits and deletes may have come first.
		a.receivePost(p, m.Identity, g.Epoch(), 0)
	case kindIntent:
		a.onIntent(p, m.Identity)
	case kindWelcome:
		a.onRelayedWelcome(p, m.Identity)
	case kindContent:
		return a.onContent(p, m.Identity, g)
	}
	return true
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
func (a *groupActor) onCommit(parentEid commitorder.EpochID, parent *mls.Group, sc *mls.StagedCommit, cid commitorder.CommitID, data, ad []byte) bool {
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
		External: sc.Sender.Type == mls.SenderTypeNewMemberCommit,
	}
	if sc.Sender.Type == mls.SenderTypeMember && !commitADMatches(data, ad, parentEid, class, committer) {
		// Every member Commit is a PrivateMessage whose framing tells
		// members beyond the window its class and rank truthfully
		// (commitAD): one that does not could win a fork for them by a
		// false claim, or show outsiders what the group is.
		sc.Discard()
		a.invalidCommit(ev, rejectCommitAD)
		return false
	}
	if sc.SelfRemoved && sc.Sender.Type == mls.SenderTypeMember {
		// No next epoch to compare (we are not in it): the committer's new
		// leaf is in the Commit's path.
		if id := sc.PathIdentity; id != nil && !bytes.Equal(id, committer) {
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
	a.retrySealed()
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

// commitADMatches reports whether a member's Commit (data, as received)
// is a PrivateMessage whose authenticated data is the commitAD of its
// parent, class and committer.
func commitADMatches(data, ad []byte, parent commitorder.EpochID, class commitorder.Class, committer []byte) bool {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPrivateMessage {
		return false
	}
	return bytes.Equal(ad, commitAD(parent, class, commitorder.MemberID(committer)))
}

// retryHeld processes again the messages held for epoch, now that a
// Commit produced an epoch with that number (a held Commit among them may
// produce the next one, whose messages it then retries in turn).
func (a *groupActor) retryHeld(epoch uint64) {
	for _, d := range a.held.take(epoch) {
		a.receive(d)
	}
}
