// Package node is Grove's application core: it wires mls (the RFC 9420 state
// machine), commitorder (which concurrent Commit is canonical), store (the
// device's Pebble database) and p2p (gossip, streams, peers) into a
// serverless group messenger, and implements the local API (api.Service)
// that the grove CLI and any UI use.
//
// Shape (ARCHITECTURE.md, sections 1, 3 and 6): one actor goroutine per
// group owns that group's MLS states (one per retained epoch, keyed by epoch
// id), its commitorder state machine and its outbox; everything else talks
// to it through closures run on the actor. The send path is outbox first,
// then encrypt in the canonical epoch (persisting the consumed sending key
// before anything leaves), log, publish; the receive path is validator,
// actor, dedup by hash, decrypt with the matching retained epoch,
// commitorder for Commits, view and search index, events, and only then
// the ciphertext log: the log doubles as the "processed" marker after a
// restart, so a crash in between must leave the message to be processed
// again (and deduplicated by its application id) rather than logged but
// never shown. An outbox entry is cleared outboxLinger after its epoch is
// final (a publish is only queued, not on the wire, when it returns), unless
// it was published while gossip reached no member (no mesh yet) or replayed
// after a restart: then it is kept and re-sent once the mesh forms and a
// member's tip shows our head is current (unheard.go), since finality here
// says nothing about who received it.
//
// Protocols served: /grove/join/1 (invite redemption; the Welcome is returned
// only once the Add's epoch is final) and /grove/sync/1 (anti-entropy: the
// log since an epoch, served only to peers whose credential is in the group,
// and to a member removed while away only its own epochs, up to the Commit
// that removed it, so that it learns of its removal: removalsync.go).
// /grove/keypackage/1 is deliberately not served: a KeyPackage reaches a
// group only inside its owner's own join request (node.go, Start).
//
// Policy (read from the group state): the creator is admin; admins add and
// remove; any member may invite (a non-admin's invite becomes a join
// request an admin commits, joinrequest.go), leave and rotate its keys; the
// last admin to leave first hands the role to the longest-standing
// remaining member, and a device that left keeps the group, unlisted and
// still serving it, until it sees its removal (leave.go). A join that timed out is retried with the
// same code (join.go, checkAdd). Unread counts are kept per group and
// survive restarts (unread.go).
// Members gossip signed tips (epoch, epoch id, addresses) on the group
// topic so that a member that is behind notices and catches up. A member whose branch lost
// beyond the retention window (a split brain whose halves both finalised)
// rejoins by an external Commit that replaces its own leaf (RFC 9420,
// Section 12.4.3.2), from a GroupInfo two members agree on, and re-sends
// what it wrote on the lost branch.
//
// What the network sees (issue 19; envelope.go, epochseal.go). Every
// gossip payload is an envelope: XChaCha20-Poly1305 under a key derived
// from the group secret (32 random bytes fixed at creation, carried in a
// GroupContext extension, so joiners get it inside their Welcome), padded
// to 256, 512, ... 64 KiB bytes, then to a multiple of 64 KiB. Inside,
// each MLS message and tip is sealed again under an exporter key of its
// epoch (a Commit: of its parent); Commits are MLS PrivateMessages. A
// rejoin's external Commit (a PublicMessage: RFC 9420 allows no other) is
// sealed under the key of the epoch it joins from, which the members that
// serve the GroupInfo send with it. The topic
// name and the DHT rendezvous key are hashes of a key derived from the
// group secret, not of the group id. So:
//
//   - An outsider (anyone without the group secret, including one who has
//     the group id from an invite code or the topic name from a member's
//     GossipSub subscription announcements, which every peer connected to
//     a member receives) learns: the peer ids and IP addresses of the
//     members it connects to or finds under the rendezvous key, that they
//     share a topic (so which devices are in one group, and how many of
//     them it sees), when each payload was sent or forwarded and its padded
//     size. It learns no name, credential, signature key, member list or
//     count from the payloads, no epoch number or id, no group id, no
//     text, and cannot tell a chat message from a Commit or a tip except
//     by size and rhythm (tips come every TipInterval). What it publishes
//     is rejected by the validator before it is forwarded.
//   - A removed member keeps the group secret: it can compute the topic
//     name, subscribe and open envelopes, so it learns what an outsider
//     does and no more: it opens no seal of an epoch after the one it was
//     removed from, so it reads no later tip, Commit (a rejoin's
//     included), framing, epoch number or id, nor can it tell them apart
//     but by size and rhythm. /grove/sync/1 serves it only up to its removal
//     (removalsync.go). Members accept its envelopes as far as the
//     validator goes: it can fill the bounded buffer of unopened seals and
//     make members ask for syncs (rate-limited), no more.
//   - A relay (libp2p circuit relay v2) carries Noise-encrypted streams: it
//     learns the two peer ids it connects, when and how many bytes, and
//     nothing of the topic or the payloads.
//   - A member reads everything of the epochs it is in, and tips of the
//     epochs it held (a handful of sealing keys, never message keys, are
//     kept after an epoch's state is deleted).
//
// The package is not a wire-level library: the formats in wire.go are
// Grove's own and versioned; it is not a UI, and it never logs plaintext.
package node
