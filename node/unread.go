package node

import (
	"context"
	"encoding/binary"
	"errors"

	"grove/node/api"
	"grove/store"
)

// Unread counts: how many messages from other members a group received
// since the user last marked it read (api.Service.MarkRead; `grove log`
// does so after showing the log). The counts live on the Node, beside the
// actors, under n.mu: an actor bumps its group's count when a message from
// someone else first enters the view, and readers take it from there. They
// are saved with the actor's periodic flush (and at once when marked read),
// so a clean restart keeps them; a crash may lose the increments of the
// last flush interval, never a reset.

func unreadSetting(hexID string) string { return "unread." + hexID }

// unreadLocked returns a group's count, loading it on first use.
// n.mu must be held.
func (n *Node) unreadLocked(hexID string) int {
	if c, ok := n.unread[hexID]; ok {
		return c
	}
	c := 0
	raw, err := n.db.Setting(unreadSetting(hexID))
	switch {
	case err == nil && len(raw) == 8 && binary.BigEndian.Uint64(raw) <= 1<<31:
		c = int(binary.BigEndian.Uint64(raw))
	case err == nil:
		n.log.Warn("unread count unreadable; reset", "group", hexID, "err", store.ErrCorrupt)
	case !errors.Is(err, store.ErrNotFound):
		n.log.Warn("read unread count", "group", hexID, "err", err)
	}
	n.unread[hexID] = c
	return c
}

// unreadCount is a group's count of messages not yet read.
func (n *Node) unreadCount(hexID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.unreadLocked(hexID)
}

// noteUnread counts one more message from someone else in a group.
func (n *Node) noteUnread(hexID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.unread[hexID] = n.unreadLocked(hexID) + 1
	n.unreadDirty[hexID] = true
}

// saveUnread writes a group's count if it changed since the last write,
// and reports whether it made a (synced) write: every write committed
// before it is then durable too.
func (n *Node) saveUnread(hexID string) (synced bool) {
	n.mu.Lock()
	dirty := n.unreadDirty[hexID]
	n.mu.Unlock()
	return dirty && n.writeUnread(hexID)
}

// writeUnread stores a group's current count. The (synced) write happens
// outside n.mu, which every actor's events need; unreadIO orders the
// writes and the count is read under it, so the last write always carries
// the latest count (a flush racing MarkRead cannot store a stale one). On
// failure the count is marked dirty again for the next flush. It reports
// whether the write succeeded.
func (n *Node) writeUnread(hexID string) bool {
	n.unreadIO.Lock()
	defer n.unreadIO.Unlock()
	n.mu.Lock()
	c := n.unread[hexID]
	delete(n.unreadDirty, hexID)
	n.mu.Unlock()
	if err := n.db.SetSetting(unreadSetting(hexID), binary.BigEndian.AppendUint64(nil, uint64(c))); err != nil {
		n.log.Warn("save unread count", "group", hexID, "err", err)
		n.mu.Lock()
		n.unreadDirty[hexID] = true
		n.mu.Unlock()
		return false
	}
	return true
}

// forgetUnread drops a group's count (the group was left).
func (n *Node) forgetUnread(hexID string) {
	n.unreadIO.Lock()
	defer n.unreadIO.Unlock()
	n.mu.Lock()
	delete(n.unread, hexID)
	delete(n.unreadDirty, hexID)
	n.mu.Unlock()
	if err := n.db.DeleteSetting(unreadSetting(hexID)); err != nil {
		n.log.Warn("delete unread count", "group", hexID, "err", err)
	}
}

// MarkRead implements api.Service.
func (n *Node) MarkRead(ctx context.Context, group string) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	n.mu.Lock()
	if n.unreadLocked(a.hexID) == 0 {
		n.mu.Unlock()
		return nil
	}
	n.unread[a.hexID] = 0
	n.mu.Unlock()
	n.writeUnread(a.hexID)
	n.onMarkRead(a) // content.go: mentions reset, read receipt
	return nil
}

// errRemoved is the error for anything but reading in a group this device
// was removed from.
func (a *groupActor) errRemoved() error {
	return api.Errorf(api.CodeForbidden, "group %q: this device was removed from it (its history stays readable here; leave the group to delete it)", a.name)
}
