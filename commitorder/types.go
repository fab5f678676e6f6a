package commitorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// EpochID names a group state: MLS-Exporter("grove epoch id", "", 16) of
// that epoch. States are keyed by EpochID, never by epoch number alone.
type EpochID [16]byte

// CommitID names a Commit: SHA-256 of its MLSMessage bytes.
type CommitID [32]byte

// MsgID is the 128-bit application message id carried inside the plaintext;
// it deduplicates a message re-sent in another epoch.
type MsgID [16]byte

// IntentID names a change a member asked for (join request, leave, remove
// request, key update) that a Commit will carry by value.
type IntentID [16]byte

// MemberID is a member's credential identity (the bytes, as a string so it
// can key maps). It is what the rank hashes.
type MemberID string

// Rank orders committers on one parent; see RankOf.
type Rank [32]byte

func (e EpochID) String() string  { return hex.EncodeToString(e[:4]) }
func (c CommitID) String() string { return hex.EncodeToString(c[:4]) }
func (m MsgID) String() string    { return hex.EncodeToString(m[:4]) }

// Class is the first key of the fork choice: lower wins.
type Class uint8

const (
	// ClassRemove: the Commit removes a member or re-initialises the group
	// (an external Commit that replaces a leaf counts as a removal).
	ClassRemove Class = 0
	// ClassAdd: the Commit adds a member, changes extensions or injects a PSK.
	ClassAdd Class = 1
	// ClassUpdate: the Commit only updates keys. It ranks last so that a
	// member cannot escape its own removal by racing an update.
	ClassUpdate Class = 2
)

func (c Class) valid() bool { return c <= ClassUpdate }

// RankOf is SHA-256("grove rank" || parent || identity). It cannot be ground
// by re-randomising the Commit (neither input is under the committer's
// control within an epoch) and it rotates with every epoch, so no member
// always wins.
func RankOf(parent EpochID, committer MemberID) Rank {
	h := sha256.New()
	h.Write([]byte("grove rank"))
	h.Write(parent[:])
	h.Write([]byte(committer))
	var r Rank
	h.Sum(r[:0])
	return r
}

// Errors returned by Step and New. Step leaves the state untouched when it
// returns an error.
var (
	// ErrInvalidEvent: the event is malformed or contradicts what is already
	// known (an epoch id reused for another commit, a wrong epoch number).
	ErrInvalidEvent = errors.New("commitorder: invalid event")
	// ErrInvalidConfig: Config.Validate failed.
	ErrInvalidConfig = errors.New("commitorder: invalid config")
	// ErrCorrupt: MarshalBinary output could not be decoded.
	ErrCorrupt = errors.New("commitorder: corrupt state")
	// ErrDone: the group has emitted Rejoin or Removed; the node must start
	// a new Group.
	ErrDone = errors.New("commitorder: group state machine finished")
)

// Config holds the tunables. The zero value of every field means "use the
// default"; see EnsureDefaults for the defaults and the package doc for why.
type Config struct {
	// Depth (W): an epoch is final once the canonical chain is Depth epochs
	// past it (and Grace has elapsed).
	Depth int
	// MaxAge (T): an epoch is final once it has been superseded for MaxAge.
	MaxAge time.Duration
	// Grace: no epoch is deleted sooner than Grace after its successor was
	// first seen, so application messages still in flight can be decrypted.
	Grace time.Duration
	// Delta: the avoidance delay step; a member waits position × Delta
	// before committing on a new epoch.
	Delta time.Duration
	// RateLimit and RateWindow: a member may author at most RateLimit of
	// the last RateWindow canonical commits (removals exempt).
	RateLimit  int
	RateWindow int
	// HardDepth bounds retention when depth and age finality are blocked
	// (an isolated member): past it, epochs are final regardless.
	HardDepth int
	// Retry: how long before an unanswered fetch or an unused proposal is
	// repeated.
	Retry time.Duration
	// MaxHeld bounds commits waiting for an unknown parent.
	MaxHeld int
	// History is how many final epochs are remembered (id and winning
	// child) to recognise, beyond the window, a branch that beat ours.
	History int

	// testingOnlyArrivalOrder is a test-only hook, never set outside the
	// explorer's negative control (explore_test.go): it breaks the fork
	// choice on purpose (the first-seen valid child wins, ties by the usual
	// key), so the test can show that the exhaustive explorer reports the
	// resulting divergence rather than passing silently.
	testingOnlyArrivalOrder bool
}

// Defaults; the package doc argues for each.
const (
	DefaultDepth      = 8
	DefaultMaxAge     = 2 * time.Minute
	DefaultGrace      = 5 * time.Second
	DefaultDelta      = 150 * time.Millisecond
	DefaultRateLimit  = 10
	DefaultRateWindow = 16
	DefaultHardDepth  = 64
	DefaultRetry      = 2 * time.Second
	DefaultMaxHeld    = 256
	DefaultHistory    = 64
)

// EnsureDefaults fills zero fields with the defaults.
func (c Config) EnsureDefaults() Config {
	if c.Depth == 0 {
		c.Depth = DefaultDepth
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Delta == 0 {
		c.Delta = DefaultDelta
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateWindow == 0 {
		c.RateWindow = DefaultRateWindow
	}
	if c.HardDepth == 0 {
		c.HardDepth = DefaultHardDepth
	}
	if c.Retry == 0 {
		c.Retry = DefaultRetry
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = DefaultMaxHeld
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	return c
}

// Validate reports whether the (defaulted) config is usable.
func (c Config) Validate() error {
	switch {
	case c.Depth < 1 || c.Depth > 1<<16:
		return fmt.Errorf("%w: depth %d", ErrInvalidConfig, c.Depth)
	case c.HardDepth < c.Depth:
		return fmt.Errorf("%w: hard depth %d below depth %d", ErrInvalidConfig, c.HardDepth, c.Depth)
	case c.Grace < 0 || c.MaxAge < c.Grace:
		return fmt.Errorf("%w: need 0 <= grace <= max age", ErrInvalidConfig)
	case c.Delta < 0 || c.Retry <= 0:
		return fmt.Errorf("%w: negative delta or non-positive retry", ErrInvalidConfig)
	case c.RateLimit < 1 || c.RateWindow < c.RateLimit || c.RateWindow > 255:
		return fmt.Errorf("%w: rate %d per %d", ErrInvalidConfig, c.RateLimit, c.RateWindow)
	case c.MaxHeld < 1 || c.History < 1:
		return fmt.Errorf("%w: max held and history must be positive", ErrInvalidConfig)
	}
	return nil
}

// Genesis describes the epoch a Group starts from: the group's creation, the
// epoch a Welcome put us in, or the epoch we rejoined by external Commit.
// A joiner fills in the creating commit (HasCommit) so that a better sibling
// of it can be recognised and the Welcome treated as orphaned.
type Genesis struct {
	Eid     EpochID
	Epoch   uint64
	Members []MemberID
	// Admins may add and remove; empty means every member may.
	Admins []MemberID

	HasCommit bool
	Parent    EpochID
	Class     Class
	Committer MemberID
	Cid       CommitID
	// External: the creating commit is our own external Commit (a rejoin,
	// RFC 9420, Section 12.4.3.2). The rate limit's window restarts at it
	// holding just that commit, as it does for everyone else who sees it
	// (CommitSeen.External): we know no commit before it.
	External bool
}

// ---- Events (inputs) ----

// Event is an input to Step.
type Event interface{ isEvent() }

// CommitSeen: a Commit was received (or created by us) and processed against
// its parent state. If the parent is unknown the node could not process it;
// it may still send CommitSeen (Eid, Valid, Members are then ignored) and the
// commit is held as in ParentMissing.
type CommitSeen struct {
	Parent    EpochID
	Eid       EpochID // epoch id of the resulting state
	Epoch     uint64  // epoch number of the resulting state (parent's + 1)
	Cid       CommitID
	Class     Class
	Committer MemberID // credential identity of the signer
	// Valid is the node's verdict by RFC 9420 (signature, proposals, path,
	// confirmation tag) against the parent state. Policy validity (members,
	// admins, rate limit, equivocation) is added here.
	Valid bool
	// Members and Admins of the resulting epoch.
	Members []MemberID
	Admins  []MemberID
	// External: an external Commit (a member's rejoin, RFC 9420, Section
	// 12.4.3.2). The rate limit's window restarts at it, holding just
	// this commit: the rejoiner starts from it knowing no commit before
	// (Genesis.External), and the limited bit must be read from commits
	// every member holds.
	External bool

	// For our own commits: the intents it carries and whether it has a
	// Welcome waiting for acceptance.
	Own     bool
	Intents []IntentID
	Welcome bool
}

// ParentMissing: a Commit arrived whose parent state we do not hold. The
// class and committer are as claimed by the framing (unverifiable without the
// parent); they are used only to decide, beyond the window, whether our own
// final branch lost.
type ParentMissing struct {
	Parent      EpochID
	ParentEpoch uint64
	Cid         CommitID
	Class       Class
	Committer   MemberID
	// Rank stands for RankOf(Parent, Committer) when Committer is empty:
	// the framing of an encrypted Commit names its committer's rank,
	// which only members who knew the committer can link to it.
	Rank Rank
}

// AppMessageSeen: an authenticated application message from Sender was
// decrypted in epoch Eid. It is evidence that Sender acts on Eid.
type AppMessageSeen struct {
	Eid    EpochID
	Epoch  uint64
	Sender MemberID
}

// TipSeen: a member's signed heartbeat names the epoch it is on and the
// newest epoch it holds final (Root; zero if not given).
type TipSeen struct {
	Member    MemberID
	Eid       EpochID
	Epoch     uint64
	Root      EpochID
	RootEpoch uint64
}

// CiphertextPending: an application message arrived for epoch Eid (number
// Epoch, both from the unauthenticated framing) that could not be decrypted
// yet: we do not hold that state, or we do and the node holds the message
// for a retry. It is no evidence (anyone can send it): for an epoch we do
// not hold it prompts a range fetch (rate-limited by Retry) and, as a
// bounded hint that is not serialised, holds depth finality back until the
// epoch is fetched or the root passes it. A message on a branch we never
// heard of is often the first sign of one (simulator seeds 3942, 3811: the
// commit was lost to a partition, the messages on it were not). Until a
// message in that epoch is read (AppMessageSeen), the hint also holds
// witness and depth finality of any epoch whose finalising would delete
// its keys (issue 17). Forged hints can slow finality down to age finality
// at worst.
type CiphertextPending struct {
	Eid   EpochID
	Epoch uint64
}

// Tick: time passed. The state machine has no clock; this is its only
// source of time.
type Tick struct{ Now time.Time }

// IntentQueued: the user asked for a change we are allowed to commit.
type IntentQueued struct {
	ID    IntentID
	Class Class
}

// OutboxAdded: we sent application message ID in epoch Eid; the node keeps
// its plaintext until OutboxDone or Surface says otherwise.
type OutboxAdded struct {
	ID  MsgID
	Eid EpochID
}

func (CommitSeen) isEvent()        {}
func (ParentMissing) isEvent()     {}
func (AppMessageSeen) isEvent()    {}
func (TipSeen) isEvent()           {}
func (Tick) isEvent()              {}
func (CiphertextPending) isEvent() {}
func (IntentQueued) isEvent()      {}
func (OutboxAdded) isEvent()       {}

// ---- Effects (outputs), in the order the node must carry them out ----

// Effect is an output of Step.
type Effect interface{ isEffect() }

// RollbackTo: freeze sending and reload the retained state Eid (the fork
// point); Apply effects follow.
type RollbackTo struct{ Eid EpochID }

// Apply: make the state Eid (from Parent by Commit Cid) current.
type Apply struct {
	Parent EpochID
	Cid    CommitID
	Eid    EpochID
}

// Orphaned: these epochs (old branch, fork point excluded, nearest first)
// are no longer canonical; tell the UI which changes were undone. Their
// states stay until DropBranch, to decrypt what was sent on them.
type Orphaned struct{ Eids []EpochID }

// Resend: re-encrypt these outbox entries in epoch To (the canonical head)
// under the same message ids.
type Resend struct {
	IDs []MsgID
	To  EpochID
}

// Surface: these outbox entries were sent on a branch that lost and may not
// be re-sent automatically (the canonical epoch has members the orphaned one
// did not have); show them to the user.
type Surface struct{ IDs []MsgID }

// OutboxDone: these entries are in a settled canonical epoch; the node may
// delete their plaintext.
type OutboxDone struct{ IDs []MsgID }

// FinaliseEpoch: Eid is final; delete its state and secrets.
type FinaliseEpoch struct{ Eid EpochID }

// DropBranch: delete the states of these orphaned epochs; their fork point
// is final so they can never become canonical.
type DropBranch struct{ Eids []EpochID }

// ProposeCommit: our avoidance delay on Parent has elapsed; create a Commit
// carrying these intents and report it with CommitSeen{Own: true}.
type ProposeCommit struct {
	Parent  EpochID
	Intents []IntentID
}

// CommitSettled: our Commit Cid is canonical and final; its intents are done.
type CommitSettled struct {
	Cid     CommitID
	Intents []IntentID
}

// CommitDiscarded: our Commit Cid lost for good; discard it (and its
// Welcome). Its intents are back in the queue.
type CommitDiscarded struct {
	Cid     CommitID
	Intents []IntentID
}

// SendWelcome: the Commit Cid is accepted (its epoch is final); its Welcome
// may go out now (RFC 9420, Section 14).
type SendWelcome struct{ Cid CommitID }

// FetchParent: ask peers for the Commit that created Eid.
type FetchParent struct{ Eid EpochID }

// FetchRange: we are behind; ask peers for canonical Commits after the
// first of these epochs they know (newest first: head, retained chain,
// remembered final epochs).
//
// Peers names members seen acting on epochs we do not hold (they have
// them), at most three, sorted; ask them first, then anyone (simulator seed
// 37642: asking random peers missed the only member holding the winning
// commit for six seconds, and age finality settled the losing one).
type FetchRange struct {
	Locator []EpochID
	Peers   []MemberID
}

// Retry: the parent of these held Commits is now known; feed them again.
type Retry struct{ Cids []CommitID }

// Rejoin: our last known state is final elsewhere on a branch that lost:
// rejoin by external Commit (RFC 9420, Section 12.4.3.2). Outbox and Intents
// are handed back to the node (re-send after rejoining, same membership
// rule). The Group is finished.
type Rejoin struct {
	Outbox  []MsgID
	Intents []IntentID
	// Target is an epoch other members hold final on the winning branch:
	// the GroupInfo to rejoin from must descend from it (cross-check it
	// with at least two of Vouchers).
	Target   EpochID
	Vouchers []MemberID
	// ForkEpoch: our branch left the group's chain after this epoch number.
	// What we sent in later epochs (settled for us, lost for the group) is
	// to be re-sent from the node's own view, same membership rule.
	ForkEpoch uint64
}

// Removed: our removal is final. The Group is finished. Outbox entries not
// yet settled are handed back (they were sent on branches that lost).
type Removed struct{ Outbox []MsgID }

func (RollbackTo) isEffect()      {}
func (Apply) isEffect()           {}
func (Orphaned) isEffect()        {}
func (Resend) isEffect()          {}
func (Surface) isEffect()         {}
func (OutboxDone) isEffect()      {}
func (FinaliseEpoch) isEffect()   {}
func (DropBranch) isEffect()      {}
func (ProposeCommit) isEffect()   {}
func (CommitSettled) isEffect()   {}
func (CommitDiscarded) isEffect() {}
func (SendWelcome) isEffect()     {}
func (FetchParent) isEffect()     {}
func (FetchRange) isEffect()      {}
func (Retry) isEffect()           {}
func (Rejoin) isEffect()          {}
func (Removed) isEffect()         {}

// tuple is the fork-choice key: a commit over its committer's rate limit
// (validity.go) loses to every sibling that is not, then class, rank, cid.
type tuple struct {
	limited bool
	class   Class
	rank    Rank
	cid     CommitID
}

func (a tuple) less(b tuple) bool {
	if a.limited != b.limited {
		return !a.limited
	}
	if a.class != b.class {
		return a.class < b.class
	}
	if c := bytes.Compare(a.rank[:], b.rank[:]); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.cid[:], b.cid[:]) < 0
}
