package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"grove/account"
	"grove/mls"
	"grove/p2p"
)

// Clock is the node's source of time. commitorder takes time as a value; the
// node reads it here so tests can substitute a fake.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Defaults of Config.
const (
	DefaultTipInterval    = 5 * time.Second
	DefaultInviteExpiry   = 24 * time.Hour
	DefaultSyncFanout     = 3
	DefaultJoinTimeout    = 2 * time.Minute
	DefaultPersistEvery   = time.Second
	DefaultCipherSuite    = mls.CipherSuite(0x0001) // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	DefaultCommitRate     = 8
	DefaultPurgeEvery     = 5 * time.Second
	DefaultRotateEvery    = 24 * time.Hour
	defaultLogPage        = 50
	defaultHeldMessages   = 4096
	defaultSubscriberBuff = 256
)

// Config configures a Node. The zero value of every field except Home is a
// usable default.
type Config struct {
	// Home is the device's data directory: the Pebble database (db/) and
	// the libp2p key (peer.key). Required.
	Home string
	// Name is the display name bound into this device's credentials. It
	// is required on first start and then remembered; a different non-empty
	// Name later is an error (credentials already carry the old one).
	Name string

	// DeviceName names this device within its account ("laptop"); it goes
	// into the device's certificate at the first start. Default "device".
	DeviceName string
	// Link, on the first start of a fresh home, is a link code from
	// another device of the account (account.LinkCode): the device joins
	// that account and its groups instead of making an account of its
	// own. Name may then be empty.
	Link string
	// LinkProgress, if set, is told how much of the account's history
	// a link (Link) has received: done of total messages.
	LinkProgress func(done, total int)
	// Restore, on the first start of a fresh home, makes it a new device
	// of the backup's account and restores its history.
	Restore *account.Backup

	// StoreKey encrypts the database at rest (store.Options.Key); nil
	// keeps it in the clear.
	StoreKey []byte

	// P2P configures the libp2p host (listen addresses, bootstrap peers,
	// mDNS, limits). IdentityFile and PeerstoreFile default to files in Home.
	P2P p2p.Config
	// Network, if set, is used instead of a libp2p host (tests use a
	// p2p.MemNode). The node does not close it.
	Network p2p.Network

	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// CipherSuite for new groups and key packages. Default 0x0001.
	CipherSuite mls.CipherSuite

	// CommitDelta is commitorder's avoidance delay step (position × delta
	// before committing). Default commitorder.DefaultDelta.
	CommitDelta time.Duration
	// FinalityDepth (W) and FinalityAge (T): an epoch is final once the
	// chain is W epochs past it or it has been superseded for T. Defaults
	// commitorder.DefaultDepth and commitorder.DefaultMaxAge.
	FinalityDepth int
	FinalityAge   time.Duration
	// FinalityGrace: no epoch is deleted sooner than this after its
	// successor was seen. Default commitorder.DefaultGrace, capped at
	// FinalityAge.
	FinalityGrace time.Duration
	// CommitRate is the per-member commit rate limit written into the
	// policy of groups this device creates. Default DefaultCommitRate.
	CommitRate int
	// TipInterval is how often a member gossips its signed tip. Default
	// DefaultTipInterval.
	TipInterval time.Duration
	// InviteExpiry is how long an invite code stays valid. Default
	// DefaultInviteExpiry.
	InviteExpiry time.Duration
	// SyncFanout is how many members a node that is behind asks at once.
	// Default DefaultSyncFanout.
	SyncFanout int
	// PersistEvery bounds how long a received message's key consumption
	// stays unpersisted (own sends are persisted at once). Default
	// DefaultPersistEvery.
	PersistEvery time.Duration
	// PurgeEvery is the least time between two purges of deleted secrets
	// and plaintext from the database directory (store.DB.PurgeDeleted:
	// one flush and a compaction per deleted range). Finalised epochs,
	// left groups and the first start after a restart request a purge;
	// requests within PurgeEvery of the last purge are served together at
	// its end, so a finalised epoch's secrets stay on disk for at most
	// about PurgeEvery while epochs keep finalising. Default
	// DefaultPurgeEvery.
	PurgeEvery time.Duration
	// RotateEvery is how often this device updates its own leaf in each
	// group (a Commit with a fresh path, what `grove rotate` does), with
	// up to an eighth of it as random jitter so that members who joined
	// together do not all commit at once; a negative value turns it off.
	// Default DefaultRotateEvery (24h), for two reasons. Post-compromise
	// security: a stolen leaf key decrypts what is sent to this device
	// until the device updates it, so updates bound that window to about
	// a day rather than to whenever someone happens to commit. Joins: a
	// leaf that came from a KeyPackage carries its lifetime (90 days,
	// see newKeyPackage), and a leaf updated by a Commit carries none, so
	// regular updates keep expired lifetimes out of the tree a new member
	// checks. The cost is one Commit per member and day (an O(log n) path
	// each), well under the policy's commit rate limit.
	RotateEvery time.Duration
}

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = errors.New("node: invalid config")

// Validate reports whether the config is usable (after defaults).
func (c *Config) Validate() error {
	if c.Home == "" {
		return fmt.Errorf("%w: Home is required", ErrInvalidConfig)
	}
	if c.Name != "" {
		if err := validName(c.Name); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if c.DeviceName != "" {
		if err := validDeviceName(c.DeviceName); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if c.CommitDelta < 0 || c.FinalityAge < 0 || c.FinalityGrace < 0 || c.TipInterval < 0 ||
		c.InviteExpiry < 0 || c.SyncFanout < 0 || c.FinalityDepth < 0 || c.PersistEvery < 0 || c.PurgeEvery < 0 {
		return fmt.Errorf("%w: negative durations or counts", ErrInvalidConfig)
	}
	if c.CommitRate < 0 || c.CommitRate > 255 {
		return fmt.Errorf("%w: commit rate %d", ErrInvalidConfig, c.CommitRate)
	}
	if c.CipherSuite != 0 {
		if _, err := c.CipherSuite.Suite(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CipherSuite == 0 {
		c.CipherSuite = DefaultCipherSuite
	}
	if c.CommitRate == 0 {
		c.CommitRate = DefaultCommitRate
	}
	if c.TipInterval == 0 {
		c.TipInterval = DefaultTipInterval
	}
	if c.InviteExpiry == 0 {
		c.InviteExpiry = DefaultInviteExpiry
	}
	if c.SyncFanout == 0 {
		c.SyncFanout = DefaultSyncFanout
	}
	if c.PersistEvery == 0 {
		c.PersistEvery = DefaultPersistEvery
	}
	if c.PurgeEvery == 0 {
		c.PurgeEvery = DefaultPurgeEvery
	}
	if c.RotateEvery == 0 {
		c.RotateEvery = DefaultRotateEvery
	}
	return c
}
