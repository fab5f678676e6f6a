// Package p2p is Grove's network layer: a libp2p host per device that moves
// opaque bytes between the members of a group.
//
// It provides:
//
//   - a persistent Ed25519 identity (the peer ID a member's MLS credential is
//     bound to), created on first start and stored with file mode 0600;
//   - a host with TCP and QUIC, Noise and TLS, yamux, a connection manager and
//     resource-manager limits sized for a laptop or a phone;
//   - discovery: mDNS on the LAN (off unless enabled), a Kademlia DHT that uses
//     only the bootstrap peers given in Config (never the public IPFS list),
//     group rendezvous through a DHT key derived from the group id, circuit
//     relay v2, AutoNAT and DCUtR hole punching, and known peers persisted
//     across restarts;
//   - one GossipSub topic per group, named from a hash of the group id so that
//     outsiders cannot guess it, with message id = hash of the payload and
//     no libp2p signature, author or sequence number on messages (every
//     payload is authenticated by MLS, which the node checks), a size
//     check, a rate limit per forwarding peer and a node-supplied
//     validator that run before a message is forwarded, and peer scoring
//     that penalises the peers that forward invalid payloads and floods;
//     backoffs sized for small groups, and a Close that looks like a
//     disconnect rather than a leave, so that a device that restarts is back
//     in its group's mesh at the next heartbeat;
//   - connections that heal: the node names, per group, the peers it
//     needs ([Keeper]: Host.KeepConnected, Host.KeepStatus), and the host
//     redials each one that is not connected, with capped exponential
//     backoff and jitter, at once when the local network changes or a new
//     address for the peer is learned; the peer file is written when a
//     peer is identified, so peers that dialed us are remembered too; mDNS
//     is restarted periodically and on network changes;
//   - a liveness probe of the older connection to a peer that connects
//     again, so a peer that crashed and came back is not written to
//     through a dead connection, and a renewal of the connection to a
//     connected peer GossipSub has stopped writing to (it gives up after a
//     peer's fourth restart in 10 minutes);
//   - the stream protocols /grove/join/1, /grove/sync/1 and
//     /grove/keypackage/1 with uvarint length-delimited framing, size limits,
//     deadlines, a request/response primitive and a streaming primitive whose
//     back-pressure comes from the transport's flow control.
//
// The node uses the small [Network] interface. [Host] implements it on real
// libp2p; [MemNetwork] implements it in memory for fast tests of the layers
// above.
//
// What this package is not for: it does not look inside payloads. MLS
// parsing, group binding of messages, membership checks and the contents of
// the stream protocols belong to the node, which supplies them as validators
// and handlers.
package p2p
