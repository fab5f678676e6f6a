package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/store"
)

// Beyond the window (ARCHITECTURE.md, section 3): when commitorder says our
// last known state is final elsewhere on a branch that lost, we rejoin by an
// external Commit that removes our old leaf (RFC 9420, Section 12.4.3.2),
// from a GroupInfo that two members agree on, then re-send what we wrote on
// the lost branch under the same message ids.

// rejoinState is what a pending rejoin must re-send.
type rejoinState struct {
	outbox    []commitorder.MsgID
	forkEpoch uint64
	members   map[string]bool // members of our old head: the re-send rule
	// vouchers are the members that hold the winning branch final: only
	// their GroupInfos are used (nil after a restart: any member).
	vouchers map[peer.ID]bool
	inFlight bool
}

// rejoinBase is the epoch a rejoin's external Commit was made on (final
// at the vouchers) and the epoch that Commit made (our genesis).
type rejoinBase struct {
	genesis, parent commitorder.EpochID
	parentEpoch     uint64
}

// startRejoin runs on the actor when commitorder emits Rejoin.
func (a *groupActor) startRejoin(e commitorder.Rejoin) {
	a.phase = phaseRejoining
	rs := &rejoinState{outbox: e.Outbox, forkEpoch: e.ForkEpoch, members: map[string]bool{}, vouchers: map[peer.ID]bool{}}
	for _, v := range e.Vouchers {
		if id, err := parseIdentity([]byte(v)); err == nil {
			rs.vouchers[id.Peer] = true
		}
	}
	if len(rs.vouchers) == 0 {
		rs.vouchers = nil
	}
	if _, g := a.head(); g != nil {
		for _, m := range g.Members() {
			rs.members[string(m.Identity)] = true
		}
	}
	a.rejoin = rs
	a.tryRejoin()
}

// tryRejoin fetches GroupInfos in the background; the result comes back to
// the actor. It is retried on the tip timer while the group is rejoining
// (phaseRejoining).
func (a *groupActor) tryRejoin() {
	if a.rejoin == nil || a.rejoin.inFlight {
		return
	}
	members := a.memberPeers()
	if a.rejoin.vouchers != nil {
		members = a.rejoin.vouchers
	}
	delete(members, a.n.net.ID())
	var peers []peer.ID
	for _, p := range a.n.net.Peers() {
		if members[p] {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		return
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i] < peers[j] })
	need := min(2, len(members))
	a.rejoin.inFlight = true
	a.n.wg.Add(1)
	go func() {
		defer a.n.wg.Done()
		type answer struct {
			gi  []byte
			eid [16]byte
			ctx []byte
		}
		var answers []answer
		for _, p := range peers {
			gi, eid, err := a.n.fetchGroupInfo(a.n.ctx, a.id, p)
			if err != nil {
				continue
			}
			m, err := mls.UnmarshalMLSMessage(gi)
			if err != nil || m.WireFormat != mls.WireFormatGroupInfo {
				continue
			}
			gc, err := m.GroupInfo.GroupContext.MarshalBinary()
			if err != nil {
				continue
			}
			answers = append(answers, answer{gi, eid, gc})
		}
		// Cross-check: use a GroupInfo only when `need` members vouch for
		// the same group context and epoch id (one liar cannot steer us).
		var pick *answer
		for i := range answers {
			agree := 0
			for j := range answers {
				if bytes.Equal(answers[i].ctx, answers[j].ctx) && answers[i].eid == answers[j].eid {
					agree++
				}
			}
			if agree >= need {
				pick = &answers[i]
				break
			}
		}
		a.post(func() {
			a.rejoin.inFlight = false
			if pick != nil {
				a.finishRejoin(pick.gi, pick.eid)
			}
		})
	}()
}

// finishRejoin joins by external Commit and replaces the group's state.
func (a *groupActor) finishRejoin(gi []byte, parent commitorder.EpochID) {
	rs := a.rejoin
	if rs == nil {
		return
	}
	n := a.n
	now := n.cfg.Clock.Now()
	g, commitMsg, err := mls.JoinExternal(&mls.ExternalJoinParams{
		GroupInfo: gi, Credential: mls.NewBasicCredential(n.selfID),
		Capabilities: mls.Capabilities{Extensions: groveExtensions},
		SigningKey:   n.sig, Resync: true, AuthenticatedData: parentAD(parent), Config: groupConfig(), Now: now, Rand: rand.Reader,
	})
	if err != nil {
		a.log.Warn("rejoin by external commit failed", "err", err)
		return
	}
	eid, err := epochID(g)
	if err != nil {
		return
	}
	rate := DefaultCommitRate
	if p := groupPolicy(g); p.RateLimit > 0 {
		rate = int(p.RateLimit)
	}
	cid := commitorder.CommitID(sha256.Sum256(commitMsg))
	co, err := commitorder.New(n.coConfig(rate), commitorder.MemberID(n.selfID), commitorder.Genesis{
		Eid: eid, Epoch: g.Epoch(), Members: memberIDs(g), Admins: adminIDs(g),
		HasCommit: true, Parent: parent, Class: commitorder.ClassUpdate, Committer: commitorder.MemberID(n.selfID), Cid: cid,
		External: true,
	}, now)
	if err != nil {
		a.log.Warn("rejoin: commit order", "err", err)
		return
	}
	a.endRestartHold() // restarthold.go
	for old, og := range a.epochs {
		og.Erase()
		delete(a.epochs, old)
		n.db.DeleteEpochState(a.id, store.EpochID(old))
	}
	a.held.reset()
	a.co, a.phase, a.rejoin = co, phaseActive, nil
	a.rejoinedOn = rejoinBase{genesis: eid, parent: parent, parentEpoch: g.Epoch() - 1}
	// Siblings of our rejoin commit (another member of the losing half
	// rejoining at once) are judged at its parent, which the genesis
	// records: they must reach commitorder.
	a.setFloor(g.Epoch() - 1)
	a.cut = nil // what we sent on the lost branch is re-sent below
	// The lost branch's epochs are not our chain any more: a member still
	// on them (another member of our half, not yet rejoined) is not heard
	// on our chain until it rejoins too, and then reappears (cutoff.go),
	// so that what we say from here on is re-sent to it. Their members
	// stay: they are who could read what we sent there.
	for e, seen := range a.epochsSeen {
		if e > rs.forkEpoch && e < g.Epoch() {
			seen.eid = commitorder.EpochID{}
		}
	}
	a.epochs[eid] = g
	if err := a.persist(eid); err != nil {
		a.log.Warn("persist epoch", "err", err)
	}
	a.saveOrder()
	a.markSeen(cid)
	n.db.AppendLog(a.id, g.Epoch()-1, store.MessageHash(cid), commitMsg)
	a.publish(commitMsg)
	n.metrics.messagesOut.Add(1)
	n.emit(api.Event{Kind: api.EventSync, Group: a.hexID, Time: now, Detail: "rejoined the group after losing a partition"})
	a.log.Info("rejoined by external commit", "epoch", g.Epoch())

	// Re-send what we wrote on the lost branch, only if nobody in the
	// group now was absent from our old branch (never leak to someone the
	// other branch added and we never vetted).
	for _, m := range g.Members() {
		if !rs.members[string(m.Identity)] {
			a.log.Warn("not re-sending messages from the lost branch: membership differs")
			return
		}
	}
	ids := map[[16]byte]bool{}
	for _, id := range rs.outbox {
		ids[id] = true
	}
	// What an earlier rejoin re-sent may have gone out on a rejoin epoch
	// that lost in turn (two members rejoining at once); our new
	// commitorder took that epoch as settled, so re-send those too.
	for id := range a.resent {
		ids[id] = true
	}
	// The fork point itself too: what we said there during the split,
	// before our half's commit, the winners never got, and they finalised
	// that epoch without it (issue 17, testnet partition seed 12: the
	// losers' first messages, lost for the whole winning half). What we
	// said there before the split they have: a duplicate, shown once.
	if msgs, err := n.db.Messages(a.id, time.Time{}, 1<<30); err == nil {
		for _, m := range msgs {
			if m.Epoch >= rs.forkEpoch && bytes.Equal(m.Sender, n.selfID) {
				ids[m.ID] = true
			}
		}
	}
	keys := make([][16]byte, 0, len(ids))
	for id := range ids {
		keys = append(keys, id)
	}
	slices.SortFunc(keys, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	a.resent, a.resentEpoch = ids, g.Epoch()
	for _, id := range keys {
		var plain []byte
		if e, err := n.db.Outbox(a.id, store.MessageID(id)); err == nil {
			plain = e.Plaintext
		} else if m, err := n.db.MessageFrom(a.id, n.selfID, store.MessageID(id)); err == nil {
			// Settled on the lost branch, so gone from the outbox: put it
			// back, so that a later fork or rejoin re-sends it again.
			if plain = resendPlaintext(m); plain == nil { // content.go
				continue // deleted: nothing of it is sent again
			}
			if err := n.db.PutOutbox(store.OutboxEntry{Group: a.id, ID: store.MessageID(id), State: store.OutboxPending,
				Epoch: g.Epoch(), Plaintext: plain, Created: now}); err != nil {
				continue
			}
		} else {
			continue
		}
		if err := a.encryptAndPublish(plain, id); err != nil {
			a.log.Warn("re-send after rejoin", "err", err)
		}
	}
}

// externalCommitter returns the identity of an external Commit's joiner
// and whether the commit only replaces the joiner's own old leaf (a resync).
func externalCommitter(parent *mls.Group, data []byte, sc *mls.StagedCommit) ([]byte, bool) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPublicMessage {
		return nil, false
	}
	c := m.PublicMessage.Content.Commit
	if c == nil || c.Path == nil {
		return nil, false
	}
	id := c.Path.LeafNode.Credential.Identity
	key := c.Path.LeafNode.SignatureKey
	// A resync must remove exactly one leaf, with the same identity and the
	// same signature key: a basic credential is only bytes, so the key (the
	// device's long-term MLS key, proven by the commit's signature) is what
	// shows that the old leaf's owner is the one rejoining.
	removed := 0
	selfOnly := true
	for _, p := range sc.Proposals {
		switch p.Type {
		case mls.ProposalTypeExternalInit:
		case mls.ProposalTypeRemove:
			removed++
			old, err := parent.Member(p.Remove.Removed)
			if err != nil || !bytes.Equal(old.Identity, id) || !bytes.Equal(old.SignatureKey, key) {
				selfOnly = false
			}
		default:
			selfOnly = false
		}
	}
	return id, selfOnly && removed == 1
}
