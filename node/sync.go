package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/mls"
	"grove/node/api"
	"grove/p2p"
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
// the requested epoch on, in epoch order, to peers whose credential is in
// the group's canonical epoch. Ciphertext costs the server no forward
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
	a, err := n.lookupServing(hexOf(req.Group))
	if err != nil || !bytesEqual(a.id, req.Group) {
		s.Reset()
		return
	}
	var member bool
	var head uint64
	if err := a.do(ctx, func() error {
		member = !a.removed && a.headMemberPeers()[s.RemotePeer()]
		if _, g := a.head(); g != nil {
			head = g.Epoch()
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
		var gi []byte
		var eid [16]byte
		err := a.do(ctx, func() error {
			e, g := a.head()
			if g == nil {
				return errNotMember
			}
			eid = e
			var err error
			gi, err = g.GroupInfo(true)
			return err
		})
		if err != nil {
			s.Reset()
			return
		}
		if err := s.Send((&syncBatch{Messages: [][]byte{gi, eid[:]}}).marshal()); err != nil {
			s.Reset()
			return
		}
		s.CloseWrite()
		return
	}
	if req.From > head {
		s.CloseWrite()
		return
	}
	var batch syncBatch
	size := 0
	flush := func() bool {
		if len(batch.Messages) == 0 {
			return true
		}
		if err := s.Send(batch.marshal()); err != nil {
			s.Reset()
			return false
		}
		batch.Messages, size = nil, 0
		return true
	}
	for e := req.From; e <= head; e++ {
		entries, err := n.db.LogByEpoch(a.id, e)
		if err != nil {
			s.Reset()
			return
		}
		for _, le := range entries {
			if size+len(le.Message) > syncBatchBytes || len(batch.Messages) >= maxSyncEntries {
				if !flush() {
					return
				}
			}
			batch.Messages = append(batch.Messages, le.Message)
			size += len(le.Message) + 8
		}
	}
	if flush() {
		s.CloseWrite()
	}
}

// syncFrom fetches the log from p and feeds it to the actor, which
// validates every message by processing it like gossip.
func (n *Node) syncFrom(a *groupActor, p peer.ID, from uint64) {
	defer n.wg.Done()
	defer a.post(func() {
		a.syncs--
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
		got += len(b.Messages)
		msgs := b.Messages
		done := make(chan struct{})
		a.post(func() {
			defer close(done)
			a.beginWrites() // the whole page: one sync (durable.go)
			defer a.endWrites()
			for _, m := range msgs {
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
// epoch's id.
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
	if len(b.Messages) != 2 || len(b.Messages[1]) != 16 {
		return nil, eid, fmt.Errorf("%w: group info response", ErrMalformed)
	}
	copy(eid[:], b.Messages[1])
	return b.Messages[0], eid, nil
}
