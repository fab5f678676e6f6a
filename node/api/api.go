// Package api defines Grove's local API: the operations a device's daemon
// offers to the grove CLI and to any user interface on the same machine, the
// types they exchange, and (in server.go and client.go) their transport over
// a Unix socket.
//
// The daemon (package node) implements Service; the CLI talks to it through
// Client, which implements Service too, so a UI can be tested against an
// in-process node and run against a daemon unchanged.
//
// Groups and members are named by strings: a group by its name or its hex
// id, a member by display name, peer ID or fingerprint prefix. Ambiguous
// names are an error (CodeInvalidArgument), never a guess.
package api

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Service is the local API of one Grove device.
type Service interface {
	// Status reports the device's identity, addresses and counters.
	Status(ctx context.Context) (Status, error)
	// CreateGroup creates a group with the caller as its only member and admin.
	CreateGroup(ctx context.Context, name string) (Group, error)
	// Groups lists the groups this device is a member of.
	Groups(ctx context.Context) ([]Group, error)
	// Invite creates a one-time invite code for group.
	Invite(ctx context.Context, group string) (Invite, error)
	// InviteWith creates a one-time invite code as req asks (Invite with
	// a chosen lifetime).
	InviteWith(ctx context.Context, req InviteRequest) (Invite, error)
	// Invites lists the invite codes this device issued that can still be
	// redeemed (not expired, Welcome not yet handed over).
	Invites(ctx context.Context) ([]InviteInfo, error)
	// RevokeInvite makes the invite code with the given id (InviteInfo.ID)
	// unusable.
	RevokeInvite(ctx context.Context, id string) error
	// Join redeems an invite code and waits until this device is welcomed
	// into the group, or ctx ends.
	Join(ctx context.Context, code string) (Group, error)
	// Send sends text to group. It returns once the message is durably in
	// the outbox; delivery continues in the background.
	Send(ctx context.Context, group, text string) (Message, error)
	// Log returns the newest messages of group, oldest first; limit <= 0
	// means a default page. It does not change the unread count.
	Log(ctx context.Context, group string, limit int) ([]Message, error)
	// MarkRead marks every message of group received so far as read: the
	// group's Unread count drops to zero.
	MarkRead(ctx context.Context, group string) error
	// Search searches the decrypted history on this device.
	Search(ctx context.Context, req SearchRequest) (SearchResult, error)
	// Members lists the members of group with their safety fingerprints.
	Members(ctx context.Context, group string) ([]Member, error)
	// Remove removes member from group (admins only).
	Remove(ctx context.Context, group, member string) error
	// Rotate updates this device's keys in group (post-compromise security).
	// It returns once the update is requested, like RequestChange.
	Rotate(ctx context.Context, group string) error
	// RequestChange asks for a change to group (a key rotation or a
	// member's removal) and returns at once, in state ChangeRequested,
	// with the id AwaitChange takes.
	RequestChange(ctx context.Context, req ChangeRequest) (Change, error)
	// AwaitChange waits up to timeout (at most MaxAwait) for the change
	// id of group to be done and returns its state then: ChangeDone, or
	// the state it is still in when the time is up.
	AwaitChange(ctx context.Context, group, id string, timeout time.Duration) (Change, error)
	// Leave leaves group and deletes everything of it on this device: at
	// once when nobody else is in it, otherwise (the group no longer
	// listed or usable) once the group has removed this device.
	Leave(ctx context.Context, group string) error
	// Peers lists connected peers.
	Peers(ctx context.Context) ([]Peer, error)
	// ConnectPeer dials the peer at addr, a multiaddr ending in /p2p/PEER_ID,
	// and returns it as Peers lists it.
	ConnectPeer(ctx context.Context, addr string) (Peer, error)
	// Export streams the decrypted history of group since the given time,
	// oldest first, calling fn for each message.
	Export(ctx context.Context, group string, since time.Time, fn func(Message) error) error
	// Subscribe streams events until ctx ends; the channel is then closed.
	Subscribe(ctx context.Context) (<-chan Event, error)
}

// Stopper is implemented by a Service whose process can be asked to stop
// through the API (`grove down`): the daemon that serves the socket, not
// the node itself, which does not own its process. Serve answers Shutdown
// with CodeUnavailable for a Service without it.
type Stopper interface {
	// Shutdown asks the daemon to stop and returns at once; the daemon
	// then stops serving, closes the device and removes its socket.
	Shutdown(ctx context.Context) error
}

// WebLinker is implemented by a Service whose process serves the web
// client (grove up --gui): grove gui asks it for a sign-in link. Serve
// answers WebLogin with CodeUnavailable for a Service without it.
type WebLinker interface {
	// WebLogin returns a one-time link that signs a browser on this
	// machine in to the web client.
	WebLogin(ctx context.Context) (WebLogin, error)
}

// WebLogin is a one-time sign-in link to the web client.
type WebLogin struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"` // the link stops working then if unused
}

// Status describes the device.
type Status struct {
	Name        string    `json:"name"`
	PeerID      string    `json:"peer_id"`
	Fingerprint string    `json:"fingerprint"`
	Addrs       []string  `json:"addrs"`
	Groups      int       `json:"groups"`
	Peers       int       `json:"peers"`
	StartedAt   time.Time `json:"started_at"`
	Version     string    `json:"version"`
	// PID is the daemon's process id, when the process serving the API
	// knows it (grove down waits for it to exit).
	PID int `json:"pid,omitempty"`
	// Device is this device's name in its account, Account the account's
	// fingerprint (empty for a device made before accounts).
	Device  string `json:"device,omitempty"`
	Account string `json:"account,omitempty"`
	// ReceiptsOff: this device sends no read receipts
	// (Conversations.SetReceipts).
	ReceiptsOff bool `json:"receipts_off,omitempty"`
}

// Group describes one group as this device sees it.
type Group struct {
	ID      string `json:"id"` // hex group id
	Name    string `json:"name"`
	Epoch   uint64 `json:"epoch"`
	EpochID string `json:"epoch_id"` // hex, the canonical epoch this device is on
	Members int    `json:"members"`
	Admin   bool   `json:"admin"` // whether this device may add and remove
	// Unread counts messages from other members received since the group
	// was last marked read (MarkRead); it survives daemon restarts.
	Unread int `json:"unread"`
	// Mentions counts unread messages that mention this device's user.
	Mentions int `json:"mentions,omitempty"`
	// State says whether this device still takes part in the group.
	State GroupState `json:"state"`
	// Sync reports catch-up progress; zero values mean up to date.
	Sync SyncState `json:"sync"`
	// Reach says which of the other members this device can reach now.
	Reach Reach `json:"reach"`
	// Muted: this device shows no notifications for the group (its
	// unread count still grows). A local setting (ChangeMute).
	Muted bool `json:"muted,omitempty"`
	// JoinedAt is when this device joined the group through an invite;
	// zero for a group created here. Messages from before it are not
	// available on this device.
	JoinedAt time.Time `json:"joined_at,omitzero"`
	// HistoryForNewMembers is how far back a new member is sent the
	// group's messages when added (ChangeHistory); zero: nothing.
	HistoryForNewMembers time.Duration `json:"history_for_new_members,omitempty"`
}

// Reach is how well a device is connected to the rest of a group.
type Reach struct {
	// Reachable counts the other members of the current epoch this
	// device is connected to now; Others counts all other members.
	Reachable int `json:"reachable"`
	Others    int `json:"others"`
	// CutOffSince is set while no other member is reachable: since when.
	CutOffSince time.Time `json:"cut_off_since,omitzero"`
	// Waiting counts own messages that no member has heard yet; they are
	// sent again once one is reachable.
	Waiting int `json:"waiting,omitempty"`
	// Reconnects counts how often a member became reachable again after
	// the device was cut off from every member, since the daemon started.
	Reconnects int `json:"reconnects,omitempty"`
}

// CutOff reports whether other members exist and none is reachable.
func (r Reach) CutOff() bool { return r.Others > 0 && r.Reachable == 0 }

// GroupState is whether this device still takes part in a group.
type GroupState string

// Group states.
const (
	// GroupActive: this device is a member and can send.
	GroupActive GroupState = "active"
	// GroupRemoved: this device was removed from the group. Its history
	// stays readable and searchable here until the user leaves the group
	// (which deletes it); sending fails.
	GroupRemoved GroupState = "removed"
	// GroupRemoving: a Commit removing this device is the newest epoch but
	// not final yet (a concurrent Commit could still win). Sending fails;
	// the history stays readable.
	GroupRemoving GroupState = "removing"
	// GroupRejoinNeeded: this device's state lost to the rest of the group
	// beyond the retention window; it must leave and be invited again.
	GroupRejoinNeeded GroupState = "rejoin_needed"
)

// SyncState is the progress of catching up with the group.
type SyncState struct {
	CatchingUp bool `json:"catching_up"`
	Done       int  `json:"done"`
	Total      int  `json:"total"`
}

// Invite is a one-time code that lets one device join a group.
type Invite struct {
	Code    string    `json:"code"`
	Group   string    `json:"group"`
	Expires time.Time `json:"expires"`
	// Uses is how many devices may join with the code (1 when omitted).
	Uses int `json:"uses,omitempty"`
}

// MaxInviteUses bounds InviteRequest.Uses.
const MaxInviteUses = 1000

// MaxInviteExpiry bounds InviteRequest.Expires: a code is for a person
// who is about to join, not a standing key.
const MaxInviteExpiry = 30 * 24 * time.Hour

// InviteRequest asks for an invite code.
type InviteRequest struct {
	Group string `json:"group"`
	// Expires is how long the code stays valid; zero means the device's
	// default (a day), at most MaxInviteExpiry.
	Expires time.Duration `json:"expires,omitempty"`
	// Uses is how many devices may join with the code; zero means one,
	// at most MaxInviteUses.
	Uses int `json:"uses,omitempty"`
}

// InviteInfo describes an issued invite code without the code itself (it is
// a secret; the id names it for RevokeInvite).
type InviteInfo struct {
	ID      string    `json:"id"`    // short hex, derived from the code
	Group   string    `json:"group"` // hex id
	Expires time.Time `json:"expires"`
	// Used: a device has redeemed the code and is being added.
	Used bool `json:"used,omitempty"`
	// Uses is how many devices may join with the code (1 when omitted);
	// Redeemed how many have redeemed it so far.
	Uses     int `json:"uses,omitempty"`
	Redeemed int `json:"redeemed,omitempty"`
}

// Message is one decrypted message in the local view.
type Message struct {
	Group      string    `json:"group"`
	ID         string    `json:"id"` // hex 128-bit application message id
	Sender     string    `json:"sender"`
	SenderPeer string    `json:"sender_peer"`
	Text       string    `json:"text"`
	Time       time.Time `json:"time"`
	Epoch      uint64    `json:"epoch"`
	Own        bool      `json:"own,omitempty"`
	// Orphaned marks a message sent on a branch that lost fork choice and
	// was shown from it; Resent marks one re-sent after a fork.
	Orphaned bool `json:"orphaned,omitempty"`
	Resent   bool `json:"resent,omitempty"`
	// BeforeJoined marks a message from before this device joined the
	// group, sent to it as history by the member that added it.
	BeforeJoined bool `json:"before_joined,omitempty"`
	// Pending marks an own message not yet confirmed published.
	Pending bool `json:"pending,omitempty"`
	// Queued marks an own message sent while no other member was
	// reachable: it waits in the outbox and goes out once one is.
	Queued bool `json:"queued,omitempty"`
	// Conversation fields (content.go): what kind of message this is,
	// what it replies to, who reacted, whether it was edited or deleted,
	// the file it carries, whom it mentions and who has read it.
	Kind      MessageKind `json:"kind,omitempty"`
	ReplyTo   string      `json:"reply_to,omitempty"`
	Reactions []Reaction  `json:"reactions,omitempty"`
	Edited    bool        `json:"edited,omitempty"`
	Deleted   bool        `json:"deleted,omitempty"`
	File      *File       `json:"file,omitempty"`
	Mentions  []string    `json:"mentions,omitempty"`
	SeenBy    []string    `json:"seen_by,omitempty"`
	// SenderDevice is the sending device's name in its account (Sender
	// is then the person's name), when its credential carries one.
	SenderDevice string `json:"sender_device,omitempty"`
}

// ChangeKind names a change RequestChange asks for.
type ChangeKind string

// Change kinds.
const (
	ChangeRotate ChangeKind = "rotate" // update this device's keys
	ChangeRemove ChangeKind = "remove" // remove Member (admins only)
	// Promote makes Member an admin, Demote takes the role from Member,
	// Rename gives the group the name Name: admins only, committed like a
	// removal so that every member agrees on the result. A group keeps
	// at least one admin.
	ChangePromote ChangeKind = "promote"
	ChangeDemote  ChangeKind = "demote"
	ChangeRename  ChangeKind = "rename"
	// History sets how far back a new member is sent the group's
	// messages by the member that adds it (ChangeRequest.History; zero
	// turns it off). Admins only, in the group's policy like a rename.
	ChangeHistory ChangeKind = "history"
	// Mute and Unmute are local to this device (Group.Muted) and done at
	// once.
	ChangeMute   ChangeKind = "mute"
	ChangeUnmute ChangeKind = "unmute"
)

// ChangeRequest asks for a change to a group.
type ChangeRequest struct {
	Group  string     `json:"group"`
	Kind   ChangeKind `json:"kind"`
	Member string     `json:"member,omitempty"` // ChangeRemove, ChangePromote, ChangeDemote: whom
	Name   string     `json:"name,omitempty"`   // ChangeRename: the new name
	// ChangeHistory: how far back new members get the history; 0 is off.
	History time.Duration `json:"history,omitempty"`
}

// ChangeState is how far a requested change has come.
type ChangeState string

// Change states.
const (
	// ChangeRequested: queued, not yet in a Commit of this device.
	ChangeRequested ChangeState = "requested"
	// ChangeCommitted: in this device's Commit of epoch Epoch, which the
	// group has not confirmed yet (a concurrent Commit could still win,
	// and the change would then be committed again).
	ChangeCommitted ChangeState = "committed"
	// ChangeDone: the group confirmed the epoch Epoch that carries it (or,
	// for a removal, the member was already gone by epoch Epoch).
	ChangeDone ChangeState = "done"
)

// MaxAwait bounds AwaitChange's timeout.
const MaxAwait = 10 * time.Minute

// Change is a requested change and how far it has come.
type Change struct {
	ID     string      `json:"id"`
	Group  string      `json:"group"` // hex id
	Kind   ChangeKind  `json:"kind"`
	Member string      `json:"member,omitempty"`
	Name   string      `json:"name,omitempty"`
	State  ChangeState `json:"state"`
	Epoch  uint64      `json:"epoch,omitempty"` // committed or done: the epoch that carries it
	// Waiting says, while not done, what the change waits for.
	Waiting string `json:"waiting,omitempty"`
	// History: ChangeHistory's new setting.
	History time.Duration `json:"history,omitempty"`
}

// Member is one member of a group.
type Member struct {
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
	// Fingerprint is a safety number over the member's signature key and
	// identity, for out-of-band verification.
	Fingerprint string `json:"fingerprint"`
	Leaf        uint32 `json:"leaf"`
	Admin       bool   `json:"admin"`
	Self        bool   `json:"self"`
	// Device is the device's name when the member's account certifies
	// it (Name is then the person's), and Account the account's
	// fingerprint: members with the same Account are one person.
	Device  string `json:"device,omitempty"`
	Account string `json:"account,omitempty"`
}

// Peer is a connected libp2p peer.
type Peer struct {
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Name   string   `json:"name,omitempty"`   // when the peer is a known member
	Groups []string `json:"groups,omitempty"` // shared groups, by name
	// Conns describes the open connections, when the network knows them.
	Conns []Conn `json:"conns,omitempty"`
}

// Conn is one open connection to a peer.
type Conn struct {
	Addr      string    `json:"addr"`      // the peer's address
	Direction string    `json:"direction"` // "inbound" (the peer dialled) or "outbound"
	Transport string    `json:"transport"` // "tcp", "quic", "relay", ...
	Opened    time.Time `json:"opened,omitzero"`
}

// SearchRequest is a full-text query over the local view. Query supports
// several terms (AND), prefixes (depl*) and quoted phrases.
type SearchRequest struct {
	Query     string    `json:"query"`
	Group     string    `json:"group,omitempty"`
	Sender    string    `json:"sender,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	Limit     int       `json:"limit,omitempty"`
	Cursor    string    `json:"cursor,omitempty"`
	ByRecency bool      `json:"by_recency,omitempty"`
}

// SearchResult is one page of search hits.
type SearchResult struct {
	Hits []SearchHit `json:"hits"`
	// Next is the cursor for the following page, empty at the end.
	Next string `json:"next,omitempty"`
}

// SearchHit is one matching message.
type SearchHit struct {
	Message Message `json:"message"`
	Score   float64 `json:"score"`
}

// EventKind names what an Event reports.
type EventKind string

// Event kinds.
const (
	EventMessage       EventKind = "message"        // a message was added to the view
	EventMemberAdded   EventKind = "member_added"   // Member joined Group
	EventMemberRemoved EventKind = "member_removed" // Member left or was removed
	EventRemoved       EventKind = "removed"        // this device was removed from Group
	EventEpoch         EventKind = "epoch"          // Group moved to a new canonical epoch
	EventForkResolved  EventKind = "fork_resolved"  // concurrent commits were settled
	EventSync          EventKind = "sync"           // catch-up progress changed
	EventGroupJoined   EventKind = "group_joined"   // this device joined Group
	EventPeers         EventKind = "peers"          // the set of connected peers changed
	EventReach         EventKind = "reach"          // Group lost its last reachable member or got one back
	EventJoinProgress  EventKind = "join_progress"  // a Join in progress: Detail says what it waits for
	// EventGroupChanged: the group's admins or name changed; Detail says
	// how, e.g. `bob is now an admin`, `renamed to "infra"`.
	EventGroupChanged EventKind = "group_changed"
)

// Event is one change streamed to subscribers.
type Event struct {
	Kind    EventKind  `json:"kind"`
	Group   string     `json:"group,omitempty"` // hex id
	Time    time.Time  `json:"time"`
	Message *Message   `json:"message,omitempty"`
	Member  *Member    `json:"member,omitempty"`
	Epoch   uint64     `json:"epoch,omitempty"`
	Sync    *SyncState `json:"sync,omitempty"`
	// Detail is a short human-readable note, e.g. which change a fork undid.
	Detail string `json:"detail,omitempty"`
}

// Code classifies API errors so that clients can act on them.
type Code string

// Error codes.
const (
	CodeInvalidArgument Code = "invalid_argument"
	CodeNotFound        Code = "not_found"
	CodeForbidden       Code = "forbidden"
	CodeConflict        Code = "conflict"
	CodeUnavailable     Code = "unavailable"
	CodeTimeout         Code = "timeout"
	CodeInternal        Code = "internal"
)

// Error is an API error with a code. Errors cross the socket as
// {code, message} and come back as *Error.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, &Error{Code: c}) match by code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Message == ""
}

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is checks by code.
var (
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrForbidden       = &Error{Code: CodeForbidden}
	ErrConflict        = &Error{Code: CodeConflict}
	ErrUnavailable     = &Error{Code: CodeUnavailable}
	ErrTimeout         = &Error{Code: CodeTimeout}
	ErrInternal        = &Error{Code: CodeInternal}
)

// CodeOf returns the code of err, CodeInternal for errors without one.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeUnavailable
	}
	return CodeInternal
}
