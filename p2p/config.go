package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults applied by Config for zero-valued fields.
const (
	DefaultConnLowWater        = 32
	DefaultConnHighWater       = 96
	DefaultConnGracePeriod     = 30 * time.Second
	DefaultMaxMemory           = 256 << 20 // bytes, for the resource manager
	DefaultMaxFileDescriptors  = 512
	DefaultMaxMessageSize      = 256 << 10 // bytes, one gossip payload
	DefaultMaxFrameSize        = 1 << 20   // bytes, one stream frame
	DefaultStreamTimeout       = 30 * time.Second
	DefaultSubscriptionBuffer  = 1024
	DefaultPeerMessageRate     = 200 // new messages per second one neighbour may send us on a topic
	DefaultPeerMessageBurst    = 2000
	DefaultHeartbeatInterval   = time.Second
	DefaultRendezvousInterval  = 5 * time.Minute
	DefaultPeerstoreSaveEvery  = 5 * time.Minute
	DefaultMaxPersistedPeers   = 512
	DefaultKnownPeerDialTimout = 10 * time.Second
)

// Config configures a Host. The zero value of every field except Listen is
// usable; Validate reports what is wrong, and Host applies the defaults.
type Config struct {
	// IdentityFile is the path of the Ed25519 private key. The key is created
	// with mode 0600 if the file does not exist. Empty means an ephemeral
	// identity that is lost on Close (tests only).
	IdentityFile string
	// IdentityKey, if set (32 bytes: the store key), seals IdentityFile
	// with AES-256-GCM; a clear file is sealed when first read.
	IdentityKey []byte

	// Listen lists the multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/4001 and
	// /ip4/0.0.0.0/udp/4001/quic-v1. There is no default: the caller decides
	// which interfaces are exposed.
	Listen []string

	// BootstrapPeers are /p2p multiaddrs of DHT bootstrap peers. Only these are
	// used; an empty list means no bootstrap at all (never the IPFS list).
	BootstrapPeers []string

	// EnableDHT runs the Kademlia DHT (protocol prefix /grove) used for group
	// rendezvous. Default false.
	EnableDHT bool
	// DHTServer makes this host answer DHT queries (a server node). Default
	// false: auto mode, which becomes a server only when publicly reachable.
	DHTServer bool
	// RendezvousInterval is how often a subscribed group is re-advertised
	// and searched in the DHT. Default DefaultRendezvousInterval.
	RendezvousInterval time.Duration

	// EnableMDNS announces and discovers peers on the local network.
	// Default false.
	EnableMDNS bool
	// MDNSServiceName is the mDNS service name. Default "grove".
	MDNSServiceName string

	// EnableRelayService offers circuit relay v2 to other peers. Default false.
	EnableRelayService bool
	// StaticRelays are /p2p multiaddrs of relays this host reserves a slot
	// on when it is not publicly reachable.
	StaticRelays []string
	// EnableHolePunching runs DCUtR to upgrade relayed connections.
	EnableHolePunching bool
	// EnableAutoNAT answers AutoNAT dial-back requests for other peers.
	// The host always runs the AutoNAT client to learn its own reachability.
	// Ignored when reachability is forced (see host.go for why).
	EnableAutoNAT bool
	// ForcePrivateReachability tells the host it is behind a NAT without
	// waiting for AutoNAT, so it uses StaticRelays at once.
	ForcePrivateReachability bool
	// ForcePublicReachability tells the host it is publicly reachable
	// without waiting for AutoNAT. libp2p runs the relay service only on a
	// public host, so a relay on a known-public address (or on a LAN
	// segment acting as one) sets this.
	ForcePublicReachability bool
	// NAT port mapping (UPnP, NAT-PMP) is deliberately not configurable: Grove
	// never opens ports on the user's router.

	// PeerstoreFile persists the addresses of known peers, which are dialed
	// again on restart. Empty means no persistence.
	PeerstoreFile string
	// PeerstoreSaveInterval is how often the peer file is rewritten while
	// running (it is also written on Close). Default DefaultPeerstoreSaveEvery.
	PeerstoreSaveInterval time.Duration
	// MaxPersistedPeers bounds the peer file. Default DefaultMaxPersistedPeers.
	MaxPersistedPeers int

	// ConnLowWater and ConnHighWater bound the connection manager.
	// Defaults DefaultConnLowWater and DefaultConnHighWater.
	ConnLowWater, ConnHighWater int
	// ConnGracePeriod protects new connections from trimming.
	// Default DefaultConnGracePeriod.
	ConnGracePeriod time.Duration

	// MaxMemory and MaxFileDescriptors size the resource manager.
	// Defaults DefaultMaxMemory and DefaultMaxFileDescriptors.
	MaxMemory          int64
	MaxFileDescriptors int

	// MaxMessageSize is the largest gossip payload accepted; larger ones are
	// rejected before the node's validator runs. Default DefaultMaxMessageSize.
	MaxMessageSize int
	// PeerMessageRate and PeerMessageBurst bound how many new messages per
	// second one neighbour may send us on a topic, its own and those it
	// forwards (gossip carries no author; see startPubSub); excess messages
	// are rejected, which costs that neighbour peer score. A neighbour may
	// forward the whole group's traffic, and a message rejected here is
	// not taken from another neighbour either (GossipSub has marked it
	// seen), so the limit must be well above what the whole group sends,
	// bursts included: it is a backstop against a flooding neighbour,
	// which peer scoring then graylists. Defaults DefaultPeerMessageRate
	// and DefaultPeerMessageBurst (200/s, 2,000: a group's burst of a
	// thousand messages passes through one neighbour).
	PeerMessageRate  float64
	PeerMessageBurst int
	// SubscriptionBuffer is how many delivered messages may wait for the
	// application per subscription. Default DefaultSubscriptionBuffer.
	SubscriptionBuffer int
	// HeartbeatInterval is the GossipSub heartbeat. Default
	// DefaultHeartbeatInterval; tests shorten it.
	HeartbeatInterval time.Duration

	// MaxFrameSize bounds one stream frame. Default DefaultMaxFrameSize.
	MaxFrameSize int
	// StreamTimeout bounds each frame read or write and the whole of a
	// Request. Default DefaultStreamTimeout.
	StreamTimeout time.Duration

	// Logger receives diagnostics. Default slog.Default().
	Logger *slog.Logger

	// ConnectionGater, if set, may refuse any dial or connection (a
	// test cuts links at the transport with it). Default none.
	ConnectionGater connmgr.ConnectionGater
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("p2p: invalid config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate reports whether the configuration can start a Host.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		return configErr("no listen addresses")
	}
	for _, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return configErr("listen address %q: %v", s, err)
		}
	}
	return c.validateRest()
}

// validateRest checks everything but Listen; MemNetwork uses it too.
func (c *Config) validateRest() error {
	for _, s := range c.BootstrapPeers {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return configErr("bootstrap peer %q: %v", s, err)
		}
	}
	for _, s := range c.StaticRelays {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return configErr("static relay %q: %v", s, err)
		}
	}
	if c.ForcePrivateReachability && c.ForcePublicReachability {
		return configErr("reachability forced both private and public")
	}
	if c.ConnLowWater < 0 || c.ConnHighWater < 0 {
		return configErr("negative connection water mark")
	}
	low, high := c.ConnLowWater, c.ConnHighWater
	if low == 0 {
		low = DefaultConnLowWater
	}
	if high == 0 {
		high = DefaultConnHighWater
	}
	if low > high {
		return configErr("connection low water %d above high water %d", low, high)
	}
	for name, v := range map[string]int64{
		"MaxMemory": c.MaxMemory, "MaxFileDescriptors": int64(c.MaxFileDescriptors),
		"MaxMessageSize": int64(c.MaxMessageSize), "PeerMessageBurst": int64(c.PeerMessageBurst),
		"SubscriptionBuffer": int64(c.SubscriptionBuffer), "MaxFrameSize": int64(c.MaxFrameSize),
		"MaxPersistedPeers": int64(c.MaxPersistedPeers),
	} {
		if v < 0 {
			return configErr("%s is negative", name)
		}
	}
	if c.PeerMessageRate < 0 {
		return configErr("PeerMessageRate is negative")
	}
	for name, d := range map[string]time.Duration{
		"RendezvousInterval": c.RendezvousInterval, "PeerstoreSaveInterval": c.PeerstoreSaveInterval,
		"ConnGracePeriod": c.ConnGracePeriod, "HeartbeatInterval": c.HeartbeatInterval,
		"StreamTimeout": c.StreamTimeout,
	} {
		if d < 0 {
			return configErr("%s is negative", name)
		}
	}
	if c.HeartbeatInterval != 0 && c.HeartbeatInterval < 10*time.Millisecond {
		return configErr("HeartbeatInterval below 10ms")
	}
	if c.MaxFrameSize > MaxFrameSizeLimit {
		return configErr("MaxFrameSize %d above %d", c.MaxFrameSize, MaxFrameSizeLimit)
	}
	return nil
}

// withDefaults returns a copy with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&c.ConnLowWater, DefaultConnLowWater)
	setInt(&c.ConnHighWater, DefaultConnHighWater)
	setInt(&c.MaxFileDescriptors, DefaultMaxFileDescriptors)
	setInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	setInt(&c.PeerMessageBurst, DefaultPeerMessageBurst)
	setInt(&c.SubscriptionBuffer, DefaultSubscriptionBuffer)
	setInt(&c.MaxFrameSize, DefaultMaxFrameSize)
	setInt(&c.MaxPersistedPeers, DefaultMaxPersistedPeers)
	setDur(&c.RendezvousInterval, DefaultRendezvousInterval)
	setDur(&c.PeerstoreSaveInterval, DefaultPeerstoreSaveEvery)
	setDur(&c.ConnGracePeriod, DefaultConnGracePeriod)
	setDur(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	setDur(&c.StreamTimeout, DefaultStreamTimeout)
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.PeerMessageRate == 0 {
		c.PeerMessageRate = DefaultPeerMessageRate
	}
	if c.MDNSServiceName == "" {
		c.MDNSServiceName = "grove"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
