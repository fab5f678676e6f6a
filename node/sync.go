package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// syncBatchBytes bounds one /grove/sync/1 response frame (below p2p's
// default frame limit).
const syncBatchBytes = 512 << 10

// syncTimeout bounds one sync exchange.
const syncTimeout = 30 * time.Second

// groupConfig is the MLS configuration of every group this node creates or
// joins (it is stored with each epoch's state and carried to the next).
//
// A member returning from a long absence does not receive what it missed in
// order: GossipSub's IWANT repair hands it the last seconds of messages from
// a sender's cache as soon as it is back on the topic, ahead of the
// /grove/sync/1 pages that bring everything from its oldest epoch in
// arrival order, and a message of a later epoch waits in the held buffer
// and is decrypted the moment its Commit arrives, before that epoch's
// earlier messages further down the page. Decrypting such a message moves
// the sender's ratchet past every generation in between, keeping their keys
// (RFC 9420, Section 15.3 leaves both bounds to the application). With mls's default window of 256 kept keys, a jump of more
// than 256 erased the oldest, and those messages, still to come from the
// sync, could never be decrypted: the resync stalled for good (issue 8/9,
// BenchmarkResync stuck at 1551 of 2001 messages). Keeping as many skipped
// keys as a message may jump ahead (MaxForwardGeneration) means that no
// single early message costs the key of an earlier one; a message further
// ahead is refused without consuming anything and comes again, in order,
// with the sync. The cost is memory only while messages are out of order
// (at most the forward bound of keys per sender and retained epoch).
func groupConfig() mls.Config {
	return mls.Config{SecretTree: mls.SecretTreeConfig{
		MaxForwardGeneration: mls.DefaultMaxForwardGeneration,
		MaxSkippedKeys:       mls.DefaultMaxForwardGeneration,
	}}
}

// serveSync is the server side of /grove/sync/1: the log of the group from
// the requested epoch on, in epoch order, then the server's own tip, to
// peers whose credential is in the group's canonical epoch. Ciphertext costs the server no forward
// secrecy; the membership check keeps outsiders from collecting it.
func (n *Node) serveSync(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		s.Reset()
		return
	}
	req, err := unmarshalSyncRequest(frame)
	if err != nil {
		s.Reset()
		return
	}
	if n.revokedPeer(s.RemotePeer()) {
		// Its account revoked it: no history, not even up to its removal.
		n.log.Info("sync refused", "peer", s.RemotePeer(), "err", "device revoked")
		s.Reset()
		return
	}
	a, err := n.lookupServing(hexOf(req.Group))
	if err != nil || !bytesEqual(a.id, req.Group) {
		s.Reset()
		return
	}
	var member bool
	var head uint64
	var ourTip []byte
	if err := a.do(ctx, func() error {
		member = a.phase != phaseRemoved && a.headMemberPeers()[s.RemotePeer()]
		if _, g := a.head(); g != nil {
			head = g.Epoch()
		}
		if !member {
			return nil
		}
		if t := a.makeTip(); t != nil {
			ourTip = t.marshal()
		}
		return nil
	}); err != nil || !member {
		if err == nil && n.serveRemovedSync(ctx, s, a, req) {
			return // a member removed while away (removalsync.go)
		}
		n.log.Info("sync refused", "peer", s.RemotePeer(), "err", errNotMember)
		s.Reset()
		return
	}
	if req.Kind == syncGroupInfo {
		var gi, key []byte
		var eid [16]byte
		err := a.do(ctx, func() error {
			e, g := a.head()
			if g == nil {
				return errNotMember
			}
			eid = e
			var err error
			if gi, err = g.GroupInfo(true); err != nil {
				return err
			}
			key, err = epochKeyBytes(g)
			return err
		})
		if err != nil {
			s.Reset()
			return
		}
		// The epoch's sealing key too (epochseal.go): the requester, a
		// member of that epoch by its leaf, rejoins with an external
		// Commit on it, which it can then seal as members seal Commits.
		if err := s.Send((&syncBatch{Messages: [][]byte{gi, eid[:], key}}).marshal()); err != nil {
			s.Reset()
			return
		}
		s.CloseWrite()
		return
	}
	pages := syncPager{s: s}
	for e := req.From; e <= head; e++ {
		entries, err := n.db.LogByEpoch(a.id, e)
		if err != nil {
			s.Reset()
			return
		}
		for _, le := range entries {
			if !pages.add(le.Message) {
				return
			}
		}
	}
	// Our tip last, in the clear: the requester is a member of the
	// epoch it names, and whether it can open our gossiped tips (it may
	// be on another branch) it reads this one (onSyncedTip).
	if ourTip != nil && !pages.add(ourTip) {
		return
	}
	if pages.flush() {
		s.CloseWrite()
	}
}

// syncPager sends log entries on a sync stream in pages of at most
// syncBatchBytes and maxSyncEntries (the serving side of /grove/sync/1,
// for members and for removed members alike).
type syncPager struct {
	s     p2p.Stream
	batch syncBatch
	size  int
}

// add queues msg, sending the page first when msg would overfill it;
// false when the stream failed (it is then reset).
func (p *syncPager) add(msg []byte) bool {
	if p.size+len(msg) > syncBatchBytes || len(p.batch.Messages) >= maxSyncEntries {
		if !p.flush() {
			return false
		}
	}
	p.batch.Messages = append(p.batch.Messages, msg)
	p.size += len(msg) + 8
	return true
}

// flush sends the queued page, if any; false when the stream failed.
func (p *syncPager) flush() bool {
	if len(p.batch.Messages) == 0 {
		return true
	}
	if err := p.s.Send(p.batch.marshal()); err != nil {
		p.s.Reset()
		return false
	}
	p.batch.Messages, p.size = nil, 0
	return true
}

// syncFrom fetches the log from p and feeds it to the actor, which
// validates every message by processing it like gossip.
func (n *Node) syncFrom(a *groupActor, p peer.ID, from uint64) {
	defer n.wg.Done()
	defer a.post(func() {
		a.syncs--
		a.syncEnded() // restarthold.go
		if a.syncs == 0 && a.syncWanted {
			a.requestSyncFrom(a.syncPrefer, false)
		}
	})
	ctx, cancel := context.WithTimeout(n.ctx, syncTimeout)
	defer cancel()
	start := n.cfg.Clock.Now()
	s, err := n.net.OpenStream(ctx, p, p2p.ProtocolSync)
	if err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := s.Send((&syncRequest{Group: a.id, From: from}).marshal()); err != nil {
		s.Reset()
		return
	}
	s.CloseWrite()
	got := 0
	for {
		frame, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return
		}
		b, err := unmarshalSyncBatch(frame)
		if err != nil {
			s.Reset()
			return
		}
		msgs := b.Messages
		for _, m := range msgs {
			if !isTip(m) {
				got++
			}
		}
		done := make(chan struct{})
		a.post(func() {
			defer close(done)
			a.beginWrites() // the whole page: made durable by the next flush (durable.go)
			defer a.endWrites()
			for _, m := range msgs {
				if isTip(m) {
					a.onSyncedTip(m)
					continue
				}
				a.receive(m)
			}
		})
		select {
		case <-done:
		case <-a.done:
			return
		}
	}
	s.Close()
	n.emit(api.Event{Kind: api.EventSync, Group: a.hexID, Time: n.cfg.Clock.Now(), Sync: &api.SyncState{Done: got, Total: got}})
	n.metrics.resyncs.Add(1)
	n.metrics.lastResyncNanos.Store(int64(n.cfg.Clock.Now().Sub(start)))
	n.log.Debug("synced", "group", a.hexID[:8], "peer", p, "messages", got)
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func bytesEqual(a, b []byte) bool { return bytes.Equal(a, b) }

// fetchGroupInfo asks p for a GroupInfo of its canonical epoch and that
// epoch's id (and hands the epoch's sealing key, when p sends it, to the
// group's actor: learnEpochKey).
func (n *Node) fetchGroupInfo(ctx context.Context, group []byte, p peer.ID) (gi []byte, eid [16]byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	resp, err := n.net.Request(ctx, p, p2p.ProtocolSync, (&syncRequest{Kind: syncGroupInfo, Group: group}).marshal())
	if err != nil {
		return nil, eid, err
	}
	b, err := unmarshalSyncBatch(resp)
	if err != nil {
		return nil, eid, err
	}
	if len(b.Messages) < 2 || len(b.Messages) > 3 || len(b.Messages[1]) != 16 {
		return nil, eid, fmt.Errorf("%w: group info response", ErrMalformed)
	}
	copy(eid[:], b.Messages[1])
	if len(b.Messages) == 3 {
		n.learnEpochKey(group, b.Messages[0], eid, b.Messages[2])
	}
	return b.Messages[0], eid, nil
}

// ReplayLocally is the local floor a resync is measured against (issue 9):
// it processes msgs, MLS messages of one group (hex id) in the order
// /grove/sync/1 serves them (by epoch, in arrival order within each), with
// the mls package alone, starting from the newest epoch state in the store
// at dbDir, and writes what a resync has to keep in synced batches of
// batch messages: every message in the ciphertext log, every text message
// in the view and search index, the state of every epoch a Commit creates,
// and once per batch the states whose receive keys were used. No commit
// ordering, no dedup lookups, no events, no network: the work a resync of
// the same messages cannot avoid. The store must not be open elsewhere (a
// stopped node's, or a copy of it); ReplayLocally writes to it.
//
// It returns how many text messages it stored and how many messages no
// state could process (a losing sibling Commit, a message of its branch).
// Doing no commit ordering, it takes the first of sibling Commits to come
// as the winner: on a log whose fork's loser came first it skips the
// winner's epochs instead, so a measurement wants a log without forks.
func ReplayLocally(dbDir, group string, msgs [][]byte, batch int) (stored, skipped int, err error) {
	gid, err := hex.DecodeString(group)
	if err != nil {
		return 0, 0, fmt.Errorf("node: replay: group id: %w", err)
	}
	batch = max(1, batch)
	db, err := store.Open(store.Options{Dir: dbDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, 0, fmt.Errorf("node: replay: %w", err)
	}
	defer db.Close()
	states, err := db.EpochStates(gid)
	if err != nil {
		return 0, 0, fmt.Errorf("node: replay: %w", err)
	}
	// The newest stored epoch is where a returning member resumes; older
	// retained ones would only serve late messages of their epochs.
	var head *mls.Group
	for _, st := range states {
		g, err := mls.UnmarshalGroup(st.State)
		if err != nil {
			return 0, 0, fmt.Errorf("node: replay: epoch state: %w", err)
		}
		if head == nil || g.Epoch() > head.Epoch() {
			head = g
		}
	}
	if head == nil {
		return 0, 0, fmt.Errorf("node: replay: no epoch state for group %.8s: %w", group, store.ErrNotFound)
	}
	byEpoch := map[uint64]*mls.Group{head.Epoch(): head}
	used := map[*mls.Group]bool{}
	now := time.Now()
	tx := db.NewBatch()
	pending := 0
	commit := func() error {
		for g := range used {
			if err := putEpochState(tx, gid, g); err != nil {
				return err
			}
		}
		clear(used)
		if _, err := tx.Commit(); err != nil {
			return fmt.Errorf("node: replay: %w", err)
		}
		tx, pending = db.NewBatch(), 0
		return nil
	}
	for _, data := range msgs {
		_, epoch, _, err := frameInfo(data)
		g := byEpoch[epoch]
		if err != nil || g == nil {
			skipped++
			continue
		}
		pm, err := g.ProcessMessage(data, mls.ProcessOptions{Now: now})
		if err != nil {
			skipped++
			continue
		}
		switch pm.Kind {
		case mls.KindApplication:
			used[g] = true
			p, err := unmarshalPayload(pm.ApplicationData)
			m, merr := g.Member(pm.Sender.LeafIndex)
			if err == nil && merr == nil && p.Kind == kindText {
				if err := tx.AddMessage(store.Message{Group: gid, ID: store.MessageID(p.ID), Time: clampSenderTime(p.Time, now),
					Sender: m.Identity, Text: p.Text, Epoch: epoch}); err != nil {
					return stored, skipped, fmt.Errorf("node: replay: %w", err)
				}
				stored++
			}
		case mls.KindCommit:
			if byEpoch[epoch+1] != nil { // a sibling: the first one won here
				pm.Commit.Discard()
				skipped++
				continue
			}
			next, err := pm.Commit.Merge()
			if err != nil {
				skipped++
				continue
			}
			byEpoch[next.Epoch()] = next
			if err := putEpochState(tx, gid, next); err != nil {
				return stored, skipped, err
			}
		}
		if err := tx.AppendLog(gid, epoch, store.MessageHash(sha256.Sum256(data)), data); err != nil {
			return stored, skipped, fmt.Errorf("node: replay: %w", err)
		}
		if pending++; pending >= batch {
			if err := commit(); err != nil {
				return stored, skipped, err
			}
		}
	}
	return stored, skipped, commit()
}

// putEpochState adds g's state to tx.
func putEpochState(tx *store.Batch, gid []byte, g *mls.Group) error {
	eid, err := epochID(g)
	if err != nil {
		return err
	}
	data, err := g.MarshalBinary()
	if err != nil {
		return fmt.Errorf("node: marshal epoch state: %w", err)
	}
	defer clear(data) // tx holds its own copy
	return tx.PutEpochState(gid, store.EpochState{EID: store.EpochID(eid), Epoch: g.Epoch(), State: data})
}

// finalHere reports whether eid is an epoch of our chain that this device
// has finalised (and forgotten: commitorder no longer knows it). A tip
// naming it comes from a member behind us, catching up, not from another
// branch: without this check each such tip of a returning member sent
// every other member on a deep sync from below its root, with fanout, in
// the middle of the returning member's own resync (BenchmarkResync).
func (a *groupActor) finalHere(eid commitorder.EpochID) bool {
	m, err := a.n.db.EpochMarker(a.id, store.EpochID(eid))
	return err == nil && m.Mark == store.MarkFinal
}
