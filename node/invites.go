package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"grove/node/api"
	"grove/store"
)

// Issued invite codes are kept one setting each (inviteSetting); the
// settings cannot be listed, so an index setting names them, for `grove
// invite list` and `grove invite revoke`. Codes that can no longer be
// redeemed (expired, or their Welcome handed over: then only the joiner's
// own retry may still use it, while the leaf it was added with is unused,
// see retryReplacesUnused) leave the index when it is next read.

// inviteIndexSetting holds the secrets of the issued codes, 16 bytes each.
const inviteIndexSetting = "invite-index"

// maxIndexedInvites bounds the index: older entries are dropped from the
// listing (the codes stay valid until they expire).
const maxIndexedInvites = 1024

// Invite implements api.Service.
func (n *Node) Invite(ctx context.Context, group string) (api.Invite, error) {
	return n.invite(ctx, group, 0, 1)
}

// InviteWith implements api.Service.
func (n *Node) InviteWith(ctx context.Context, req api.InviteRequest) (api.Invite, error) {
	if req.Expires < 0 || req.Expires > api.MaxInviteExpiry {
		return api.Invite{}, api.Errorf(api.CodeInvalidArgument, "an invite code may be valid for at most %v", api.MaxInviteExpiry)
	}
	if req.Uses < 0 || req.Uses > api.MaxInviteUses {
		return api.Invite{}, api.Errorf(api.CodeInvalidArgument, "an invite code may be used by 1 to %d devices", api.MaxInviteUses)
	}
	return n.invite(ctx, req.Group, req.Expires, max(req.Uses, 1))
}

// inviteID names an invite without revealing its secret.
func inviteID(secret [16]byte) string {
	h := sha256.Sum256(append([]byte("grove invite id:"), secret[:]...))
	return hex.EncodeToString(h[:4])
}

// readInviteIndex returns the indexed secrets. Callers hold n.mu.
func (n *Node) readInviteIndex() [][16]byte {
	raw, err := n.db.Setting(inviteIndexSetting)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			n.log.Warn("read invite index", "err", err)
		}
		return nil
	}
	var out [][16]byte
	for len(raw) >= 16 {
		out = append(out, [16]byte(raw[:16]))
		raw = raw[16:]
	}
	return out
}

// writeInviteIndex stores secrets as the index. Callers hold n.mu.
func (n *Node) writeInviteIndex(secrets [][16]byte) {
	if len(secrets) > maxIndexedInvites {
		secrets = secrets[len(secrets)-maxIndexedInvites:]
	}
	raw := make([]byte, 0, 16*len(secrets))
	for _, s := range secrets {
		raw = append(raw, s[:]...)
	}
	if err := n.db.SetSetting(inviteIndexSetting, raw); err != nil {
		n.log.Warn("save invite index", "err", err)
	}
}

// indexInvite adds secret to the index. Callers hold n.mu.
func (n *Node) indexInvite(secret [16]byte) {
	n.writeInviteIndex(append(n.readInviteIndex(), secret))
}

// loadInvite returns the pending invite of secret, from memory or the
// store, or nil. Callers hold n.mu.
func (n *Node) loadInvite(secret [16]byte) *pendingInvite {
	if pi := n.invites[secret]; pi != nil {
		return pi
	}
	raw, err := n.db.Setting(inviteSetting(secret))
	if err != nil {
		return nil
	}
	pi, err := unmarshalPendingInvite(raw)
	if err != nil {
		return nil
	}
	return pi
}

// Invites implements api.Service.
func (n *Node) Invites(ctx context.Context) ([]api.InviteInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.cfg.Clock.Now()
	index := n.readInviteIndex()
	var keep [][16]byte
	var out []api.InviteInfo
	for _, s := range index {
		pi := n.loadInvite(s)
		if pi == nil || !now.Before(pi.expires) || pi.spent() {
			continue
		}
		keep = append(keep, s)
		info := api.InviteInfo{ID: inviteID(s), Group: pi.group, Expires: pi.expires, Used: pi.used}
		if pi.maxUses() > 1 {
			info.Uses, info.Redeemed = pi.maxUses(), pi.redemptions()
		}
		out = append(out, info)
	}
	if len(keep) != len(index) {
		n.writeInviteIndex(keep)
	}
	return out, nil
}

// RevokeInvite implements api.Service: the code's record goes, so that
// redeeming it fails as for an unknown code.
func (n *Node) RevokeInvite(ctx context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	index := n.readInviteIndex()
	for i, s := range index {
		if inviteID(s) != id {
			continue
		}
		if err := n.db.DeleteSetting(inviteSetting(s)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeInternal, "revoke invite: %v", err)
		}
		delete(n.invites, s)
		n.writeInviteIndex(append(index[:i:i], index[i+1:]...))
		return nil
	}
	return api.Errorf(api.CodeNotFound, "no invite %q (grove invite list shows the ids)", id)
}
