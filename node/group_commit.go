// Intents and commits of a group's actor: a change this device will
// commit (its own via queueIntent, a member's request via onIntent) is
// queued with commitorder; when commitorder says ProposeCommit, commit
// builds the Commit from the queued intents on the parent it names,
// applies it locally and publishes it. classOf classes a Commit's
// proposals the way commitorder judges them.

package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/store"
)

// Local intent kinds beyond those carried in intent messages.
const (
	intentUpdate intentKind = 10 // rotate our own keys
	intentAdd    intentKind = 11 // add the holder of a KeyPackage (invite)
)

// intent is a change this device will commit when commitorder says so.
type intent struct {
	id     commitorder.IntentID
	kind   intentKind
	target []byte          // remove/leave: credential identity
	kp     *mls.KeyPackage // add
	join   chan joinResult // add: where the Welcome goes once accepted
	relay  bool            // add from a member's join request: relay the Welcome
	op     policyOp        // intentPolicy: which change (manage.go)
	name   string          // intentPolicy rename: the new name
	// intentPolicy opRotation's account rotation (accountrotate.go) and
	// opHistory's history for new members (history.go).
	rotation []byte
	history  historyWindow
	// abandoned: an add whose joiner gave up after it was committed
	// (abandonAdd). If that Commit loses to a sibling, commitorder hands
	// the intent back; it is then dropped, never added again.
	abandoned bool
}

func (it *intent) class() commitorder.Class {
	switch it.kind {
	case intentAdd, intentHandover, intentPolicy:
		return commitorder.ClassAdd
	case intentUpdate:
		return commitorder.ClassUpdate
	}
	return commitorder.ClassRemove
}

type joinResult struct {
	welcome []byte
	err     error
}

// ownCommit is a Commit this device made and has not settled yet.
type ownCommit struct {
	welcome []byte
	intents []commitorder.IntentID
}

// onIntent queues a member's request if this device may commit it.
func (a *groupActor) onIntent(p *appPayload, sender []byte) {
	if !a.isAdmin() {
		return
	}
	id := commitorder.IntentID(p.ID)
	if _, ok := a.intents[id]; ok {
		return
	}
	it := &intent{id: id, kind: p.Intent, target: p.Target}
	switch p.Intent {
	case intentJoin:
		if it = a.joinIntent(id, p, sender); it == nil {
			return
		}
	case intentCancelJoin:
		a.onWithdrawJoin(p, sender)
		return
	case intentLeave:
		it.target = sender // one may only ask to remove oneself
	case intentRemove:
		// Only an admin may have another member removed; a request from
		// anyone else would let every member remove every other.
		// A device may also ask for its revoked sibling's removal
		// (revoke.go): both are certified by one account.
		_, g := a.head()
		if !slices.ContainsFunc(groupAdmins(g), func(b []byte) bool { return bytes.Equal(b, sender) }) && !sameAccount(g, sender, p.Target) {
			return
		}
	}
	if bytes.Equal(it.target, a.n.selfID) {
		return // an admin cannot commit its own removal (RFC 9420, Section 12.2)
	}
	a.intents[id] = it
	a.step(commitorder.IntentQueued{ID: id, Class: it.class()})
}

func classOf(props []*mls.Proposal) commitorder.Class {
	c := commitorder.ClassUpdate
	for _, p := range props {
		switch p.Type {
		case mls.ProposalTypeRemove, mls.ProposalTypeReInit, mls.ProposalTypeExternalInit:
			return commitorder.ClassRemove
		case mls.ProposalTypeAdd, mls.ProposalTypeGroupContextExtensions, mls.ProposalTypePSK:
			c = commitorder.ClassAdd
		}
	}
	return c
}

func (a *groupActor) queueIntent(it *intent) error {
	if a.phase == phaseRemoved {
		return a.errRemoved()
	}
	if it.id == (commitorder.IntentID{}) {
		rand.Read(it.id[:])
	}
	if it.kind == intentAdd && a.supersedeAdds(it.kp) {
		return api.Errorf(api.CodeConflict, "a newer join attempt of this device is already queued")
	}
	a.intents[it.id] = it
	a.step(commitorder.IntentQueued{ID: it.id, Class: it.class()})
	return nil
}

// supersedeAdds drops queued, not yet committed Adds of the device whose
// signature key kp carries and that are older than kp (that device retried
// its join, and two leaves with one key cannot be in one Commit, RFC 9420,
// Section 7.3). It reports whether kp itself is obsolete: a newer Add of
// the same device is already queued (a join request that arrived late).
func (a *groupActor) supersedeAdds(kp *mls.KeyPackage) (obsolete bool) {
	for id, old := range a.intents {
		if old.kind != intentAdd || !bytes.Equal(old.kp.LeafNode.SignatureKey, kp.LeafNode.SignatureKey) {
			continue
		}
		if old.kp.LeafNode.Lifetime.NotBefore >= kp.LeafNode.Lifetime.NotBefore {
			obsolete = true
			continue
		}
		if a.carried(id) {
			continue
		}
		if old.join != nil {
			old.join <- joinResult{err: errors.New("superseded by a newer join attempt")}
		}
		delete(a.intents, id)
	}
	return obsolete
}

// carried reports whether one of our unsettled Commits carries intent id.
func (a *groupActor) carried(id commitorder.IntentID) bool {
	for _, oc := range a.own {
		if slices.Contains(oc.intents, id) {
			return true
		}
	}
	return false
}

// abandonedAddPending reports whether an abandoned Add of kp is carried by
// a Commit of ours that has not settled yet.
func (a *groupActor) abandonedAddPending(kp *mls.KeyPackage) bool {
	for id, it := range a.intents {
		if it.kind == intentAdd && it.abandoned && it.kp != nil && kp != nil &&
			bytes.Equal(it.kp.LeafNode.EncryptionKey, kp.LeafNode.EncryptionKey) && a.carried(id) {
			return true
		}
	}
	return false
}

func (a *groupActor) commit(parentEid commitorder.EpochID, ids []commitorder.IntentID) {
	parent := a.epochs[parentEid]
	if parent == nil {
		return
	}
	var props []*mls.Proposal
	var carried []commitorder.IntentID
	var joins []*intent
	forcePath := false
	removed := map[mls.LeafIndex]bool{}
	stale := map[mls.LeafIndex]bool{} // unused leaves of joiners that gave up
	var adding []*mls.KeyPackage      // Adds in this Commit so far
	var pol *policy                   // the new policy, if any intent changes it
	for _, id := range ids {
		it := a.intents[id]
		if it == nil {
			continue
		}
		switch it.kind {
		case intentUpdate:
			forcePath = true
		case intentHandover, intentPolicy:
			// One GroupContextExtensions proposal per Commit (RFC 9420,
			// Section 12.2): every policy change goes into it.
			if pol == nil {
				pol = groupPolicy(parent).clone()
			}
			if !a.applyToPolicy(parent, pol, it) {
				delete(a.intents, id) // done already, or impossible now
				continue
			}
		case intentDropLeaf:
			leaf, ok := unusedLeaf(parent, it.kp)
			if !ok && a.abandonedAddPending(it.kp) {
				// The Add that made the leaf is in a Commit of ours not
				// settled yet: once it settles the leaf is here to drop;
				// if it loses, the Add is dropped with it. Kept queued.
				continue
			}
			if !ok || removed[leaf] {
				delete(a.intents, id) // used after all, or already gone
				continue
			}
			removed[leaf], stale[leaf] = true, true
			props = append(props, &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: leaf}})
		case intentAdd:
			if it.abandoned {
				// Its Commit lost and the joiner is gone: adding it now
				// would leave a leaf nobody uses (abandonAdd).
				delete(a.intents, id)
				continue
			}
			leaf, c := checkAdd(parent, it.kp)
			if c == addObsolete {
				// Added by another commit, or superseded by the device's
				// newer attempt.
				if it.join != nil {
					it.join <- joinResult{err: errors.New("this device is already in the group")}
				}
				delete(a.intents, id)
				continue
			}
			// Checked when queued, but the tree may have changed since
			// (another admin's Add, a join request and a direct join of
			// the same identity): an Add that would give two members one
			// identity or peer id makes the whole Commit invalid, for
			// ever, so it is dropped here and the rest goes ahead.
			if why := addConflict(parent, it.kp, adding); why != "" {
				a.dropAdd(it, why)
				continue
			}
			if a.n.revokedIdentity(it.kp.LeafNode.Credential.Identity) {
				a.dropAdd(it, "that device was revoked by its account")
				continue
			}
			if c == addReplaces && !removed[leaf] {
				removed[leaf], stale[leaf] = true, true
				props = append(props, &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: leaf}})
			}
			adding = append(adding, it.kp)
			props = append(props, &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *it.kp}})
			joins = append(joins, it)
		case intentLeave, intentRemove:
			leaf, ok := leafOf(parent, it.target)
			if !ok || removed[leaf] {
				delete(a.intents, id) // already gone: nothing to do
				continue
			}
			removed[leaf] = true
			props = append(props, &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: leaf}})
		}
		carried = append(carried, id)
	}
	if len(carried) == 0 {
		return
	}
	if pol != nil {
		props = append(props, policyProposal(parent, pol))
	}
	// A PrivateMessage (RFC 9420, Section 6.3): the proposals, the
	// committer and the new members' credentials are for the members of
	// the parent epoch only (envelope.go).
	sc, err := parent.Commit(&mls.CommitOptions{Proposals: props, SkipCached: true, ForcePath: forcePath, Private: true,
		AuthenticatedData: commitAD(parentEid, classOf(props), commitorder.MemberID(a.n.selfID)),
		Now:               a.n.cfg.Clock.Now(), Rand: rand.Reader})
	if err != nil {
		a.log.Warn("commit failed", "err", err)
		for _, it := range joins {
			if it.join != nil { // a relayed join request has no waiter here
				it.join <- joinResult{err: fmt.Errorf("node: add: %w", err)}
			}
			delete(a.intents, it.id)
		}
		return
	}
	next, err := sc.Merge()
	if err != nil {
		return
	}
	// Every member judges our Commit by the same rules (onCommit): one
	// that breaks them is never published, or it would only be rejected
	// everywhere and retried for ever with the intents that broke it.
	if reason := commitRule(parent, next, mls.MemberSender(parent.OwnLeaf())); reason != "" {
		next.Erase()
		a.log.Warn("own commit would be invalid; its adds and policy changes are dropped", "reason", string(reason))
		for _, it := range joins {
			a.dropAdd(it, "adding it would break the group's rules ("+string(reason)+")")
		}
		for _, id := range carried {
			if it := a.intents[id]; it != nil && it.kind == intentPolicy {
				delete(a.intents, id)
			}
		}
		return
	}
	eid, err := epochID(next)
	if err != nil {
		return
	}
	a.epochs[eid] = next
	if err := a.persist(eid); err != nil {
		a.log.Warn("persist epoch", "err", err)
	}
	cid := commitorder.CommitID(sha256.Sum256(sc.Message))
	a.own[cid] = &ownCommit{welcome: sc.Welcome, intents: carried}
	a.markSeen(cid)
	a.n.db.AppendLog(a.id, parent.Epoch(), store.MessageHash(cid), sc.Message)
	a.step(commitorder.CommitSeen{
		Parent: parentEid, Eid: eid, Epoch: next.Epoch(), Cid: cid, Class: classOf(sc.Proposals),
		Committer: commitorder.MemberID(a.n.selfID), Valid: true,
		Members: memberIDs(next), Admins: adminIDs(next),
		Own: true, Intents: carried, Welcome: sc.Welcome != nil,
	})
	if !a.co.Known(eid) {
		// commitorder refused it (a rule commitRule does not know yet):
		// published, it would be refused everywhere, and its intents
		// would come back in every later Commit. Its Adds are dropped;
		// the rest is proposed again without them.
		a.log.Warn("own commit refused by commitorder; not published")
		delete(a.own, cid)
		delete(a.epochs, eid)
		next.Erase()
		a.n.db.DeleteEpochState(a.id, store.EpochID(eid)) // persisted above
		for _, it := range joins {
			a.dropAdd(it, "the group's rules refused the commit adding it")
		}
		return
	}
	a.changesCommitted(carried, next.Epoch())
	a.publishIn(parentEid, sealedMLS, sc.Message)
	a.welcomeEarly(parent, stale, cid)
	a.n.metrics.messagesOut.Add(1)
	a.retrySealed() // seals of the new epoch that came before it
}

func leafOf(g *mls.Group, identity []byte) (mls.LeafIndex, bool) {
	for _, m := range g.Members() {
		if bytes.Equal(m.Identity, identity) {
			return m.Leaf, true
		}
	}
	return 0, false
}

// addConflict returns why the holder of kp cannot be added to g together
// with the KeyPackages in batch, or "". No two members may share a
// credential identity or the peer id inside it: members are told apart,
// served history and removed by them, and commitorder rejects an epoch
// that lists one identity twice. A member with kp's signature key is the
// same device (only the key's holder can sign kp), which checkAdd handles.
func addConflict(g *mls.Group, kp *mls.KeyPackage, batch []*mls.KeyPackage) string {
	id := kp.LeafNode.Credential.Identity
	mi, err := parseIdentity(id)
	if err != nil {
		return "its credential is not a Grove identity"
	}
	clash := func(other []byte) string {
		if bytes.Equal(other, id) {
			return "a member with the same identity is already in the group"
		}
		if o, err := parseIdentity(other); err == nil && o.Peer == mi.Peer {
			return "a member with the same peer id is already in the group"
		}
		return ""
	}
	for _, m := range g.Members() {
		if bytes.Equal(m.SignatureKey, kp.LeafNode.SignatureKey) {
			continue
		}
		if why := clash(m.Identity); why != "" {
			return why
		}
	}
	for _, b := range batch {
		if why := clash(b.LeafNode.Credential.Identity); why != "" {
			return why
		}
	}
	// Its device certificate must hold for its leaf (devices.go).
	if _, err := verifyDevice(id, kp.LeafNode.SignatureKey); err != nil {
		return "its device certificate does not hold: " + err.Error()
	}
	return ""
}

// dropAdd gives up an Add intent that can never be committed: the joiner,
// if waiting here, is told why; a relayed request's joiner waits at its
// inviter, which checked the same rule before asking (serveJoin).
func (a *groupActor) dropAdd(it *intent, why string) {
	a.log.Info("join request dropped", "reason", why)
	if it.join != nil {
		select {
		case it.join <- joinResult{err: errors.New(why)}:
		default:
		}
	}
	delete(a.intents, it.id)
}

// commitRule checks what Grove requires of every Commit beyond RFC 9420,
// given the parent epoch and the epoch it produces: the committer's leaf
// keeps its credential identity (a member rotating its keys must not
// come out of it as somebody else: a basic credential is only bytes, and
// every list, log line and removal names members by it), and the members
// it adds share neither identity nor peer id with any other member. A
// pair that shared them before is left alone: refusing every later
// Commit for it would freeze the group. It returns why the Commit breaks
// them, or "".
func commitRule(parent, next *mls.Group, sender mls.Sender) rejectReason {
	if sender.Type == mls.SenderTypeMember {
		before, err1 := parent.Member(sender.LeafIndex)
		after, err2 := next.Member(sender.LeafIndex)
		if err1 != nil || err2 != nil || !bytes.Equal(before.Identity, after.Identity) {
			return rejectIdentity
		}
	}
	old := map[mls.LeafIndex][]byte{}
	for _, m := range parent.Members() {
		old[m.Leaf] = m.SignatureKey
	}
	ms := next.Members()
	peers := make([]peer.ID, len(ms))
	for i, m := range ms {
		if id, err := parseIdentity(m.Identity); err == nil {
			peers[i] = id.Peer
		}
	}
	for i, m := range ms {
		if k, ok := old[m.Leaf]; ok && bytes.Equal(k, m.SignatureKey) {
			continue // not new in this epoch
		}
		// A new leaf's device certificate must hold for it: signed by the
		// account it names, for this very key and peer (devices.go).
		mi, err := verifyDevice(m.Identity, m.SignatureKey)
		if errors.Is(err, ErrDeviceCertificate) {
			return rejectDevice
		}
		// Nor certified by an account key the group knows was replaced,
		// for a device its rotation does not keep (accountrotate.go).
		if err == nil && mi.Cert != nil && acceptedCert(groupRotations(next), mi.Cert) != nil {
			return rejectDevice
		}
		for j, o := range ms {
			if j != i && (bytes.Equal(o.Identity, m.Identity) || (peers[i] != "" && peers[i] == peers[j])) {
				return rejectDuplicate
			}
		}
	}
	return policyRule(parent, next)
}
