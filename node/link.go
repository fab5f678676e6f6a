// Linking a new device to this account over /grove/link/1 (the exchange is
// described in package account, link.go). The existing device answers with
// a grant that carries the account key, the new device's certificate and
// one invite code per group of this device; the new device redeems them
// (joinLinkedGroups), so it is added to every group of the account by
// this device when it is an admin there, else, through the ordinary join
// request, by an admin. A device certificate alone never licenses a join.

package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"grove/account"
	"grove/node/api"
	"grove/p2p"
)

// protocolLink carries one link exchange.
const protocolLink protocol.ID = "/grove/link/1"

// linkJoinTimeout bounds one join of a linked device: the Welcome comes
// once the Add is final.
const linkJoinTimeout = 10 * time.Minute

// linkCodeLife is how long a link code stays usable.
const linkCodeLife = 10 * time.Minute

// settingLinkInvites holds the invite codes a linked device has still to
// redeem: vec(code)*. They survive restarts until redeemed or expired.
const settingLinkInvites = "account.link-invites"

// pendingLink is a link code this device issued.
type pendingLink struct {
	code *account.LinkCode
}

// linkResult is what the last link of this device showed (init prints it).
type linkResult struct {
	comparison string
	account    string
	history    int   // messages of history received
	historyErr error // why none was, if so
}

// Link errors a person reads.
var (
	// ErrLinkCodeUsed: the code was already used, by this device or
	// anyone else who saw it.
	ErrLinkCodeUsed = errors.New("that link code was already used: make a new one with grove device link")
	// ErrLinkRefused: the existing device refused the link.
	ErrLinkRefused = errors.New("the other device refused the link")
)

// DeviceLink implements api.Devices.
func (n *Node) DeviceLink(ctx context.Context) (api.LinkCode, error) {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.key == nil {
		return api.LinkCode{}, api.Errorf(api.CodeUnavailable, "this device was made before accounts existed and cannot link devices")
	}
	if n.dev.selfRevoked {
		return api.LinkCode{}, api.Errorf(api.CodeForbidden, "this device was revoked by its account and cannot link devices")
	}
	var addrs []string
	for _, a := range n.net.AddrInfo().Addrs {
		addrs = append(addrs, a.String())
	}
	code, err := account.NewLinkCode(rand.Reader, []byte(n.net.ID()), addrs, n.cfg.Clock.Now().Add(linkCodeLife))
	if err != nil {
		return api.LinkCode{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	if n.dev.links == nil {
		n.dev.links, n.dev.used = map[[8]byte]*pendingLink{}, map[[8]byte]bool{}
	}
	// Expired codes go (a used one stays known as used, so a replay is
	// told so).
	for id, pl := range n.dev.links {
		if !n.cfg.Clock.Now().Before(pl.code.Expires) {
			delete(n.dev.links, id)
		}
	}
	n.dev.links[code.ID()] = &pendingLink{code: code}
	return api.LinkCode{Code: code.String(), Expires: code.Expires}, nil
}

// link frames: the request (account.LinkRequest), then one answer:
// status byte 0 and the sealed grant, or status 1 and an error text.
const (
	linkOK      = 0
	linkRefused = 1
)

// serveLink answers a new device's link request. The code is consumed by
// the first request that names it, right or wrong, so a replayed or
// guessed request cannot try twice.
func (n *Node) serveLink(ctx context.Context, s p2p.Stream) {
	refuse := func(why string) {
		n.log.Info("link refused", "peer", s.RemotePeer(), "reason", why)
		var w wbuf
		w.u8(linkRefused)
		w.vec([]byte(why))
		s.Send(w.b)
	}
	frame, err := s.Recv()
	if err != nil {
		return
	}
	req, err := account.ParseLinkRequest(frame)
	if err != nil {
		refuse("malformed link request")
		return
	}
	remote := s.RemotePeer()
	n.dev.mu.Lock()
	pl := n.dev.links[req.CodeID]
	used := n.dev.used[req.CodeID]
	if pl != nil {
		delete(n.dev.links, req.CodeID)
		n.dev.used[req.CodeID] = true
	}
	key, revoked := n.dev.key, n.dev.selfRevoked
	n.dev.mu.Unlock()
	switch {
	case used:
		refuse(ErrLinkCodeUsed.Error())
		return
	case pl == nil || key == nil:
		refuse("unknown link code")
		return
	case revoked:
		refuse("this device was revoked by its account")
		return
	case !n.cfg.Clock.Now().Before(pl.code.Expires):
		refuse("the link code expired")
		return
	}
	if err := req.Check(pl.code, []byte(remote)); err != nil {
		refuse("the link request does not match the code")
		return
	}
	if err := validDeviceName(req.DeviceName); err != nil {
		refuse(err.Error())
		return
	}
	cert, err := key.Certify(account.Device{
		AccountName: n.self.Name, Name: req.DeviceName, SignatureKey: req.SignatureKey,
		Peer: []byte(remote), Created: n.cfg.Clock.Now(),
	})
	if err != nil {
		refuse("cannot certify that device")
		return
	}
	g := &account.Grant{Key: key, Certificate: cert}
	n.dev.mu.Lock()
	g.Devices = append(g.Devices, n.dev.devices...)
	g.Revocations = append(g.Revocations, n.dev.revoked.List()...)
	n.dev.devices = append(n.dev.devices, cert)
	err = n.writeDevices()
	n.dev.mu.Unlock()
	if err != nil {
		n.log.Warn("link: save device list", "err", err)
		refuse("internal error")
		return
	}
	for _, a := range n.actorList() {
		iv, err := n.invite(ctx, a.hexID, n.cfg.InviteExpiry, 1)
		if err != nil {
			n.log.Info("link: no invite for group", "group", a.hexID, "err", err)
			continue
		}
		g.Invites = append(g.Invites, iv.Code)
	}
	var w wbuf
	w.u8(linkOK)
	w.vec(g.Seal(pl.code, []byte(remote)))
	if err := s.Send(w.b); err != nil {
		n.log.Info("link: send grant", "err", err)
		return
	}
	if err := n.sendHistory(s, pl.code, remote); err != nil {
		n.log.Info("link: history not sent", "err", err)
	}
	cmp := account.ComparisonString(pl.code.Secret, pl.code.Peer, []byte(remote))
	n.log.Info("device linked", "device", req.DeviceName, "peer", remote, "comparison", cmp, "groups", len(g.Invites))
	n.emit(api.Event{Kind: api.EventDeviceLinked, Time: n.cfg.Clock.Now(), Detail: fmt.Sprintf("%s (comparison %s)", req.DeviceName, cmp)})
}

// linkFresh links this fresh device with cfg.Link, before anything else
// is made: on success the account, its devices and the invites to redeem
// are stored.
func (n *Node) linkFresh() error {
	code, err := account.ParseLinkCode(n.cfg.Link)
	if err != nil {
		return api.Errorf(api.CodeInvalidArgument, "that link code is damaged or mistyped (%v): copy it again", err)
	}
	if !n.cfg.Clock.Now().Before(code.Expires) {
		return api.Errorf(api.CodeInvalidArgument, "the link code expired at %s: make a new one with grove device link", code.Expires.Format(time.RFC3339))
	}
	pid, err := peer.IDFromBytes(code.Peer)
	if err != nil {
		return api.Errorf(api.CodeInvalidArgument, "link code: bad peer id")
	}
	ai := peer.AddrInfo{ID: pid}
	for _, s := range code.Addrs {
		if m, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	ctx, cancel := context.WithTimeout(n.ctx, DefaultJoinTimeout)
	defer cancel()
	if err := n.net.Connect(ctx, ai); err != nil {
		return api.Errorf(api.CodeUnavailable, "cannot reach the device that made the link code (is its daemon running?): %v", err)
	}
	s, err := n.net.OpenStream(ctx, pid, protocolLink)
	if err != nil {
		return api.Errorf(api.CodeUnavailable, "cannot reach the device that made the link code: %v", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	dn := n.cfg.DeviceName
	if dn == "" {
		dn = defaultDeviceName
	}
	req := account.NewLinkRequest(code, []byte(n.net.ID()), dn, n.sig.PublicKey())
	if err := s.Send(req.Marshal()); err != nil {
		return api.Errorf(api.CodeUnavailable, "send link request: %v", err)
	}
	frame, err := s.Recv()
	if err != nil {
		return api.Errorf(api.CodeUnavailable, "no answer from the device that made the link code: %v", err)
	}
	r := rbuf{b: frame}
	status := r.u8("status")
	body := r.vec(1<<20, "body")
	if err := r.done("link answer"); err != nil {
		return fmt.Errorf("node: link answer: %w", err)
	}
	if status != linkOK {
		msg := string(body)
		if msg == ErrLinkCodeUsed.Error() {
			return api.Errorf(api.CodeConflict, "%s", msg)
		}
		return api.Errorf(api.CodeForbidden, "%v: %s", ErrLinkRefused, sanitizeRemote(msg))
	}
	g, err := account.OpenGrant(code, []byte(n.net.ID()), n.sig.PublicKey(), body)
	if err != nil {
		return api.Errorf(api.CodeForbidden, "the other device's answer does not authenticate: %v", err)
	}
	n.dev.cert = g.Certificate
	if err := n.saveAccount(g.Key, append([]*account.Certificate{g.Certificate}, g.Devices...), g.Revocations); err != nil {
		return err
	}
	var w wbuf
	for _, iv := range g.Invites {
		w.vec([]byte(iv))
	}
	if err := n.db.SetSetting(settingLinkInvites, w.b); err != nil {
		return fmt.Errorf("node: save link invites: %w", err)
	}
	res := &linkResult{comparison: account.ComparisonString(code.Secret, code.Peer, []byte(n.net.ID())), account: g.Certificate.Device.AccountName}
	// The account is ours now; the history is a bonus that may fail
	// alone (and then stores nothing).
	if res.history, err = n.receiveHistory(s, code); err != nil {
		res.historyErr = err
		n.log.Warn("link: history not received", "err", err)
	}
	n.dev.mu.Lock()
	n.dev.linked = res
	n.dev.mu.Unlock()
	return nil
}

// sendHistory streams every message of this device's view, group by group,
// to the linked device.
func (n *Node) sendHistory(s p2p.Stream, code *account.LinkCode, remote peer.ID) error {
	var all []account.Message
	for _, a := range n.actorList() {
		msgs, err := n.db.Messages(a.id, time.Time{}, 1<<30)
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		for _, m := range msgs {
			all = append(all, account.Message{Group: m.Group, ID: m.ID, Time: m.Time, Sender: m.Sender, Text: m.Text, Epoch: m.Epoch})
		}
	}
	return sendHistoryFrames(s, code, remote, all) // history.go
}

// frameReader is what receiveHistory reads from (a p2p.Stream).
type frameReader interface{ Recv() ([]byte, error) }

// receiveHistory reads the history after a grant and stores it; a batch
// that does not authenticate, a stream cut short or counts that disagree
// store nothing. It reports progress through Config.LinkProgress.
func (n *Node) receiveHistory(r frameReader, code *account.LinkCode) (int, error) {
	got, err := readHistoryFrames(r, code, n.net.ID(), -1, n.cfg.LinkProgress) // history.go
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(got); i += 1000 {
		if _, err := n.db.AddMessages(got[i:min(i+1000, len(got))]); err != nil {
			return 0, fmt.Errorf("store history: %w", err)
		}
	}
	return len(got), nil
}

// sanitizeRemote bounds a peer's error text for our messages.
func sanitizeRemote(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	out := []rune{}
	for _, r := range s {
		if hiddenRune(r) {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

// LinkResult is the account name and the comparison string of the link
// made at this start (Config.Link), or empty strings.
func (n *Node) LinkResult() (accountName, comparison string) {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.linked == nil {
		return "", ""
	}
	return n.dev.linked.account, n.dev.linked.comparison
}

// LinkHistory is how many messages of history the link made at this start
// brought, or why it brought none.
func (n *Node) LinkHistory() (int, error) {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.linked == nil {
		return 0, nil
	}
	return n.dev.linked.history, n.dev.linked.historyErr
}

// joinLinkedGroups redeems the invites a link brought, one group after the
// other, until each is joined, refused or expired; what is left is tried
// again at the next start.
func (n *Node) joinLinkedGroups() {
	defer n.wg.Done()
	raw, err := n.db.Setting(settingLinkInvites)
	if err != nil {
		return
	}
	var codes []string
	r := rbuf{b: raw}
	for len(r.b) > 0 && r.err == nil {
		codes = append(codes, string(r.vec(4096, "invite")))
	}
	var left []string
	for _, code := range codes {
		if n.ctx.Err() != nil {
			left = append(left, code)
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, linkJoinTimeout)
		g, err := n.Join(ctx, code)
		cancel()
		var ae *api.Error
		switch {
		case err == nil:
			n.log.Info("linked device joined group", "group", g.Name)
		case errors.As(err, &ae) && (ae.Code == api.CodeInvalidArgument || ae.Code == api.CodeConflict || ae.Code == api.CodeForbidden):
			n.log.Info("linked device: group not joined", "err", err) // expired, refused or joined already
		default:
			n.log.Info("linked device: join failed, will retry at next start", "err", err)
			left = append(left, code)
		}
	}
	var w wbuf
	for _, c := range left {
		w.vec([]byte(c))
	}
	if len(left) == 0 {
		if err := n.db.DeleteSetting(settingLinkInvites); err != nil {
			n.log.Warn("delete link invites", "err", err)
		}
	} else if err := n.db.SetSetting(settingLinkInvites, w.b); err != nil {
		n.log.Warn("save link invites", "err", err)
	}
}
