// Tips and sync requests of a group's actor: sendTip publishes this
// device's head, root and addresses every TipInterval, sealed in its head
// epoch (epochseal.go); takeTip takes a member's tip (opened by onSealed,
// or from a sync response by onSyncedTip; verified, fresh) to
// commitorder, hands its addresses to the network (tipaddrs.go) and
// decides whether to ask that member for the log; requestSync and requestSyncFrom pick whom to ask and start
// the fetches (the sync protocol itself is in sync.go), deferring a
// request while another is in flight.

package node

import (
	"bytes"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
)

// deepSyncEpochs is how far below its root a member asks when a tip shows
// a branch it does not hold.
const deepSyncEpochs = 16

// onSyncedTip takes the tip a sync server sends after the log (serveSync):
// not sealed, as the stream is private to us and the server, which
// answers only members of its head epoch, the one the tip names. It is
// how a member on another branch (whose gossiped tips we cannot open)
// tells us which chain it holds final.
func (a *groupActor) onSyncedTip(data []byte) {
	t, err := unmarshalTip(data)
	if err != nil || t.Version != tipV3 {
		return
	}
	a.takeTip(t)
}

// takeTip acts on a decoded tip: verified against the signature keys of
// the members we know, fresh, it goes to commitorder, its addresses to
// the network, and it may start a sync.
func (a *groupActor) takeTip(t *tip) {
	if !bytes.Equal(t.Group, a.id) {
		return
	}
	_, headG := a.head()
	if headG == nil {
		return
	}
	var member []byte
	for _, g := range a.epochs {
		for _, m := range g.Members() {
			if bytes.Equal(m.SignatureKey, t.SigKey) {
				member = m.Identity
				break
			}
		}
		if member != nil {
			break
		}
	}
	if member == nil || bytes.Equal(member, a.n.selfID) {
		// Unknown signer: perhaps added in an epoch we have not seen yet.
		if t.Epoch > headG.Epoch() {
			a.requestSync("", false)
		}
		return
	}
	if !a.tipChecked(t) { // checked off the actor already (verify.go)?
		if err := a.n.suite.VerifyWithLabel(t.SigKey, "grove tip", t.tbs(), t.Signature); err != nil {
			return
		}
	}
	if !a.freshTip(member, t.Time) {
		return
	}
	a.step(commitorder.TipSeen{Member: commitorder.MemberID(member), Eid: t.Eid, Epoch: t.Epoch, Root: t.Root, RootEpoch: t.RootEpoch})
	if a.phase == phaseRemoved {
		return
	}
	if _, g := a.head(); g != nil {
		a.caughtUp = t.Epoch <= g.Epoch() && a.co.Known(t.Eid)
	}
	a.noteTakeOver(member, t.Epoch)
	var tipper peer.ID
	if id, err := parseIdentity(member); err == nil {
		tipper = id.Peer
		// Only for the peer id in the signer's own credential: a member
		// cannot point others at an address for someone else.
		a.learnTipAddrs(tipper, t.Addrs)
	}
	_, rootEpoch := a.co.Root()
	back, since := a.reappeared(member, a.onOurChain(t.Eid, t.Epoch, headG.Epoch()))
	if back && t.RootEpoch > 0 {
		a.noteCutOff(member, since, t.Root, t.RootEpoch)
	}
	switch {
	case t.Epoch <= headG.Epoch() && !a.co.Known(t.Eid) && !a.co.Known(t.Root) && !a.finalHere(t.Eid):
		// The member is on a branch we do not hold: fetch from before our
		// root so that the sibling commits reach commitorder. (An epoch
		// we finalised is no such branch: the member is behind us on our
		// chain, catching up.)
		a.deepSync = true
		a.requestSync(tipper, false)
	case t.Epoch > headG.Epoch():
		a.requestSync(tipper, false)
	case t.Epoch >= rootEpoch && !a.co.Known(t.Eid):
		// A sibling branch inside our window (a partition that has just
		// healed): the tipper holds it and what was sent on it, which the
		// members we usually ask may not.
		a.requestSync(tipper, false)
	case back:
		// A member we had not heard from for a while. If it was cut off
		// (a partition that has just healed), what it sent meanwhile
		// reached nobody on our side, and if its side made no commit
		// nothing else shows it: its tips name epochs we hold (it may even
		// have caught up from us before tipping). Fetch from it while
		// those epochs are still ours to decrypt.
		a.requestSync(tipper, false)
	}
}

// freshTip reports whether a (verified) tip sent at sent (the member's
// clock, UnixNano) is news: newer than the member's last tip we took and
// within the finality age of our clock. GossipSub may hand a node
// that has just (re)joined the topic tips seconds old, and a peer may
// replay them on purpose; taken as current, such a tip rolls the member's
// claim back to an old epoch, and its epoch, unknown to us by then, looks
// like another branch (which sent us fetching below our root and made
// commitorder believe our chain had diverged). The age bound tolerates
// clock skew up to the finality age; a member whose clock lags ours by
// more is not heard through tips (its commits and messages still count).
func (a *groupActor) freshTip(member []byte, sent uint64) bool {
	at := time.Unix(0, int64(min(sent, 1<<63-1)))
	if age := a.n.cfg.Clock.Now().Sub(at); age > a.tipMaxAge || age < -a.tipMaxAge {
		// (From as far in the future: taken, it would silence the
		// member's honest tips until its clock caught up.)
		return false
	}
	if a.tipTime == nil || len(a.tipTime) > 1<<14 {
		a.tipTime = map[string]uint64{}
	}
	if last, ok := a.tipTime[string(member)]; ok && sent <= last {
		return false
	}
	a.tipTime[string(member)] = sent
	return true
}

// reappeared notes a tip from member and reports whether the member had
// been silent for more than silentTips tip intervals, and since when.
//
// A tip from another branch (onChain false) is no news of the member on
// ours: it says the member could not read what we sent there. Counted as
// heard, a member of the losing half of a partition longer than the
// finality age, whose tips come by sync after the heal, was heard all
// along, so when it rejoined (by external Commit on our final epoch) it
// never reappeared and nobody re-sent what our half had said during the
// split, in epochs it can never read (issue 17, 12-node partition).
func (a *groupActor) reappeared(member []byte, onChain bool) (back bool, since time.Time) {
	now := a.n.cfg.Clock.Now()
	if a.heardAt == nil || len(a.heardAt) > 1<<14 {
		a.heardAt = map[string]time.Time{}
	}
	if !onChain {
		return false, time.Time{}
	}
	last, ok := a.heardAt[string(member)]
	a.heardAt[string(member)] = now
	return ok && now.Sub(last) > silentTips*a.n.cfg.TipInterval, last
}

// onOurChain reports whether a tip's epoch (eid, number epoch) is on our
// chain: the epoch we were on at that number. Without that record (after
// a restart, or from before we joined) an epoch we retain or hold final
// counts. An epoch past our head does not: it may be a rejoin commit that
// lost to another, whose author rejoins again later and must then
// reappear (TestSplitBrainBeyondWindow); a member merely ahead of us is
// heard again once we catch up, at worst costing a re-send of what we
// sent meanwhile, which receivers deduplicate.
func (a *groupActor) onOurChain(eid commitorder.EpochID, epoch, head uint64) bool {
	if epoch > head {
		return false
	}
	if seen := a.epochsSeen[epoch]; seen != nil {
		return seen.eid == eid
	}
	return a.co.Known(eid) || a.finalHere(eid)
}

// silentTips is how many tip intervals without a member's tip count as
// having lost touch with it.
const silentTips = 3

func (a *groupActor) sendTip() {
	if a.phase == phaseRemoved || a.sub == nil {
		return
	}
	eid, g := a.head()
	if g == nil {
		return
	}
	t := a.makeTip()
	if t == nil {
		return
	}
	a.publishIn(eid, sealedTip, t.marshal())
}

// makeTip returns this device's signed tip of its head, or nil.
func (a *groupActor) makeTip() *tip {
	eid, g := a.head()
	if g == nil || a.phase == phaseRemoved {
		return nil
	}
	root, rootEpoch := a.co.Root()
	if b := a.rejoinedOn; root == b.genesis && root != (commitorder.EpochID{}) {
		// Our root is our rejoin's own epoch, final only here: other
		// members of our half may have rejoined by sibling Commits at the
		// same time, and only one can win. Claimed final, each such epoch
		// was one more member holding a chain the winners do not know,
		// and enough of them had the winners rejoin in turn: after a
		// 12-node partition past the finality age, five losers rejoining
		// at once made the six winners rejoin as well, and the group did
		// not converge within a minute (issue 17). What we hold final
		// that the others agree on is the epoch we rejoined from.
		root, rootEpoch = b.parent, b.parentEpoch
	}
	t := &tip{Group: a.id, Time: uint64(a.n.cfg.Clock.Now().UnixNano()), Epoch: g.Epoch(), Eid: eid, Root: root, RootEpoch: rootEpoch, SigKey: a.n.sig.PublicKey(), Addrs: a.n.tipAddrs()}
	sig, err := a.n.sig.SignWithLabel("grove tip", t.tbs())
	if err != nil {
		return nil
	}
	t.Signature = sig
	return t
}

func (a *groupActor) peerConnected(p peer.ID) {
	a.post(func() {
		if a.memberPeers()[p] {
			a.requestSync(p, true)
		}
		if a.headMemberPeers()[p] {
			a.noteReach()
		}
	})
}

// maxSyncPrefer bounds the members a deferred sync remembers to ask first
// (commitorder names at most three per FetchRange).
const maxSyncPrefer = 4

// requestSync asks up to SyncFanout members for the log since our oldest
// retained epoch, prefer first if it is a member of a retained epoch.
// force skips the rate limit (a member just connected).
func (a *groupActor) requestSync(prefer peer.ID, force bool) {
	if prefer != "" && a.memberPeers()[prefer] {
		a.requestSyncFrom([]peer.ID{prefer}, force)
		return
	}
	a.requestSyncFrom(nil, force)
}

// requestSyncFrom is requestSync asking the peers in prefer first, in
// order (up to SyncFanout of them), then other members. prefer need not be
// members of an epoch we hold: commitorder names members seen acting on
// epochs we do not hold, which may have joined there; the server decides
// whether to answer, and every message fetched is validated like gossip.
func (a *groupActor) requestSyncFrom(prefer []peer.ID, force bool) {
	if a.phase == phaseRemoved {
		return
	}
	now := a.n.cfg.Clock.Now()
	// force skips the rate limit, not a sync in flight: that one fetches
	// the same range (from the same root), and a member returning from
	// a long absence connects to several members at once, each
	// connection forcing a sync; run in parallel they each served and
	// sent it the whole log (three times the work, BenchmarkResync).
	// What the in-flight sync does not bring comes with the deferred one,
	// right after it.
	if a.syncs > 0 || (!force && now.Sub(a.lastSync) < a.n.cfg.TipInterval) {
		// Deferred, not dropped: the request in flight may not bring what
		// this one is for (a branch that another member tipped), and
		// commitorder does not ask again before its Retry.
		a.syncWanted = true
		if len(prefer) > 0 {
			a.syncPrefer = mergePrefer(prefer, a.syncPrefer)
		}
		return
	}
	prefer = mergePrefer(prefer, a.syncPrefer)
	a.syncWanted, a.syncPrefer = false, nil
	a.lastSync = now
	_, from := a.co.Root()
	from = a.holdSyncFrom(from) // restarthold.go
	if a.deepSync {
		// A fork below our root: ask from before it (bounded).
		a.deepSync = false
		from -= min(from, deepSyncEpochs)
	}
	self := a.n.net.ID()
	members := a.memberPeers()
	delete(members, self)
	var peers []peer.ID
	for _, p := range prefer {
		if len(peers) >= a.n.cfg.SyncFanout || (force && len(peers) >= 1) {
			break
		}
		if p != self {
			peers = append(peers, p)
		}
	}
	connected := a.n.net.Peers()
	sort.Slice(connected, func(i, j int) bool { return connected[i] < connected[j] })
	// Start at a different member each time: always asking the same
	// few would leave whatever only the others hold (a message sent
	// across a partition that has just healed) unfetched.
	if len(connected) > 1 {
		k := a.syncRound % len(connected)
		connected = append(slices.Clone(connected[k:]), connected[:k]...)
	}
	a.syncRound++
	for _, p := range connected {
		if len(peers) >= a.n.cfg.SyncFanout || (force && len(peers) >= 1) {
			break
		}
		if members[p] && !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	a.syncStarted(len(peers)) // restarthold.go
	for _, p := range peers {
		a.syncs++
		a.n.wg.Add(1)
		go a.n.syncFrom(a, p, from)
	}
}

// mergePrefer lists first then rest without repeats, at most
// maxSyncPrefer peers.
func mergePrefer(first, rest []peer.ID) []peer.ID {
	var out []peer.ID
	for _, p := range slices.Concat(first, rest) {
		if len(out) < maxSyncPrefer && p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
