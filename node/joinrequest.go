package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
)

// Join requests (ARCHITECTURE.md, section 3: "a member asks for a change
// with an application-level intent ... and a member allowed to make it
// commits it by value").
//
// Any member may issue an invite. When the joiner redeems it with an
// inviter that is an admin, the inviter commits the Add itself (join.go).
// When the inviter is not an admin, it cannot: it checks the code and the
// joiner's credential as an admin would, then publishes a join request
// (intentJoin) carrying the joiner's KeyPackage by value to the group. Every
// admin queues it; commitorder lets one admin's Commit win; that admin,
// once the Add's epoch is final, relays the Welcome back inside the group
// (kindWelcome, naming the request); the inviter hands it to the joiner
// still waiting on its /grove/join/1 stream. Other admins drop the request
// when they find the KeyPackage's leaf already in the tree (checkAdd).

// seenJoin is a member's join request an admin queued, remembered so that
// its sender can withdraw it (intentCancelJoin) even after it was
// committed.
type seenJoin struct {
	group     string
	requester []byte // credential identity of the member who asked
	kp        *mls.KeyPackage
	// withdrawn: the withdrawal came first (a sync serves one epoch's
	// messages in hash order), so the request is dropped when it comes.
	withdrawn bool
}

// maxSeenJoins bounds the remembered join requests (oldest forgotten
// first): a withdrawal that comes too late leaves the joiner's unused leaf
// to be replaced when it retries.
const maxSeenJoins = 256

// relayWait is a join request this device published and waits on.
type relayWait struct {
	group string // hex id of the group it was published in
	ch    chan joinResult
}

// requestJoin publishes a join request for kp (an MLSMessage-framed
// KeyPackage) in a's group and returns where its Welcome will arrive, and
// a function that stops waiting for it; cancel (the joiner gave up) also
// withdraws the request from the admins.
func (n *Node) requestJoin(ctx context.Context, a *groupActor, kp []byte) (<-chan joinResult, func(cancel bool), error) {
	p := &appPayload{Kind: kindIntent, Time: n.cfg.Clock.Now().UTC(), Intent: intentJoin, KeyPackage: kp}
	rand.Read(p.ID[:])
	id := commitorder.IntentID(p.ID)
	w := &relayWait{group: a.hexID, ch: make(chan joinResult, 1)}
	n.mu.Lock()
	n.relays[id] = w
	n.mu.Unlock()
	stop := func(cancel bool) {
		n.mu.Lock()
		delete(n.relays, id)
		n.mu.Unlock()
		if cancel {
			a.post(func() { a.withdrawJoin(id) })
		}
	}
	err := a.do(ctx, func() error {
		if a.phase == phaseRemoved {
			return a.errRemoved()
		}
		if a.phase == phaseRejoining {
			return api.Errorf(api.CodeConflict, "this device's state of the group is stale")
		}
		if _, g := a.head(); g == nil {
			return api.Errorf(api.CodeUnavailable, "group has no usable epoch")
		}
		return a.encryptAndPublishIntent(p)
	})
	if err != nil {
		stop(false)
		return nil, nil, err
	}
	return w.ch, stop, nil
}

// withdrawJoin publishes the withdrawal of our join request id.
func (a *groupActor) withdrawJoin(id commitorder.IntentID) {
	if a.phase != phaseActive {
		return
	}
	if _, g := a.head(); g == nil {
		return
	}
	p := &appPayload{Kind: kindIntent, Time: a.n.cfg.Clock.Now().UTC(), Intent: intentCancelJoin, Target: id[:]}
	rand.Read(p.ID[:])
	if err := a.encryptAndPublishIntent(p); err != nil {
		a.log.Warn("withdraw join request", "err", err)
	}
}

// rememberJoin records a queued join request for a later withdrawal.
func (n *Node) rememberJoin(id commitorder.IntentID, sj *seenJoin) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.seenJoins[id]; !ok {
		n.seenJoinOrder = append(n.seenJoinOrder, id)
	}
	n.seenJoins[id] = sj
	for len(n.seenJoinOrder) > maxSeenJoins {
		delete(n.seenJoins, n.seenJoinOrder[0])
		n.seenJoinOrder = n.seenJoinOrder[1:]
	}
}

// onWithdrawJoin handles a member's withdrawal of its join request (Target
// is the request's id): a request not yet committed is dropped; a
// committed one has its leaf removed while it is still unused (the
// joiner never got its Welcome, so that leaf would only keep epochs from
// finalising by witnesses). Only the member who asked may withdraw.
func (a *groupActor) onWithdrawJoin(p *appPayload, sender []byte) {
	if len(p.Target) != len(commitorder.IntentID{}) {
		return
	}
	id := commitorder.IntentID(p.Target)
	a.n.mu.Lock()
	sj := a.n.seenJoins[id]
	a.n.mu.Unlock()
	if sj == nil {
		a.n.rememberJoin(id, &seenJoin{group: a.hexID, requester: bytes.Clone(sender), withdrawn: true})
		return
	}
	if sj.group != a.hexID || !bytes.Equal(sj.requester, sender) || sj.withdrawn {
		return
	}
	a.n.mu.Lock()
	delete(a.n.seenJoins, id)
	a.n.mu.Unlock()
	if _, queued := a.intents[id]; queued && !a.carried(id) {
		delete(a.intents, id)
		return
	}
	if q := a.intents[id]; q != nil {
		q.abandoned = true // never added again if its Commit loses (abandonAdd)
	}
	a.queueIntent(&intent{kind: intentDropLeaf, kp: sj.kp})
}

// joinIntent turns a member's join request into an Add this admin may
// commit, or nil if the request is unusable. The sender vouched for the
// joiner (it checked the invite and that the credential names the peer
// that presented it); the KeyPackage itself is validated by the Commit
// (RFC 9420, Section 10.1) and only its holder can use the Welcome.
func (a *groupActor) joinIntent(id commitorder.IntentID, p *appPayload, sender []byte) *intent {
	m, err := mls.UnmarshalMLSMessage(p.KeyPackage)
	if err != nil || m.WireFormat != mls.WireFormatKeyPackage {
		a.log.Debug("join request without a key package")
		return nil
	}
	if _, err := parseIdentity(m.KeyPackage.LeafNode.Credential.Identity); err != nil {
		a.log.Debug("join request with a foreign credential", "err", err)
		return nil
	}
	if err := a.validateKeyPackage(m.KeyPackage); err != nil {
		a.log.Debug("join request with an invalid key package", "err", err)
		return nil
	}
	// A copy of a member's identity (or peer id) would make the Commit
	// that adds it invalid for every member, and with it every change
	// batched with it.
	if _, g := a.head(); g != nil {
		if why := addConflict(g, m.KeyPackage, nil); why != "" {
			a.log.Info("join request refused", "reason", why)
			return nil
		}
	}
	a.n.mu.Lock()
	sj := a.n.seenJoins[id]
	a.n.mu.Unlock()
	if sj != nil && sj.withdrawn && sj.group == a.hexID && bytes.Equal(sj.requester, sender) {
		a.log.Debug("join request withdrawn before it arrived")
		return nil
	}
	if a.supersedeAdds(m.KeyPackage) {
		a.log.Debug("join request superseded by a newer one")
		return nil
	}
	a.n.rememberJoin(id, &seenJoin{group: a.hexID, requester: bytes.Clone(sender), kp: m.KeyPackage})
	return &intent{id: id, kind: intentAdd, kp: m.KeyPackage, relay: true}
}

// validateKeyPackage checks a joiner's KeyPackage against the canonical
// epoch as RFC 9420, Section 10.1 asks (suite, version, signatures,
// lifetime), before it is queued: a bad one would otherwise fail the whole
// Commit it is batched in.
func (a *groupActor) validateKeyPackage(kp *mls.KeyPackage) error {
	_, g := a.head()
	if g == nil {
		return errors.New("node: no head epoch")
	}
	gc := g.GroupContext()
	s, err := gc.CipherSuite.Suite()
	if err != nil {
		return err
	}
	return mls.ValidateKeyPackage(s, gc.Version, kp, &mls.LeafValidation{GroupID: gc.GroupID, Version: gc.Version, Now: a.n.cfg.Clock.Now()})
}

// relayWelcome sends the Welcome of a committed join request back through
// the group to the member that asked.
func (a *groupActor) relayWelcome(id commitorder.IntentID, welcome []byte) {
	if a.phase == phaseRemoved || welcome == nil {
		return
	}
	p := &appPayload{Kind: kindWelcome, Time: a.n.cfg.Clock.Now().UTC(), Ref: id, Welcome: welcome}
	rand.Read(p.ID[:])
	if _, g := a.head(); g == nil {
		return
	}
	if err := a.encryptAndPublishIntent(p); err != nil {
		a.log.Warn("relay welcome", "err", err)
	}
}

// onRelayedWelcome hands a relayed Welcome to the join request waiting for
// it, if this device made that request in this group and the sender is an
// admin; anything else is ignored (a Welcome is useless without the
// joiner's private keys). Every member sees a join request's id, so
// without the admin check any member could answer it first with a Welcome
// to a group of its own making under the same group id. An admin is any
// device of an admin's account (groupAdmins), not only one the policy
// lists: that device queues join requests and commits them like the
// listed one, and the Welcome of its winning Commit is the only one
// there will be (a linked phone won the fork against its laptop and
// the joiner's Welcome was dropped here).
func (a *groupActor) onRelayedWelcome(p *appPayload, sender []byte) {
	_, g := a.head()
	if g == nil || !isGroupAdmin(g, sender) {
		a.log.Debug("relayed welcome from a non-admin ignored")
		return
	}
	a.n.mu.Lock()
	w := a.n.relays[commitorder.IntentID(p.Ref)]
	a.n.mu.Unlock()
	if w == nil || w.group != a.hexID {
		return
	}
	select {
	case w.ch <- joinResult{welcome: p.Welcome}:
	default: // already answered
	}
}
