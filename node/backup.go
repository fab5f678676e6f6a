// Backups of the account (package account, backup.go): what this device
// can read and who it is, never MLS epoch states. A restored home is a new
// device of the account, certified with the backed-up key, holding the
// history; it gets back into its groups like any new device of the account
// (linked by a sibling, or invited).

package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/account"
	"grove/node/api"
	"grove/store"
)

// BackupCreate implements api.Devices.
func (n *Node) BackupCreate(ctx context.Context, req api.BackupRequest) (api.BackupResult, error) {
	if req.Path == "" || req.Passphrase == "" {
		return api.BackupResult{}, api.Errorf(api.CodeInvalidArgument, "a backup needs a file and a passphrase")
	}
	n.dev.mu.Lock()
	key := n.dev.key
	b := &account.Backup{AccountName: n.self.Name, Key: key}
	b.Devices = append(b.Devices, n.dev.devices...)
	b.Revocations = append(b.Revocations, n.dev.revoked.List()...)
	n.dev.mu.Unlock()
	if key == nil {
		return api.BackupResult{}, api.Errorf(api.CodeUnavailable, "this device was made before accounts existed and has no account to back up")
	}
	for _, a := range n.actorList() {
		g := account.Group{ID: a.id, Name: a.name}
		for p := range a.memberPeersNow(ctx) {
			if p != n.net.ID() {
				g.Peers = append(g.Peers, account.Peer{ID: []byte(p), Addrs: n.peerAddrs(p)})
			}
		}
		b.Groups = append(b.Groups, g)
		msgs, err := n.db.Messages(a.id, time.Time{}, 1<<30)
		if err != nil {
			return api.BackupResult{}, api.Errorf(api.CodeInternal, "read history: %v", err)
		}
		for _, m := range msgs {
			b.Messages = append(b.Messages, account.Message{Group: m.Group, ID: m.ID, Time: m.Time, Sender: m.Sender, Text: m.Text, Epoch: m.Epoch})
		}
	}
	path, err := filepath.Abs(req.Path)
	if err != nil {
		return api.BackupResult{}, api.Errorf(api.CodeInvalidArgument, "backup file: %v", err)
	}
	// Written beside the target and renamed, so a failed backup never
	// replaces a good one.
	f, err := os.CreateTemp(filepath.Dir(path), ".grove-backup-*")
	if err != nil {
		return api.BackupResult{}, api.Errorf(api.CodeInvalidArgument, "backup file: %v", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = account.WriteBackup(f, req.Passphrase, b, account.BackupOptions{WorkFactor: req.WorkFactor})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return api.BackupResult{}, api.Errorf(api.CodeInternal, "write backup: %v", err)
	}
	return api.BackupResult{Path: path, Messages: len(b.Messages), Groups: len(b.Groups), Devices: len(b.Devices)}, nil
}

// peerAddrs lists the addresses this device knows for p (none on an
// in-memory network).
func (n *Node) peerAddrs(p peer.ID) []string {
	addrs, ok := n.net.(interface {
		PeerAddrs(peer.ID) []ma.Multiaddr
	})
	if !ok {
		return nil
	}
	var out []string
	for _, a := range addrs.PeerAddrs(p) {
		out = append(out, a.String())
	}
	return out
}

// memberPeersNow lists the peers of the head epoch's members, from the
// actor's goroutine.
func (a *groupActor) memberPeersNow(ctx context.Context) map[peer.ID]bool {
	var out map[peer.ID]bool
	if err := a.do(ctx, func() error { out = a.headMemberPeers(); return nil }); err != nil {
		return nil
	}
	return out
}

// restoreAccount makes this fresh home a new device of the backup's
// account and puts the backed-up history into its view and index.
func (n *Node) restoreAccount(b *account.Backup) error {
	c, err := b.Key.Certify(n.deviceFor(b.AccountName))
	if err != nil {
		return fmt.Errorf("node: certify this device: %w", err)
	}
	if err := n.saveAccount(b.Key, append([]*account.Certificate{c}, b.Devices...), b.Revocations); err != nil {
		return err
	}
	// The groups to get back into, by external commit as a device of
	// the admin's account where it is one (accountjoin.go).
	if len(b.Groups) > 0 {
		if err := n.db.SetSetting(settingRestoreGroups, marshalRestoreGroups(b.Groups)); err != nil {
			return fmt.Errorf("node: save restored groups: %w", err)
		}
	}
	const batch = 1000
	for i := 0; i < len(b.Messages); i += batch {
		var ms []store.Message
		for _, m := range b.Messages[i:min(i+batch, len(b.Messages))] {
			ms = append(ms, store.Message{Group: m.Group, ID: store.MessageID(m.ID), Time: m.Time, Sender: m.Sender, Text: m.Text, Epoch: m.Epoch})
		}
		if _, err := n.db.AddMessages(ms); err != nil {
			return fmt.Errorf("node: restore history: %w", err)
		}
	}
	return nil
}
