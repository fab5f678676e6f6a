// Package store keeps everything a Grove device knows in one Pebble database:
// the device identity and settings, per-group metadata and retained MLS epoch
// states, the ciphertext log served to peers that resync, the outbox of
// plaintext waiting to be (re)sent, the local view of decrypted messages, the
// full-text search index over that view, and dedup markers.
//
// There is no server to fall back on, so this database is the only copy of a
// device's history. Every write that belongs together is one Pebble batch, and
// every batch is synced before the call returns, so an acknowledged write
// survives a crash and no group of records is ever half-applied. Batch lets
// a caller commit everything one message (or a page of messages) changes
// with one sync. Two kinds of write are deliberately not synced, and become
// durable with the next synced write: Batch.CommitNoSync, for callers that
// sync once after a run of writes (DB.Sync), and DeleteOutbox, whose loss
// only repeats a send.
//
// Dedup markers and view records are keyed by group, message id and
// sender: ids are chosen by senders, so one member's id must not suppress
// or overwrite another's message. Keys written before the sender was part
// of them are still read (see dedupKey, viewKey).
//
// Every record read back from disk is decoded by a versioned, length-checked
// decoder; a record that does not decode yields an error wrapping ErrCorrupt,
// never a panic.
//
// Deleted secrets and plaintext (epoch states, settings, view messages and
// their search postings, outbox entries, everything of a group left) are made
// unrecoverable from the database directory by PurgeDeleted, which flushes
// the memtable (switching to a new WAL), compacts the deleted key ranges to
// the bottom level so the shadowed values are dropped, and lets Pebble delete
// the old WAL and sstables (WAL recycling is disabled so no old log survives
// inside a reused file). Every deleting call notes its ranges in memory and
// persists a mark of its key space in the same batch, so a purge after a
// restart still covers deletions made before it. MANIFEST and OPTIONS hold
// no values. Removed files are unlinked, not overwritten: what a filesystem
// or SSD keeps in freed blocks is outside the store's reach.
//
// Purge schedule for the node: PurgeDeleted returns at once when nothing is
// pending (PurgePending), so call it after each batch of epoch finalisations
// (coalesced: at most once every few seconds while epochs keep finalising),
// right after leaving or being removed from a group (DeleteGroup), after
// user or retention deletions (DeleteMessage, DeleteSetting), and once after
// Open. Its cost is one flush plus one compaction per noted range (ranges
// beyond 32 collapse to one per key space).
//
// # Encryption at rest
//
// With Options.Key set, every file Pebble writes (sstables, WAL, MANIFEST,
// OPTIONS, markers) goes through an encrypting vfs.FS, so epoch states, the
// MLS signing key, the view, outbox and search index never reach the disk
// in the clear. Each file gets its own random 256-bit data key and random
// 128-bit IV; its body is AES-256-CTR, so any range can be read and a file
// appended to without touching the rest (Pebble reads blocks at random
// offsets and appends to the WAL and MANIFEST). The data key is sealed with
// the store key (AES-256-GCM, random nonce) in an 84-byte header at the
// start of the file; offsets and sizes Pebble sees are shifted past it:
//
//	"GRVE" | version 1 | 3 zero bytes | IV (16) | nonce (12) | sealed key (48)
//
// The GCM tag covers the magic, version and IV (as additional data) and the
// data key, so a header that was altered, or a file of another store key,
// fails to open (ErrWrongKey). Open checks one file's header before Pebble
// starts, so a wrong or missing key is one clear error (ErrWrongKey,
// ErrEncrypted, ErrNotEncrypted) and changes nothing. Files Pebble re-opens
// for writing (ReuseForWrite, which WAL recycling would use and which the
// store disables anyway) get a fresh header and key.
//
// Integrity: CTR has none. The body of a file is not authenticated;
// Pebble's block, record and manifest checksums turn accidental corruption
// or blind tampering into a corruption error, but they are CRCs, not MACs:
// someone who can write the disk and knows the plaintext at some offset can
// flip chosen bits there undetected. The encryption protects confidentiality
// of a disk that is lost, stolen, imaged or backed up, not against an
// attacker who writes to it while the device keeps using it.
//
// File names and sizes, directory listings and timing are not hidden.
//
// The store key itself is random (NewStoreKey) and never derived from a
// passphrase directly: KeyFile records where it is kept (the OS keyring, a
// key file, or sealed under Argon2id of a passphrase), so changing the
// passphrase reseals the same key and rewrites no data. EncryptDir converts
// a database written in the clear, once, by copying it through the
// encrypting filesystem and swapping directories.
//
// Full-text search (Search) runs over the local view on the same Pebble
// database: a Unicode tokenizer (case and diacritic folding, CJK bigrams),
// posting blocks keyed by term, BM25 or recency ranking, AND of terms,
// prefixes and phrases, filters by group, sender and time, cursor paging.
// A message is indexed in the same batch as its view record, and deleting it
// removes its postings. OptimizeIndex merges the small posting blocks that
// live, one-message-at-a-time indexing produces.
//
// The store is not an MLS implementation: epoch states and MLS messages are
// opaque bytes chosen by the caller. It does not decide what is final or
// canonical (that is commitorder's job) and it runs no goroutines of its own
// beyond Pebble's.
//
// Key layout: one prefix byte per key space, then fixed-size or
// length-prefixed fields, numbers big-endian so that scans are ordered. See
// keys.go.
package store
