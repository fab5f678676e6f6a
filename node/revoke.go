// Revoking a device of the account (grove device revoke), and the device
// list. A revocation works in two ways (package account, doc.go): the
// removal of the device's leaves in every group, committed like any
// removal (by this device where it is an admin, else by an admin at its
// request: a sibling may ask for its sibling's removal, see onIntent),
// and the signed revocation, which this device hands to every peer it
// meets over /grove/revoke/1. Members keep it and refuse the device
// from then on where the decision is theirs alone: adding it again
// (group_commit.go), serving it history (sync.go), linking from it.

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/account"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// protocolRevoke carries one revocation and its answer.
const protocolRevoke protocol.ID = "/grove/revoke/1"

// revokePushTimeout bounds handing a revocation to one peer.
const revokePushTimeout = 10 * time.Second

// DeviceList implements api.Devices.
func (n *Node) DeviceList(ctx context.Context) ([]api.Device, error) {
	n.dev.mu.Lock()
	certs := append([]*account.Certificate(nil), n.dev.devices...)
	n.dev.mu.Unlock()
	if certs == nil {
		return nil, api.Errorf(api.CodeUnavailable, "this device was made before accounts existed and has no device list")
	}
	// In how many of our groups each device is a member.
	inGroups := map[string]int{}
	for _, a := range n.actorList() {
		var keys [][]byte
		a.do(ctx, func() error {
			if _, g := a.head(); g != nil && a.phase != phaseRemoved {
				for _, m := range g.Members() {
					keys = append(keys, m.SignatureKey)
				}
			}
			return nil
		})
		for _, k := range keys {
			inGroups[string(k)]++
		}
	}
	connected := map[peer.ID]bool{}
	for _, p := range n.net.Peers() {
		connected[p] = true
	}
	out := make([]api.Device, 0, len(certs))
	for _, c := range certs {
		pid, _ := peer.IDFromBytes(c.Device.Peer)
		d := api.Device{
			ID: c.Device.ID(), Name: c.Device.Name, Fingerprint: c.Device.Fingerprint(), PeerID: pid.String(),
			Created: c.Device.Created, Groups: inGroups[string(c.Device.SignatureKey)],
			Self: pid == n.net.ID(), Online: connected[pid],
		}
		n.dev.mu.Lock()
		d.Revoked = n.dev.revoked.RevokedUnder(c, &n.dev.rotations) != nil
		d.LastSeen = n.dev.lastSeen[pid]
		n.dev.mu.Unlock()
		if d.Self {
			d.Online, d.LastSeen = true, n.cfg.Clock.Now()
		}
		out = append(out, d)
	}
	return out, nil
}

// peerSeen notes a peer's connection or disconnection, and hands a newly
// connected peer the revocations of our account.
func (n *Node) peerSeen(p peer.ID, connected bool) {
	n.dev.mu.Lock()
	if n.dev.lastSeen == nil {
		n.dev.lastSeen = map[peer.ID]time.Time{}
	}
	n.dev.lastSeen[p] = n.cfg.Clock.Now()
	var own []*account.Revocation
	var rots []*account.Rotation
	if n.dev.key != nil && connected {
		for _, r := range n.dev.revoked.List() {
			if n.dev.rotations.Current(r.Account).Equal(n.dev.key.Public()) {
				own = append(own, r)
			}
		}
		rots = n.dev.rotations.Chain(n.dev.key.Public())
	}
	n.dev.mu.Unlock()
	if len(own) == 0 && len(rots) == 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// A peer that has just started may not serve the protocol yet
		// (its host dials out before the node installs its handlers):
		// a few tries, backing off.
		// The rotations first: a revocation signed by a new key is
		// refused by a peer that does not know the key yet.
		for _, r := range rots {
			for try, wait := 0, time.Second; try < revokePushTries; try, wait = try+1, wait*2 {
				if n.pushRotation(p, r) == nil {
					break
				}
				select {
				case <-n.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		for _, r := range own {
			for try, wait := 0, time.Second; try < revokePushTries; try, wait = try+1, wait*2 {
				if n.pushRevocation(p, r) == nil {
					break
				}
				select {
				case <-n.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
	}()
}

// revokePushTries bounds the tries to hand a peer our revocations.
const revokePushTries = 5

// pushRevocation hands r to peer p and logs its answer.
func (n *Node) pushRevocation(p peer.ID, r *account.Revocation) error {
	ctx, cancel := context.WithTimeout(n.ctx, revokePushTimeout)
	defer cancel()
	resp, err := n.net.Request(ctx, p, protocolRevoke, r.Marshal())
	if err != nil {
		n.log.Debug("revocation not delivered", "peer", p, "err", err)
		return err
	}
	if len(resp) > 0 {
		n.log.Debug("revocation answer", "peer", p, "answer", sanitizeRemote(string(resp)))
	}
	return nil
}

// DeviceRevoke implements api.Devices.
func (n *Node) DeviceRevoke(ctx context.Context, device string) (api.Device, error) {
	n.dev.mu.Lock()
	key, selfRevoked := n.dev.key, n.dev.selfRevoked
	var match []*account.Certificate
	for _, c := range n.dev.devices {
		id := c.Device.ID()
		if c.Device.Name == device || id == device || (len(device) >= 4 && strings.HasPrefix(id, strings.ToLower(device))) {
			match = append(match, c)
		}
	}
	n.dev.mu.Unlock()
	switch {
	case key == nil:
		return api.Device{}, api.Errorf(api.CodeUnavailable, "this device was made before accounts existed and cannot revoke devices")
	case selfRevoked:
		return api.Device{}, api.Errorf(api.CodeForbidden, "this device was revoked by its account and cannot revoke devices")
	case len(match) == 0:
		return api.Device{}, api.Errorf(api.CodeNotFound, "no device %q in this account (see grove device list)", device)
	case len(match) > 1:
		return api.Device{}, api.Errorf(api.CodeInvalidArgument, "device %q is ambiguous: use its id", device)
	case string(match[0].Device.Peer) == string(n.net.ID()):
		return api.Device{}, api.Errorf(api.CodeInvalidArgument, "a device cannot revoke itself: revoke it from another device of the account")
	}
	c := match[0]
	r, err := key.Revoke(c, n.cfg.Clock.Now())
	if err != nil {
		return api.Device{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	n.dev.mu.Lock()
	_, err = n.dev.revoked.Add(r, key.Public())
	if err == nil {
		err = n.writeRevocations()
	}
	n.dev.mu.Unlock()
	if err != nil {
		return api.Device{}, api.Errorf(api.CodeInternal, "save revocation: %v", err)
	}
	// Its leaves go from every group.
	for _, a := range n.actorList() {
		if err := a.do(ctx, func() error { return a.removeRevoked(c) }); err != nil {
			n.log.Warn("revoke: removal not requested", "group", a.hexID, "err", err)
		}
	}
	// Everyone connected learns it now, others when they connect.
	for _, p := range n.net.Peers() {
		n.pushRevocation(p, r)
	}
	pid, _ := peer.IDFromBytes(c.Device.Peer)
	n.emit(api.Event{Kind: api.EventDeviceRevoked, Time: n.cfg.Clock.Now(), Detail: c.Device.Name})
	return api.Device{ID: c.Device.ID(), Name: c.Device.Name, Fingerprint: c.Device.Fingerprint(), PeerID: pid.String(), Created: c.Device.Created, Revoked: true}, nil
}

// removeRevoked has every leaf of the revoked device c removed from the
// group: committed here if this device is an admin, else asked of the
// admins (who grant a sibling's request, onIntent).
func (a *groupActor) removeRevoked(c *account.Certificate) error {
	_, g := a.head()
	if g == nil || a.phase == phaseRemoved {
		return nil
	}
	a.n.dev.mu.Lock()
	acct := a.n.dev.rotations.Current(c.Account)
	a.n.dev.mu.Unlock()
	for _, m := range g.Members() {
		mi, err := verifyDevice(m.Identity, m.SignatureKey)
		if err != nil || mi.Cert == nil || !a.n.currentAccount(mi.Cert.Account).Equal(acct) ||
			!bytes.Equal(m.SignatureKey, c.Device.SignatureKey) && string(mi.Peer) != string(c.Device.Peer) {
			continue
		}
		if a.isAdmin() {
			if err := a.queueIntent(&intent{kind: intentRemove, target: m.Identity}); err != nil {
				return err
			}
			continue
		}
		p := &appPayload{Kind: kindIntent, Time: a.n.cfg.Clock.Now().UTC(), Intent: intentRemove, Target: m.Identity}
		rand.Read(p.ID[:])
		if err := a.encryptAndPublishIntent(p); err != nil {
			return err
		}
	}
	return nil
}

// sameAccount reports whether members a and b of g are devices of one
// account (both certificates hold for their leaves).
func sameAccount(g *mls.Group, a, b []byte) bool {
	var ka, kb account.PublicKey
	for _, m := range g.Members() {
		if bytes.Equal(m.Identity, a) {
			ka = memberAccount(g, m)
		}
		if bytes.Equal(m.Identity, b) {
			kb = memberAccount(g, m)
		}
	}
	return ka != nil && ka.Equal(kb)
}

// serveRevoke takes a revocation from a peer. It is kept only if it is
// signed by the account of the device it revokes, as this device knows
// that account (its own devices, or a member's certificate in one of its
// groups); the answer is empty on success, else why it was refused.
func (n *Node) serveRevoke(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		return
	}
	answer := ""
	if err := n.takeRevocation(ctx, frame); err != nil {
		answer = err.Error()
		n.log.Info("revocation refused", "peer", s.RemotePeer(), "err", err)
	}
	s.Send([]byte(answer))
}

// ErrRevocationRefused wraps why a revocation from the network was not
// kept.
var ErrRevocationRefused = fmt.Errorf("node: revocation refused")

// takeRevocation checks and keeps a revocation (see serveRevoke).
func (n *Node) takeRevocation(ctx context.Context, data []byte) error {
	r, err := account.ParseRevocation(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRevocationRefused, err)
	}
	cert := n.knownDevice(ctx, r)
	if cert == nil {
		return fmt.Errorf("%w: it names no device known here", ErrRevocationRefused)
	}
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	// Signed by the account's current key: once an account key is
	// rotated, the old key (maybe its thief's) revokes nothing.
	added, err := n.dev.revoked.Add(r, n.dev.rotations.Current(cert.Account))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRevocationRefused, err)
	}
	if !added {
		return nil
	}
	if err := n.writeRevocations(); err != nil {
		return err
	}
	if string(r.Peer) == string(n.net.ID()) || (n.dev.cert != nil && bytes.Equal(r.SignatureKey, n.dev.cert.Device.SignatureKey)) {
		// Our own account revoked us: this device stops acting for it.
		n.dev.selfRevoked = true
		if err := n.db.SetSetting(settingRevokedSelf, []byte{1}); err != nil {
			n.log.Warn("save revoked state", "err", err)
		}
		n.log.Warn("this device was revoked by its account")
	}
	n.emit(api.Event{Kind: api.EventDeviceRevoked, Time: n.cfg.Clock.Now(), Detail: r.DeviceID()})
	return nil
}

// knownDevice finds the certificate of the device r names: one of our
// account's, or a member's in one of our groups (its certificate holding
// for its leaf).
func (n *Node) knownDevice(ctx context.Context, r *account.Revocation) *account.Certificate {
	n.dev.mu.Lock()
	for _, c := range n.dev.devices {
		if bytes.Equal(c.Device.SignatureKey, r.SignatureKey) && bytes.Equal(c.Device.Peer, r.Peer) {
			n.dev.mu.Unlock()
			return c
		}
	}
	n.dev.mu.Unlock()
	var found *account.Certificate
	for _, a := range n.allActors() {
		a.do(ctx, func() error {
			for _, g := range a.epochs {
				for _, m := range g.Members() {
					if !bytes.Equal(m.SignatureKey, r.SignatureKey) {
						continue
					}
					if mi, err := verifyDevice(m.Identity, m.SignatureKey); err == nil && mi.Cert != nil && bytes.Equal(mi.Cert.Device.Peer, r.Peer) {
						found = mi.Cert
					}
				}
			}
			return nil
		})
		if found != nil {
			return found
		}
	}
	return nil
}
