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
