// Rotating the account key (grove account rotate; package account,
// doc.go, has the design). The device makes a new key and a rotation
// signed by both keys that keeps the account's non-revoked devices; it
// certifies the device list again under the new key, keeps the
// certificate its MLS credential carries (its identity in every group
// does not change), and hands the rotation to every peer it meets over
// /grove/account-rotate/1, with the new private key to the kept devices
// of the account. The rotation enters each group's policy by an admin's
// Commit (this device's where it is an admin, else that of an admin that
// was handed it), so every member reads the account's chain from the
// group state: commitRule then refuses a new leaf certified by a replaced
// key that the rotation does not keep.

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/account"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// protocolAccountRotate carries one rotation, and for a device of the
// account the new key: vec(rotation) vec(key seed or empty). The answer
// is empty on success, else why it was refused.
const protocolAccountRotate protocol.ID = "/grove/account-rotate/1"

// Settings of rotations.
const (
	settingRotations = "account.rotations" // vec(rotation)*, any account's, in the order taken
	// settingIdentityCert is the certificate this device's MLS credential
	// carries, kept once the account key is rotated (the device list then
	// holds its certificate under the new key).
	settingIdentityCert = "account.identity-cert"
	// opRotation: a policyOp that adds an account rotation to the policy.
	opRotation policyOp = 10
)

// ErrOldAccountKey is wrapped when a device certificate is refused
// because its account key was replaced and the rotation does not keep the
// device (account.ErrOldKey).
var ErrOldAccountKey = errors.New("node: device certified by a replaced account key")

// ErrRotationRefused wraps why a rotation from the network was not taken.
var ErrRotationRefused = errors.New("node: account rotation refused")

// AccountRotate implements api.Accounts.
func (n *Node) AccountRotate(ctx context.Context) (api.AccountRotation, error) {
	n.dev.mu.Lock()
	key, selfRevoked := n.dev.key, n.dev.selfRevoked
	n.dev.mu.Unlock()
	switch {
	case key == nil:
		return api.AccountRotation{}, api.Errorf(api.CodeUnavailable, "this device was made before accounts existed and has no account key to rotate")
	case selfRevoked:
		return api.AccountRotation{}, api.Errorf(api.CodeForbidden, "this device was revoked by its account and cannot rotate its key")
	}
	next, err := account.Generate(rand.Reader)
	if err != nil {
		return api.AccountRotation{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	n.dev.mu.Lock()
	r, err := n.rotateLocked(key, next)
	n.dev.mu.Unlock()
	if err != nil {
		return api.AccountRotation{}, api.Errorf(api.CodeInternal, "rotate the account key: %v", err)
	}
	n.spreadRotation(ctx, r)
	n.emit(api.Event{Kind: api.EventAccountRotated, Time: n.cfg.Clock.Now(), Detail: next.Public().Fingerprint()})
	return api.AccountRotation{
		Old: key.Public().Fingerprint(), New: next.Public().Fingerprint(),
		Seq: r.Seq, Devices: len(r.Kept),
	}, nil
}

// rotateLocked replaces key by next: the rotation, the device list
// certified again, all stored. The caller holds n.dev.mu.
func (n *Node) rotateLocked(key, next *account.Key) (*account.Rotation, error) {
	var keep []*account.Certificate
	for _, c := range n.dev.devices {
		if n.dev.revoked.RevokedUnder(c, &n.dev.rotations) == nil {
			keep = append(keep, c)
		}
	}
	seq := uint64(len(n.dev.rotations.Chain(key.Public()))) + 1
	r, err := key.Rotate(next, seq, keep, n.cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	if _, err := n.dev.rotations.Add(r); err != nil {
		return nil, err
	}
	if err := n.adoptKeyLocked(next, r); err != nil {
		return nil, err
	}
	return r, nil
}

// adoptKeyLocked makes next this device's account key after rotation r:
// the devices r keeps are certified again under it (this one first), and
// the certificate the credential carries is kept aside. The caller holds
// n.dev.mu.
func (n *Node) adoptKeyLocked(next *account.Key, r *account.Rotation) error {
	if _, err := n.db.Setting(settingIdentityCert); errors.Is(err, store.ErrNotFound) && n.self.Cert != nil {
		if err := n.db.SetSetting(settingIdentityCert, n.self.Cert.Marshal()); err != nil {
			return fmt.Errorf("node: save identity certificate: %w", err)
		}
	}
	var certs []*account.Certificate
	for _, c := range n.dev.devices {
		if !r.Keeps(c) || slices.ContainsFunc(certs, func(o *account.Certificate) bool { return bytes.Equal(o.Device.SignatureKey, c.Device.SignatureKey) }) {
			continue
		}
		nc, err := next.Certify(c.Device)
		if err != nil {
			return err
		}
		if bytes.Equal(c.Device.Peer, []byte(n.net.ID())) {
			certs = append([]*account.Certificate{nc}, certs...)
			n.dev.cert = nc
		} else {
			certs = append(certs, nc)
		}
	}
	if err := n.writeRotations(); err != nil {
		return err
	}
	// The old key is not erased in memory: a call that took it before
	// the rotation (a revoke, a link) may still be using it.
	return n.saveAccount(next, certs, nil)
}

// spreadRotation hands r to the groups where this device is an admin and
// to every connected peer (with the key to the account's kept devices).
func (n *Node) spreadRotation(ctx context.Context, r *account.Rotation) {
	for _, a := range n.actorList() {
		if err := a.do(ctx, func() error { return a.queueRotation(r) }); err != nil {
			n.log.Warn("rotation not queued", "group", a.hexID, "err", err)
		}
	}
	for _, p := range n.net.Peers() {
		n.pushRotation(p, r)
	}
}

// queueRotation queues the Commit that adds r to the group's policy when
// this device is an admin, the group has a device of the rotated account
// and its policy does not hold r yet.
func (a *groupActor) queueRotation(r *account.Rotation) error {
	_, g := a.head()
	if g == nil || a.phase == phaseRemoved || !a.isAdmin() {
		return nil
	}
	rots := groupRotations(g)
	if seen, err := rots.Check(r); seen || err != nil {
		return nil
	}
	if !slices.ContainsFunc(g.Members(), func(m mls.Member) bool {
		k := memberAccount(g, m)
		return k != nil && k.Equal(r.Old)
	}) {
		return nil
	}
	raw := r.Marshal()
	for _, it := range a.intents {
		if it.kind == intentPolicy && it.op == opRotation && bytes.Equal(it.rotation, raw) {
			return nil
		}
	}
	return a.queueIntent(&intent{kind: intentPolicy, op: opRotation, rotation: raw})
}

// applyRotation adds the rotation of intent it to pol (applyToPolicy); it
// reports false when pol has it already or cannot take it.
func applyRotation(pol *policy, raw []byte) bool {
	r, err := account.ParseRotation(raw)
	if err != nil {
		return false
	}
	rots := rotationsOf(pol)
	if seen, err := rots.Check(r); seen || err != nil || len(pol.Rotations) >= maxPolicyRotations {
		return false
	}
	pol.Rotations = append(pol.Rotations, raw)
	return true
}

// rotationsOf reads the rotations of a policy, committed and so checked
// (rotationRule): a malformed or competing one is skipped.
func rotationsOf(pol *policy) *account.Rotations {
	rots := &account.Rotations{}
	for _, raw := range pol.Rotations {
		if r, err := account.ParseRotation(raw); err == nil {
			rots.AddChecked(r)
		}
	}
	return rots
}

// groupRotations is the account rotations g's policy holds.
func groupRotations(g *mls.Group) *account.Rotations { return rotationsOf(groupPolicy(g)) }

// rotationRule is policyRule's check of the rotations of a new policy:
// the parent's are kept, in order, and each new one is signed by both its
// keys and continues its account's chain (first seen wins).
func rotationRule(before, after *policy) rejectReason {
	if len(after.Rotations) < len(before.Rotations) {
		return rejectPolicy
	}
	rots := &account.Rotations{}
	for i, raw := range after.Rotations {
		r, err := account.ParseRotation(raw)
		if err != nil {
			return rejectPolicy
		}
		if i < len(before.Rotations) {
			if !bytes.Equal(raw, before.Rotations[i]) {
				return rejectPolicy
			}
			rots.AddChecked(r)
			continue
		}
		if _, err := rots.Add(r); err != nil {
			return rejectPolicy
		}
	}
	return ""
}

// acceptedCert checks a device certificate against the rotations of the
// group (rots): ErrOldAccountKey for a certificate of a replaced key the
// rotation does not keep.
func acceptedCert(rots *account.Rotations, c *account.Certificate) error {
	if _, err := rots.Accept(c); err != nil {
		return fmt.Errorf("%w: %w", ErrOldAccountKey, err)
	}
	return nil
}

// checkCertLocally checks c against the rotations this device knows.
func (n *Node) checkCertLocally(c *account.Certificate) error {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	return acceptedCert(&n.dev.rotations, c)
}

// learnRotations takes the rotations of a newly applied epoch's policy
// into what this device knows (they were checked by the Commit's rules).
func (n *Node) learnRotations(pol *policy) {
	if len(pol.Rotations) == 0 {
		return
	}
	n.dev.mu.Lock()
	var added []*account.Rotation
	for _, raw := range pol.Rotations {
		r, err := account.ParseRotation(raw)
		if err != nil {
			continue
		}
		if ok, err := n.dev.rotations.Add(r); err == nil && ok {
			added = append(added, r)
		} else if err != nil && !errors.Is(err, account.ErrCompetingRotation) {
			n.log.Warn("group rotation not taken", "err", err)
		}
	}
	if len(added) > 0 {
		if err := n.writeRotations(); err != nil {
			n.log.Warn("save rotations", "err", err)
		}
	}
	n.dev.mu.Unlock()
	if len(added) == 0 {
		return
	}
	// Into the other groups where this device is an admin. Not from
	// here: this runs on one group's actor, which must not wait on others.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for _, r := range added {
			n.spreadRotationToGroups(n.ctx, r)
		}
	}()
}

// ---- over the network ----

// pushRotation hands r to peer p, with the account key if p is a kept
// device of this account.
func (n *Node) pushRotation(p peer.ID, r *account.Rotation) error {
	var w wbuf
	w.vec(r.Marshal())
	n.dev.mu.Lock()
	var seed []byte
	if n.dev.key != nil && n.dev.key.Public().Equal(n.dev.rotations.Current(r.New)) && r.New.Equal(n.dev.key.Public()) {
		for _, c := range n.dev.devices {
			if string(c.Device.Peer) == string(p) && r.Keeps(c) && n.dev.revoked.RevokedUnder(c, &n.dev.rotations) == nil {
				seed = n.dev.key.Bytes()
			}
		}
	}
	n.dev.mu.Unlock()
	w.vec(seed)
	clear(seed)
	ctx, cancel := context.WithTimeout(n.ctx, revokePushTimeout)
	defer cancel()
	resp, err := n.net.Request(ctx, p, protocolAccountRotate, w.b)
	clear(w.b)
	if err != nil {
		n.log.Debug("rotation not delivered", "peer", p, "err", err)
		return err
	}
	if len(resp) > 0 {
		n.log.Debug("rotation answer", "peer", p, "answer", sanitizeRemote(string(resp)))
	}
	return nil
}

// ownRotations is the chain of this device's account, for peers that
// connect.
func (n *Node) ownRotations() []*account.Rotation {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.key == nil {
		return nil
	}
	return n.dev.rotations.Chain(n.dev.key.Public())
}

// serveAccountRotate takes a rotation from a peer.
func (n *Node) serveAccountRotate(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		return
	}
	answer := ""
	if err := n.takeRotation(ctx, s.RemotePeer(), frame); err != nil {
		answer = err.Error()
		n.log.Info("rotation refused", "peer", s.RemotePeer(), "err", err)
	}
	clear(frame)
	s.Send([]byte(answer))
}

// takeRotation checks and keeps a rotation from peer remote: one of an
// account this device knows (its own, or a member's in one of its
// groups), signed by both keys, continuing the chain this device knows
// (first seen wins). With a key, from a kept device of this account, the
// device takes the new key. Then it commits the rotation where it is an
// admin.
func (n *Node) takeRotation(ctx context.Context, remote peer.ID, frame []byte) error {
	rd := rbuf{b: frame}
	raw := rd.vec(account.MaxRotationBytes, "rotation")
	seed := rd.vec(64, "key")
	if err := rd.done("rotation"); err != nil {
		return fmt.Errorf("%w: %w", ErrRotationRefused, err)
	}
	r, err := account.ParseRotation(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRotationRefused, err)
	}
	if !n.knownAccount(ctx, r.Old) {
		return fmt.Errorf("%w: it rotates no account known here", ErrRotationRefused)
	}
	n.dev.mu.Lock()
	added, err := n.dev.rotations.Add(r)
	if err == nil && added {
		err = n.writeRotations()
	}
	if err == nil && len(seed) > 0 {
		// The statement holds on its own (it stays kept); the key is
		// taken only from a sibling.
		if kerr := n.takeKeyLocked(remote, r, seed); kerr != nil {
			err = fmt.Errorf("the rotation is kept, its key is not taken: %w", kerr)
		}
	}
	n.dev.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRotationRefused, err)
	}
	// Also when known already (learned from another group's Commit): a
	// group of ours may not have it yet. queueRotation skips the groups
	// that do.
	n.spreadRotationToGroups(ctx, r)
	return nil
}

// spreadRotationToGroups queues r's Commit where this device is an admin.
func (n *Node) spreadRotationToGroups(ctx context.Context, r *account.Rotation) {
	for _, a := range n.actorList() {
		if err := a.do(ctx, func() error { return a.queueRotation(r) }); err != nil {
			n.log.Warn("rotation not queued", "group", a.hexID, "err", err)
		}
	}
}

// takeKeyLocked adopts the new account key of rotation r, sent by remote:
// only from a device of this account that is not revoked, for a rotation
// of this device's current key that keeps this device, and only a key
// that is r's new key. The caller holds n.dev.mu.
func (n *Node) takeKeyLocked(remote peer.ID, r *account.Rotation, seed []byte) error {
	if n.dev.key == nil || n.dev.selfRevoked {
		return errors.New("this device holds no account key")
	}
	if n.dev.key.Public().Equal(r.New) {
		return nil // taken already
	}
	// r continues this device's chain: it replaces our key, or a key that
	// replaced ours by rotations this device took without their keys
	// (it was offline through several rotations).
	if !n.dev.key.Public().Equal(r.Old) && !n.dev.rotations.Current(n.dev.key.Public()).Equal(r.New) {
		return errors.New("the key is for another account")
	}
	sibling := false
	for _, c := range n.dev.devices {
		if string(c.Device.Peer) == string(remote) && n.dev.revoked.RevokedUnder(c, &n.dev.rotations) == nil {
			sibling = true
		}
	}
	if !sibling {
		return errors.New("only a device of this account may hand it its key")
	}
	if n.dev.cert == nil || !r.Keeps(n.dev.cert) {
		return errors.New("the rotation does not keep this device")
	}
	next, err := account.ParseKey(seed)
	if err != nil {
		return err
	}
	if !next.Public().Equal(r.New) {
		next.Erase()
		return errors.New("the key is not the rotation's new key")
	}
	if err := n.adoptKeyLocked(next, r); err != nil {
		return err
	}
	n.log.Info("account key rotated by another device of the account", "account", r.New.Fingerprint())
	n.emit(api.Event{Kind: api.EventAccountRotated, Time: n.cfg.Clock.Now(), Detail: r.New.Fingerprint()})
	return nil
}

// knownAccount reports whether k is this device's account key (or one it
// replaced), or the account of a member of one of its groups.
func (n *Node) knownAccount(ctx context.Context, k account.PublicKey) bool {
	n.dev.mu.Lock()
	own := n.dev.key != nil && n.dev.rotations.Current(k).Equal(n.dev.key.Public())
	n.dev.mu.Unlock()
	if own {
		return true
	}
	found := false
	for _, a := range n.actorList() {
		a.do(ctx, func() error {
			_, g := a.head()
			if g == nil {
				return nil
			}
			rots := groupRotations(g)
			for _, m := range g.Members() {
				if mk := memberAccount(g, m); mk != nil && mk.Equal(rots.Current(k)) {
					found = true
				}
			}
			return nil
		})
		if found {
			return true
		}
	}
	return false
}

// ---- storage ----

func (n *Node) loadRotations() error {
	raw, err := n.db.Setting(settingRotations)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: read rotations: %w", err)
	}
	rd := rbuf{b: raw}
	for len(rd.b) > 0 && rd.err == nil {
		r, err := account.ParseRotation(rd.vec(account.MaxRotationBytes, "rotation"))
		if err != nil {
			return fmt.Errorf("node: stored rotations: %w", store.ErrCorrupt)
		}
		if err := n.dev.rotations.AddChecked(r); err != nil {
			return fmt.Errorf("node: stored rotations: %w", store.ErrCorrupt)
		}
	}
	if rd.err != nil {
		return fmt.Errorf("node: stored rotations: %w", store.ErrCorrupt)
	}
	return nil
}

// writeRotations stores the known rotations; the caller holds n.dev.mu
// or runs before Start returns.
func (n *Node) writeRotations() error {
	var w wbuf
	for _, r := range n.dev.rotations.List() {
		w.vec(r.Marshal())
	}
	if err := n.db.SetSetting(settingRotations, w.b); err != nil {
		return fmt.Errorf("node: save rotations: %w", err)
	}
	return nil
}

// identityCert is the certificate the credential carries when it was
// kept aside by a rotation, else nil.
func (n *Node) identityCert() (*account.Certificate, error) {
	raw, err := n.db.Setting(settingIdentityCert)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read identity certificate: %w", err)
	}
	c, err := account.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("node: stored identity certificate: %w", store.ErrCorrupt)
	}
	return c, nil
}

// currentAccount follows k's chain as this device knows it.
func (n *Node) currentAccount(k account.PublicKey) account.PublicKey {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	return n.dev.rotations.Current(k)
}

// accountFingerprintNow is the fingerprint of this device's account key
// as it is now (after rotations), empty without an account.
func (n *Node) accountFingerprintNow() string {
	if n.self.Cert == nil {
		return ""
	}
	return n.currentAccount(n.self.Cert.Account).Fingerprint()
}

// ownRotationsForPolicy is this account's rotation chain for the policy
// of a group this device creates: its members judge devices of the
// account under it from the first epoch on (a device the old key's thief
// certifies cannot join a group made after the rotation either).
func (n *Node) ownRotationsForPolicy() [][]byte {
	var out [][]byte
	for _, r := range n.ownRotations() {
		if len(out) == maxPolicyRotations {
			break
		}
		out = append(out, r.Marshal())
	}
	return out
}
