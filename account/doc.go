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
//     the person then rotates the account key (Rotation, below). Until then
//     a stolen, unlocked device with the key is the account's equal.
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
//
// # Rotating the account key
//
// When the account key itself may have leaked (a stolen device that held
// it, a stolen backup whose passphrase may be known), a device of the
// account runs grove account rotate:
//
//  0. The person revokes the lost devices first: a rotation keeps every
//     device that is not revoked, and hands it the new key.
//  1. It makes a new key and a Rotation: old key, new key, a sequence
//     number (1 for the first rotation away from the account's original
//     key, one more each time), and the devices the account keeps (the
//     non-revoked ones, by MLS signature key and peer id). Both keys sign
//     it: the old to show the account's holder made it, the new so that
//     nobody can claim another's key as theirs.
//  2. The kept devices keep their leaves and credentials: a device's MLS
//     credential identity is what every member, every stored message and
//     commitorder name it by, so it does not change. Their certificates
//     under the old key stay valid because the rotation, signed by the new
//     key, lists them: that list is the re-certification. The device list
//     each device keeps is certified again under the new key, and every
//     certificate made from then on (a linked device, a restored home) is
//     signed by it.
//  3. How peers learn it: the rotation goes into the group policy (the
//     GroupContext extension, node/identity.go) of every group with a
//     device of the account, committed by an admin (the rotating device
//     where it is one; else an admin that is handed the rotation commits
//     it), so every member, and every later joiner through its Welcome,
//     reads the same chain from the group state. It is also handed to
//     every peer the device meets over /grove/account-rotate/1, with the
//     new private key for the account's kept devices only (the channel is
//     libp2p's Noise, authenticated by the peer id the device list
//     certifies).
//  4. From the commit on, members refuse a device certificate signed by
//     the old key for a device the rotation does not keep (ErrOldKey):
//     deterministically in commit validity (a Commit adding such a leaf,
//     or an admin-account external join with it, is invalid for every
//     member, since all read the rotation from the parent epoch), and
//     locally where the decision is the member's (serving a GroupInfo,
//     adding a KeyPackage).
//
// What a stolen old key can still do: sign a competing rotation to a key
// of the thief's. The tie rule is first seen wins: a member, and a
// group's policy, that holds a rotation away from a key refuses any other
// rotation away from it (ErrCompetingRotation), and each next rotation
// must continue the sequence. The person's rotation reaches every group
// of the account within a commit, so the thief can only win where the
// person's rotation has not arrived yet (a group the person is not in,
// or a peer that was offline); the person sees that in the groups it
// shares with them. A device revoked before the rotation is not kept: it
// gets neither the new key nor standing for its certificate, so its old
// key certifies nothing any member accepts.
package account
