package node

// heldBuffer keeps group messages that no retained epoch could process yet,
// until the Commit that creates their epoch arrives.
//
// Gossip does not preserve order across senders: a member's first message
// in an epoch it has just created by Commit often reaches a peer before the
// Commit itself, and when that peer already holds a sibling of the epoch
// (a concurrent Commit on the same parent) the message fails to decrypt
// there too. Dropping it would lose it for good once the epoch is final:
// the sender's outbox counts it as delivered (its epoch is canonical), and
// anti-entropy may not come by in time. So it waits here, bounded, and is
// tried again when a Commit produces an epoch with its number.
//
// Anyone on the topic can send what fails to decrypt, so the buffer is
// bounded in entries and in bytes, and drops the oldest first.
type heldBuffer struct {
	max, maxBytes int
	bytes         int
	entries       []heldMsg // oldest first
	hashes        map[[32]byte]struct{}
}

// defaultHeldBytes bounds the bytes of held messages per group.
const defaultHeldBytes = 16 << 20

type heldMsg struct {
	hash  [32]byte
	epoch uint64
	data  []byte
}

func newHeldBuffer(max, maxBytes int) *heldBuffer {
	return &heldBuffer{max: max, maxBytes: maxBytes, hashes: make(map[[32]byte]struct{})}
}

// add keeps data (whose SHA-256 is h) for epoch. A message already held is
// not kept twice; when full, the oldest entries make room.
func (b *heldBuffer) add(h [32]byte, epoch uint64, data []byte) {
	if _, ok := b.hashes[h]; ok || b.max <= 0 || len(data) > b.maxBytes {
		return
	}
	for len(b.entries) > 0 && (len(b.entries) >= b.max || b.bytes+len(data) > b.maxBytes) {
		b.bytes -= len(b.entries[0].data)
		delete(b.hashes, b.entries[0].hash)
		b.entries[0] = heldMsg{}
		b.entries = b.entries[1:]
	}
	b.entries = append(b.entries, heldMsg{hash: h, epoch: epoch, data: data})
	b.hashes[h] = struct{}{}
	b.bytes += len(data)
}

// take removes and returns the messages held for epoch, oldest first.
func (b *heldBuffer) take(epoch uint64) [][]byte {
	var out [][]byte
	kept := b.entries[:0]
	for _, e := range b.entries {
		if e.epoch == epoch {
			out = append(out, e.data)
			delete(b.hashes, e.hash)
			b.bytes -= len(e.data)
			continue
		}
		kept = append(kept, e)
	}
	clear(b.entries[len(kept):])
	b.entries = kept
	return out
}

// prune drops messages for epochs below floor: their epochs are final (or
// older), so they can never be decrypted.
func (b *heldBuffer) prune(floor uint64) {
	kept := b.entries[:0]
	for _, e := range b.entries {
		if e.epoch >= floor {
			kept = append(kept, e)
			continue
		}
		delete(b.hashes, e.hash)
		b.bytes -= len(e.data)
	}
	clear(b.entries[len(kept):])
	b.entries = kept
}

// reset drops everything.
func (b *heldBuffer) reset() {
	clear(b.entries)
	b.entries = b.entries[:0]
	clear(b.hashes)
	b.bytes = 0
}

func (b *heldBuffer) len() int { return len(b.entries) }
