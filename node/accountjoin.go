// A device of an admin's account joins a group by external commit
// (RFC 9420, Section 12.4.3.2) when no other device of its account is
// there to add it: the restored home of a person whose only device is
// gone. Admin rights belong to the account (devices.go), so its new device
// may add itself, as the account's admin device could have added it.
//
// Members let such a device in deterministically, from the parent epoch
// alone (accountJoinCommitter): the external Commit only adds the joiner
// (ExternalInit, nothing else), the joiner's leaf carries a certificate
// that holds for it, and its account is the account of an admin listed in
// the group's policy. commitorder then sees the Commit as made by that
// admin's identity (the account acting), classed as an Add, so its usual
// rules apply: the committer is a member and an admin of the parent.
//
// The GroupInfo it needs comes over /grove/account-join/1, served only to a
// peer whose certificate, signed by such an admin account, names the very
// peer id the transport authenticated; like a rejoin, it is used only when
// two members agree on it (one when the group has one other member).

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/chacha20poly1305"

	"grove/account"
	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// protocolAccountJoin serves GroupInfos to devices of admin accounts.
const protocolAccountJoin protocol.ID = "/grove/account-join/1"

// settingRestoreGroups holds the groups a restored device still has to
// get back into: vec(group id) vec(name) u8(peers) (vec(peer) u8(addrs)
// vec(addr)*)*, one after the other.
const settingRestoreGroups = "account.restore-groups"

// restoreRetry is how often a restored device tries again to get back into
// its groups while the daemon runs.
const restoreRetry = 5 * time.Second

// accountJoinCommitter returns, for an external Commit that is an admin
// account's new device joining, the identity commitorder should see as its
// committer: the first admin of the parent's policy certified by the
// joiner's account. Else nil.
func accountJoinCommitter(parent *mls.Group, data []byte, sc *mls.StagedCommit) []byte {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil || m.WireFormat != mls.WireFormatPublicMessage {
		return nil
	}
	c := m.PublicMessage.Content.Commit
	if c == nil || c.Path == nil {
		return nil
	}
	for _, p := range sc.Proposals {
		if p.Type != mls.ProposalTypeExternalInit {
			return nil
		}
	}
	mi, err := verifyDevice(c.Path.LeafNode.Credential.Identity, c.Path.LeafNode.SignatureKey)
	if err != nil || mi.Cert == nil {
		return nil
	}
	// Under the group's account rotations: a device certified by a
	// replaced key that the rotation does not keep is no device of the
	// account (accountrotate.go).
	rots := groupRotations(parent)
	joiner, err := rots.Accept(mi.Cert)
	if err != nil {
		return nil
	}
	for _, ad := range groupPolicy(parent).Admins {
		for _, pm := range parent.Members() {
			if bytes.Equal(pm.Identity, ad) {
				if k := memberAccountIn(rots, pm); k != nil && k.Equal(joiner) {
					return pm.Identity
				}
			}
		}
	}
	return nil
}

// serveAccountJoin answers a device of an admin account with the group's
// GroupInfo, epoch id and that epoch's sealing key (epochseal.go, so that
// its external Commit goes sealed like a rejoin's): vec(gi) vec(eid)
// vec(key), or an empty frame.
func (n *Node) serveAccountJoin(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		return
	}
	r := rbuf{b: frame}
	gid := r.vec(maxGroupID, "group")
	cert := r.vec(maxIdentity, "certificate")
	if r.done("account join request") != nil {
		s.Send(nil)
		return
	}
	gi, eid, key, err := n.accountGroupInfo(ctx, gid, cert, s.RemotePeer())
	if err != nil {
		n.log.Info("account join refused", "peer", s.RemotePeer(), "err", err)
		s.Send(nil)
		return
	}
	var w wbuf
	w.vec(gi)
	w.vec(eid[:])
	w.vec(key)
	s.Send(w.b)
}

// errNotAccountAdmin: the requester is no device of an admin's account.
var errNotAccountAdmin = errors.New("not a device of an admin's account")

// accountGroupInfo is the GroupInfo of group gid, its epoch id and
// sealing key, for the device whose certificate is certBytes, asking from
// peer remote.
func (n *Node) accountGroupInfo(ctx context.Context, gid, certBytes []byte, remote peer.ID) (gi []byte, eid [16]byte, key []byte, err error) {
	cert, err := account.ParseCertificate(certBytes)
	if err != nil || string(cert.Device.Peer) != string(remote) || cert.Verify() != nil {
		return nil, eid, nil, errNotAccountAdmin
	}
	n.dev.mu.Lock()
	revoked := n.dev.revoked.RevokedUnder(cert, &n.dev.rotations) != nil
	n.dev.mu.Unlock()
	if revoked {
		return nil, eid, nil, errors.New("device revoked")
	}
	if err := n.checkCertLocally(cert); err != nil {
		return nil, eid, nil, err
	}
	a, err := n.lookup(hex.EncodeToString(gid))
	if err != nil || !bytes.Equal(a.id, gid) {
		return nil, eid, nil, errNotMember
	}
	err = a.do(ctx, func() error {
		e, g := a.head()
		if g == nil || a.phase == phaseRemoved {
			return errNotMember
		}
		joiner, err := groupRotations(g).Accept(cert)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrOldAccountKey, err)
		}
		if !slices.ContainsFunc(adminAccounts(g, groupPolicy(g).Admins), joiner.Equal) {
			return errNotAccountAdmin
		}
		eid = e
		if gi, err = g.GroupInfo(true); err != nil {
			return err
		}
		key, err = epochKeyBytes(g)
		return err
	})
	return gi, eid, key, err
}

// restoreGroup is a group a restored device wants back.
type restoreGroup struct {
	id    []byte
	name  string
	peers []peer.AddrInfo
}

func marshalRestoreGroups(gs []account.Group) []byte {
	var w wbuf
	for _, g := range gs {
		w.vec(g.ID)
		w.vec([]byte(g.Name))
		w.u8(byte(min(len(g.Peers), 255)))
		for _, p := range g.Peers[:min(len(g.Peers), 255)] {
			w.vec(p.ID)
			w.u8(byte(min(len(p.Addrs), maxAddrs)))
			for _, a := range p.Addrs[:min(len(p.Addrs), maxAddrs)] {
				w.vec([]byte(a))
			}
		}
	}
	return w.b
}

func parseRestoreGroups(b []byte) ([]restoreGroup, error) {
	r := rbuf{b: b}
	var out []restoreGroup
	for len(r.b) > 0 && r.err == nil {
		g := restoreGroup{id: r.vec(maxGroupID, "group"), name: string(r.vec(maxNameLen*4, "name"))}
		np := int(r.u8("peers"))
		for range np {
			pid, err := peer.IDFromBytes(r.vec(128, "peer"))
			ai := peer.AddrInfo{ID: pid}
			na := int(r.u8("addrs"))
			for range na {
				if m, err := ma.NewMultiaddr(string(r.vec(maxAddrLen, "addr"))); err == nil {
					ai.Addrs = append(ai.Addrs, m)
				}
			}
			if err == nil {
				g.peers = append(g.peers, ai)
			}
		}
		out = append(out, g)
	}
	return out, r.err
}

// rejoinRestoredGroups gets a restored device back into the groups of its
// backup, by external commit as a device of the admin's account, retrying
// while the daemon runs; groups it joins otherwise (a link, an invite) are
// dropped from the list.
func (n *Node) rejoinRestoredGroups() {
	defer n.wg.Done()
	for {
		raw, err := n.db.Setting(settingRestoreGroups)
		if err != nil {
			return
		}
		gs, err := parseRestoreGroups(raw)
		if err != nil {
			n.log.Warn("restored groups list unreadable", "err", err)
			n.db.DeleteSetting(settingRestoreGroups)
			return
		}
		var left []account.Group
		for _, g := range gs {
			if _, err := n.lookup(hex.EncodeToString(g.id)); err == nil {
				continue
			}
			if err := n.accountJoin(g); err != nil {
				n.log.Info("restored group not joined yet", "group", g.name, "err", err)
				ag := account.Group{ID: g.id, Name: g.name}
				for _, p := range g.peers {
					ap := account.Peer{ID: []byte(p.ID)}
					for _, a := range p.Addrs {
						ap.Addrs = append(ap.Addrs, a.String())
					}
					ag.Peers = append(ag.Peers, ap)
				}
				left = append(left, ag)
			}
		}
		if len(left) == 0 {
			n.db.DeleteSetting(settingRestoreGroups)
			return
		}
		n.db.SetSetting(settingRestoreGroups, marshalRestoreGroups(left))
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(restoreRetry):
		}
	}
}

// accountJoin joins g by external commit from a GroupInfo that enough of
// its members agree on.
func (n *Node) accountJoin(g restoreGroup) error {
	ctx, cancel := context.WithTimeout(n.ctx, syncTimeout)
	defer cancel()
	type answer struct {
		gi, gc, key []byte
		eid         [16]byte
	}
	var answers []answer
	req := wbuf{}
	req.vec(g.id)
	req.vec(n.dev.cert.Marshal())
	for _, p := range g.peers {
		if p.ID == n.net.ID() {
			continue
		}
		if err := n.net.Connect(ctx, p); err != nil {
			continue
		}
		resp, err := n.net.Request(ctx, p.ID, protocolAccountJoin, req.b)
		if err != nil || len(resp) == 0 {
			continue
		}
		r := rbuf{b: resp}
		gi := r.vec(maxWelcome, "group info")
		eid := r.vec(16, "epoch id")
		key := r.vec(chacha20poly1305.KeySize, "sealing key")
		if r.done("account join answer") != nil || len(eid) != 16 || len(key) != chacha20poly1305.KeySize {
			continue
		}
		m, err := mls.UnmarshalMLSMessage(gi)
		if err != nil || m.WireFormat != mls.WireFormatGroupInfo || !bytes.Equal(m.GroupInfo.GroupContext.GroupID, g.id) {
			continue
		}
		gc, err := m.GroupInfo.GroupContext.MarshalBinary()
		if err != nil {
			continue
		}
		answers = append(answers, answer{gi: gi, gc: gc, key: key, eid: [16]byte(eid)})
	}
	// Two members must agree (one liar cannot steer us), or the only one
	// there is when the group has a single other member.
	var pick *answer
	for i := range answers {
		agree := 0
		for j := range answers {
			if bytes.Equal(answers[i].gc, answers[j].gc) && answers[i].eid == answers[j].eid && bytes.Equal(answers[i].key, answers[j].key) {
				agree++
			}
		}
		if agree >= min(2, len(g.peers)) {
			pick = &answers[i]
			break
		}
	}
	if pick == nil {
		return fmt.Errorf("%d of %d members answered, not enough agree", len(answers), len(g.peers))
	}
	now := n.cfg.Clock.Now()
	parent := commitorder.EpochID(pick.eid)
	grp, commitMsg, err := mls.JoinExternal(&mls.ExternalJoinParams{
		GroupInfo: pick.gi, Credential: mls.NewBasicCredential(n.selfID),
		Capabilities: mls.Capabilities{Extensions: groveExtensions},
		SigningKey:   n.sig, AuthenticatedData: parentAD(parent), Config: groupConfig(), Now: now, Rand: rand.Reader,
	})
	if err != nil {
		return fmt.Errorf("external join: %w", err)
	}
	committer := accountAdminIn(grp, n.dev.cert.Account)
	if committer == nil {
		grp.Erase()
		return errNotAccountAdmin
	}
	cid := commitorder.CommitID(sha256.Sum256(commitMsg))
	a, err := n.adoptGroup(grp, g.name, commitorder.Genesis{HasCommit: true, Parent: parent, Class: commitorder.ClassAdd, Committer: commitorder.MemberID(committer), Cid: cid})
	if err != nil {
		return err
	}
	return a.do(ctx, func() error {
		a.setFloor(grp.Epoch() - 1)
		a.markSeen(cid)
		n.db.AppendLog(a.id, grp.Epoch()-1, store.MessageHash(cid), commitMsg)
		n.metrics.messagesOut.Add(1)
		n.emit(api.Event{Kind: api.EventGroupJoined, Group: a.hexID, Time: now, Detail: "rejoined as a device of an admin's account"})
		// Sealed under the parent epoch's key the members vouched for,
		// as a rejoin's (publish, rejoinSealKey).
		if aead, err := chacha20poly1305.NewX(pick.key); err == nil {
			if a.epochKeys == nil {
				a.epochKeys = map[commitorder.EpochID]epochKeyEntry{}
			}
			a.epochKeys[parent] = epochKeyEntry{aead: aead, epoch: grp.Epoch() - 1}
		}
		return a.publish(commitMsg)
	})
}

// accountAdminIn is the first admin in g's policy certified by account.
func accountAdminIn(g *mls.Group, acct account.PublicKey) []byte {
	for _, ad := range groupPolicy(g).Admins {
		for _, m := range g.Members() {
			if bytes.Equal(m.Identity, ad) {
				if k := memberAccount(g, m); k != nil && k.Equal(acct) {
					return m.Identity
				}
			}
		}
	}
	return nil
}
