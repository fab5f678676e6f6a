// Package account is Grove's notion of a person: an account key that
// certifies each of the person's devices, signed revocations of lost
// devices, one-time link codes that bring the account to a new device,
// and age-encrypted backups. It is pure: it takes bytes, keys, time as a
// value and an io.Reader for randomness, and does no network or disk IO
// (node does that). It knows nothing of MLS groups beyond the device's
// MLS signature key, which it certifies as opaque bytes.
//
// # Model
//
// An account is an Ed25519 key pair and a person's name. Each device keeps
// its own MLS signature and HPKE keys and its own libp2p peer id, and is a
// leaf of its own in every group (never a shared leaf: MLS forward
// secrecy and post-compromise security are per leaf, so one device's
// compromise heals by removing that leaf). A device certificate is the
// account's signature over (account key, person's name, device name,
// device MLS signature key, device peer id, creation time); it travels
// inside the device's MLS BasicCredential identity (node's identity
// version 2), so any member checks, from the group state alone, that two
// leaves belong to the same person, and shows them as "alice (laptop)"
// and "alice (phone)".
//
// # Compared with others
//
//   - Signal linked devices: the primary scans a QR code that carries an
//     ephemeral key; the identity key is copied to the linked device, and
//     every device has its own session keys. We copy the account key too
//     (any device can link and revoke, which the lost-primary case needs),
//     but carry the code as text and authenticate the channel with a
//     one-time secret over libp2p's Noise channel instead of a QR key.
//   - Matrix cross-signing: a master key signs a self-signing key that
//     signs devices, so the master can stay offline. That buys rotation of
//     the signing key without re-verifying the person; we have one key
//     and say below how it is rotated. Matrix devices are per-room
//     senders of Megolm sessions; ours are MLS leaves, which is stronger:
//     a removed device gets no new epoch secret at all.
//   - Wire device certificates (MLS with x509 credentials issued by an
//     ACME-like server bound to the team's identity provider): the same
//     shape, a certified device per leaf, but the certifier is the
//     person's own key because Grove has no server.
//   - IETF MLS multi-device drafts (draft-ietf-mls-... "virtual clients"
//     and the "multiple devices" discussion in RFC 9750 Section 8.3.6):
//     either each device is a leaf (simple, costs tree width) or the
//     devices share one virtual leaf through an inner group (narrow tree,
//     complex, and one device's compromise is everyone's until the inner
//     group heals). We choose one leaf per device.
//
// # Threats
//
//   - A stolen device holds the account key. Any sibling revokes it: the
//     revocation (account-signed, names the device's MLS key and peer id)
//     goes to every member, and the sibling commits the removal of its
//     leaves in every group. The thief can race by revoking the siblings;
//     the person then rotates the account key (a new key, certified by the
//     old one together with the list of devices it keeps; members that see
//     both keep the newer chain) — described, not built yet. Until then a
//     stolen, unlocked device with the key is the account's equal.
//   - A stolen backup is an age file under an scrypt passphrase: without
//     the passphrase it reveals its size only. It holds the account key
//     and history, never MLS epoch secrets, so it cannot decrypt traffic;
//     with the passphrase it yields what the person could read, and the
//     power to link new devices (revoke and rotate then).
//   - A malicious member cannot pass a leaf as another person's device:
//     the certificate must verify under the account key it names, name
//     the leaf's own signature key and peer id, and its account must be
//     the one the other leaves show; a certificate signed by another
//     account is a different person, shown so. It cannot revoke another
//     person's device: revocations verify under the revoked device's own
//     account key. A replayed link code is refused: the code is consumed
//     at its first use, right or wrong, and expires.
//
// # Policies
//
//   - Who commits the Add of a sibling device: the sibling that linked it
//     (it is a member of every group of the account) where it is an admin,
//     else, as for any join, an admin. A member that is neither may not; a
//     device certificate alone is not a licence to join, except for a
//     device of an admin's account: it may add itself by external commit
//     (the restored home of a lone admin), since its account could add it. Admin rights belong to the account: a device
//     certified by the same account as an admin listed in the group policy
//     is an admin too (node reads this from the group state, so every
//     member judges commits alike).
//   - Revocation propagates in two ways: the removal commits in every
//     group (MLS: the revoked leaf receives no later epoch secret, the
//     deterministic part every member agrees on), and the signed
//     revocation record, which members keep and consult for what is not
//     fork choice: refusing to add the device again, to serve it history
//     or a GroupInfo (so it cannot rejoin by external commit), to link from
//     it. Commit validity never reads revocations (members learn them at
//     different times, and validity must be the same for all), so a
//     revoked device that still holds the account key, and any device it
//     certifies anew, is only kept out by members' refusals until the
//     account key is rotated.
package account
