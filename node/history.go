// History for new members (grove group settings GROUP
// --history-for-new-members 30d). Off by default: a new member reads
// what is sent from the epoch it joins on, as MLS gives it. An admin may
// set, in the group policy (so every member agrees on it, committed like
// a rename, manage.go), how far back a new member is sent the group's
// messages. Then the new member, once its Welcome is processed, asks the
// member that added it (its inviter, else any member it reaches) over
// /grove/member-history/1, and that member sends the messages of its own
// view (plaintext, never epoch secrets, so forward secrecy is unchanged)
// sent in the epochs before the joiner's and within the window, in the
// link's history batches (package account) sealed under a key exported
// from the joiner's first epoch: only a member of that epoch can make a
// bundle that opens, and the joiner checks every message (this group, an
// epoch before its own, a time within the window) and stores nothing from
// a bundle that breaks a rule. The view shows the messages as from before
// the device joined (api.Message.BeforeJoined).

package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/account"
	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// protocolMemberHistory: the request is vec(group id) || epoch id (16
// bytes, the joiner's first epoch); the answer is the history frames of
// link.go (header, batches, end), or one empty frame for a refusal.
const protocolMemberHistory protocol.ID = "/grove/member-history/1"

// Bounds.
const (
	// maxHistoryForNewMembers bounds the history a policy may grant.
	maxHistoryForNewMembers = 10 * 365 * 24 * time.Hour
	// maxMemberHistory bounds the messages one new member is sent.
	maxMemberHistory = 10_000
	// memberHistoryTimeout bounds one transfer.
	memberHistoryTimeout = 2 * time.Minute
	// historyClockSlack is how far a sender's clock may be off.
	historyClockSlack = time.Hour
	// opHistory: a policyOp that sets the history for new members.
	opHistory policyOp = 11
	// historyExportLabel names the exporter secret the batches are
	// sealed under (RFC 9420, Section 8.5).
	historyExportLabel = "grove history for new member"
)

// ErrHistoryRefused wraps why a new member's history was not taken.
var ErrHistoryRefused = errors.New("node: history for a new member refused")

// historyIntent checks a ChangeHistory request (policyIntent).
func historyIntent(req api.ChangeRequest, pol *policy) (*intent, error) {
	if req.History < 0 || req.History > maxHistoryForNewMembers {
		return nil, api.Errorf(api.CodeInvalidArgument, "history for new members must be between 0 (off) and %d days", int(maxHistoryForNewMembers/(24*time.Hour)))
	}
	h := req.History.Truncate(time.Second)
	if h == pol.History {
		return nil, api.Errorf(api.CodeConflict, "new members already get %s of history", FormatHistory(h))
	}
	return &intent{kind: intentPolicy, op: opHistory, history: h}, nil
}

// FormatHistory says a history setting in the words grove group
// settings takes ("30d", "12h", "off").
func FormatHistory(d time.Duration) string {
	switch {
	case d <= 0:
		return "off"
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}

// ParseHistory reads "30d", "12h", "90m", "0" or "off".
func ParseHistory(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || time.Duration(days)*24*time.Hour > maxHistoryForNewMembers {
			return 0, fmt.Errorf("history %q: want a number of days like 30d, hours like 12h, or off", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxHistoryForNewMembers {
		return 0, fmt.Errorf("history %q: want a number of days like 30d, hours like 12h, or off", s)
	}
	return d, nil
}

// beforeJoined reports whether a message of time t is from before this
// device joined the group (any goroutine).
func (a *groupActor) beforeJoined(t time.Time) bool {
	j := a.joinedNs.Load()
	return j != 0 && t.UnixNano() < j
}

// historyKey is the key a new member's history is sealed under: exported
// from g, the joiner's first epoch, for the joiner's peer id.
func historyKey(g *mls.Group, joiner peer.ID) (*account.LinkCode, error) {
	k, err := g.Export(historyExportLabel, []byte(joiner), 16)
	if err != nil {
		return nil, err
	}
	// The link's batch sealing keyed by the exported secret: the "code"
	// never leaves this device.
	code := &account.LinkCode{Peer: []byte("grove member history")}
	copy(code.Secret[:], k)
	clear(k)
	return code, nil
}

// ---- the new member ----

// fetchMemberHistory asks for the group's history when its policy grants
// new members some: from inviter first, else from the members it
// reaches. It runs in the background; the join is done already.
func (n *Node) fetchMemberHistory(a *groupActor, inviter peer.ID) {
	var (
		window time.Duration
		eid    commitorder.EpochID
		epoch  uint64
		code   *account.LinkCode
		peers  []peer.ID
	)
	err := a.do(n.ctx, func() error {
		e, g := a.head()
		if g == nil {
			return errNotMember
		}
		window, eid, epoch = groupPolicy(g).History, e, g.Epoch()
		if window <= 0 {
			return nil
		}
		var err error
		if code, err = historyKey(g, n.net.ID()); err != nil {
			return err
		}
		peers = append(peers, inviter)
		for p := range a.headMemberPeers() {
			if p != inviter && p != n.net.ID() {
				peers = append(peers, p)
			}
		}
		return nil
	})
	if err != nil || window <= 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for _, p := range peers {
			got, err := n.requestMemberHistory(a, p, eid, epoch, window, code)
			if err == nil {
				n.log.Info("history for a new member received", "group", a.hexID, "from", p, "messages", got)
				if got > 0 {
					n.emit(api.Event{Kind: api.EventMessage, Group: a.hexID, Time: n.cfg.Clock.Now()})
				}
				return
			}
			n.log.Info("history for a new member not received", "group", a.hexID, "from", p, "err", err)
		}
	}()
}

// requestMemberHistory asks peer p for the history and stores it.
func (n *Node) requestMemberHistory(a *groupActor, p peer.ID, eid commitorder.EpochID, epoch uint64, window time.Duration, code *account.LinkCode) (int, error) {
	ctx, cancel := context.WithTimeout(n.ctx, memberHistoryTimeout)
	defer cancel()
	s, err := n.net.OpenStream(ctx, p, protocolMemberHistory)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	var w wbuf
	w.vec(a.id)
	w.raw(eid[:])
	if err := s.Send(w.b); err != nil {
		return 0, err
	}
	return n.takeMemberHistory(a, s, epoch, window, code)
}

// takeMemberHistory reads a history bundle for group a, whose first epoch
// here is epoch, and stores it if every message keeps the rules: of this
// group, sent before that epoch, within the window (with some clock
// slack), from a sender identity that parses. Else nothing is stored.
func (n *Node) takeMemberHistory(a *groupActor, r frameReader, epoch uint64, window time.Duration, code *account.LinkCode) (int, error) {
	msgs, err := readHistoryFrames(r, code, n.net.ID(), maxMemberHistory, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrHistoryRefused, err)
	}
	now := n.cfg.Clock.Now()
	oldest := now.Add(-window - historyClockSlack)
	for i, m := range msgs {
		switch {
		case !bytesEqual(m.Group, a.id):
			return 0, fmt.Errorf("%w: message %d is of another group", ErrHistoryRefused, i)
		case m.Epoch >= epoch:
			return 0, fmt.Errorf("%w: message %d is from epoch %d, not before this device's %d", ErrHistoryRefused, i, m.Epoch, epoch)
		case m.Time.Before(oldest) || m.Time.After(now.Add(historyClockSlack)):
			return 0, fmt.Errorf("%w: message %d of %s is outside the group's history window", ErrHistoryRefused, i, m.Time.Format(time.RFC3339))
		case len(m.Sender) > store.MaxSenderLen:
			return 0, fmt.Errorf("%w: message %d sender too long", ErrHistoryRefused, i)
		}
		if _, err := parseIdentity(m.Sender); err != nil {
			return 0, fmt.Errorf("%w: message %d: %w", ErrHistoryRefused, i, err)
		}
	}
	for i := 0; i < len(msgs); i += 1000 {
		if _, err := n.db.AddMessages(msgs[i:min(i+1000, len(msgs))]); err != nil {
			return 0, fmt.Errorf("store history: %w", err)
		}
	}
	return len(msgs), nil
}

// History frames, the link's (link.go) and a new member's: a header with
// the message count, the sealed batches (account.SealHistory), an end
// frame with the batch count.
const (
	linkHistoryHeader = 2
	linkHistoryBatch  = 3
	linkHistoryEnd    = 4
	historyBatchMsgs  = 512
)

// readHistoryFrames reads history frames sealed under code for self, at
// most limit messages, reporting progress (if not nil) as batches come.
func readHistoryFrames(r frameReader, code *account.LinkCode, self peer.ID, limit int, progress func(done, total int)) ([]store.Message, error) {
	frame, err := r.Recv()
	if err != nil {
		return nil, fmt.Errorf("history header: %w", err)
	}
	if len(frame) == 0 {
		return nil, errors.New("the member refused to send the history")
	}
	hb := rbuf{b: frame}
	if hb.u8("kind") != linkHistoryHeader {
		return nil, fmt.Errorf("%w: no history header", ErrMalformed)
	}
	total := hb.u64("count")
	if err := hb.done("history header"); err != nil {
		return nil, err
	}
	if limit >= 0 && total > uint64(limit) {
		return nil, fmt.Errorf("%w: history of %d messages, at most %d", ErrMalformed, total, limit)
	}
	var got []store.Message
	for idx := uint64(0); ; idx++ {
		frame, err := r.Recv()
		if err != nil {
			return nil, fmt.Errorf("history cut short after %d of %d messages: %w", len(got), total, err)
		}
		if len(frame) == 0 {
			return nil, fmt.Errorf("%w: empty history frame", ErrMalformed)
		}
		switch frame[0] {
		case linkHistoryBatch:
			msgs, err := account.OpenHistory(code, []byte(self), idx, frame[1:])
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				got = append(got, store.Message{Group: m.Group, ID: store.MessageID(m.ID), Time: m.Time, Sender: m.Sender, Text: m.Text, Epoch: m.Epoch})
			}
			if uint64(len(got)) > total {
				return nil, fmt.Errorf("%w: more history than announced", ErrMalformed)
			}
			if progress != nil {
				progress(len(got), int(total))
			}
		case linkHistoryEnd:
			eb := rbuf{b: frame[1:]}
			batches := eb.u64("batches")
			if err := eb.done("history end"); err != nil {
				return nil, err
			}
			if batches != idx || uint64(len(got)) != total {
				return nil, fmt.Errorf("%w: history of %d messages in %d batches, announced %d in %d", ErrMalformed, len(got), idx, total, batches)
			}
			return got, nil
		default:
			return nil, fmt.Errorf("%w: history frame kind %d", ErrMalformed, frame[0])
		}
	}
}

// ---- the member that sends it ----

// serveMemberHistory answers a new member's request: only when the
// group's policy grants history, to a device that is a member of the
// head epoch and of the epoch it names (its first), not revoked, with the
// messages of this device's view sent in epochs before that one and
// within the window.
func (n *Node) serveMemberHistory(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		return
	}
	rd := rbuf{b: frame}
	gid := rd.vec(maxGroupID, "group")
	var eid commitorder.EpochID
	copy(eid[:], rd.fixed(len(eid), "epoch id"))
	if rd.done("history request") != nil {
		s.Send(nil)
		return
	}
	remote := s.RemotePeer()
	msgs, code, err := n.memberHistoryFor(ctx, gid, eid, remote)
	if err != nil {
		n.log.Info("history for a new member refused", "peer", remote, "err", err)
		s.Send(nil)
		return
	}
	if err := sendHistoryFrames(s, code, remote, msgs); err != nil {
		n.log.Info("history for a new member not sent", "peer", remote, "err", err)
	}
}

// memberHistoryFor checks a request (serveMemberHistory) and returns the
// messages to send and the key to seal them under.
func (n *Node) memberHistoryFor(ctx context.Context, gid []byte, eid commitorder.EpochID, remote peer.ID) ([]account.Message, *account.LinkCode, error) {
	if n.revokedPeer(remote) {
		return nil, nil, errors.New("device revoked")
	}
	a, err := n.lookup(hexOf(gid))
	if err != nil || !bytesEqual(a.id, gid) {
		return nil, nil, errNotMember
	}
	var (
		window time.Duration
		first  uint64
		code   *account.LinkCode
	)
	err = a.do(ctx, func() error {
		_, head := a.head()
		g := a.epochs[eid]
		if head == nil || g == nil || a.phase == phaseRemoved {
			return errors.New("unknown epoch")
		}
		if window = groupPolicy(head).History; window <= 0 {
			return errors.New("the group's policy grants new members no history")
		}
		inEpoch := false
		for _, m := range g.Members() {
			if id, err := parseIdentity(m.Identity); err == nil && id.Peer == remote {
				inEpoch = true
			}
		}
		if !inEpoch || !a.headMemberPeers()[remote] {
			return errNotMember
		}
		first = g.Epoch()
		code, err = historyKey(g, remote)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	since := n.cfg.Clock.Now().Add(-window)
	stored, err := n.db.Messages(a.id, since, maxMemberHistory)
	if err != nil {
		return nil, nil, fmt.Errorf("read history: %w", err)
	}
	var out []account.Message
	for _, m := range stored {
		if m.Epoch >= first || m.Time.Before(since) || m.Flags&store.FlagDeleted != 0 {
			continue
		}
		out = append(out, account.Message{Group: m.Group, ID: m.ID, Time: m.Time, Sender: m.Sender, Text: m.Text, Epoch: m.Epoch})
	}
	return out, code, nil
}

// sendHistoryFrames sends msgs as history frames sealed under code for
// remote.
func sendHistoryFrames(s p2p.Stream, code *account.LinkCode, remote peer.ID, all []account.Message) error {
	var w wbuf
	w.u8(linkHistoryHeader)
	w.u64(uint64(len(all)))
	if err := s.Send(w.b); err != nil {
		return err
	}
	var batches uint64
	for i := 0; i < len(all); {
		j, size := i, 0
		for j < len(all) && j-i < historyBatchMsgs && size+len(all[j].Text)+256 < account.MaxHistoryBatch {
			size += len(all[j].Text) + len(all[j].Sender) + 64
			j++
		}
		sealed, err := account.SealHistory(code, []byte(remote), batches, all[i:j])
		if err != nil {
			return err
		}
		w = wbuf{}
		w.u8(linkHistoryBatch)
		w.raw(sealed)
		if err := s.Send(w.b); err != nil {
			return err
		}
		batches++
		i = j
	}
	w = wbuf{}
	w.u8(linkHistoryEnd)
	w.u64(batches)
	return s.Send(w.b)
}

// historyWindow is an intent's history setting (group_commit.go).
type historyWindow = time.Duration
