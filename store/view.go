package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// MessageFlags qualify a message in the local view.
type MessageFlags uint32

const (
	// FlagOrphanedBranch: the message was sent in an epoch that lost fork
	// choice (it was decrypted with that branch's state).
	FlagOrphanedBranch MessageFlags = 1 << 0
	// FlagResent: the sender re-sent the message in the canonical epoch.
	FlagResent MessageFlags = 1 << 1
	// FlagEdited: the author edited the message; Text is the latest
	// edit's (ReplaceText).
	FlagEdited MessageFlags = 1 << 2
	// FlagDeleted: the message was deleted for everyone; Text is empty
	// and its plaintext purged (Tombstone).
	FlagDeleted MessageFlags = 1 << 3

	// contentFlags are kept by SetMessageFlags: they record what
	// happened to the content, not how it was delivered.
	contentFlags = FlagEdited | FlagDeleted
	// recordHasMeta marks, in the stored flags only, a view record that
	// ends with Meta. Never set in Message.Flags.
	recordHasMeta MessageFlags = 1 << 31
	// recordHasExtra marks a view record that ends with Extra.
	recordHasExtra MessageFlags = 1 << 30
)

// Message is a decrypted message in the local view.
type Message struct {
	Group  []byte
	ID     MessageID
	Time   time.Time
	Sender []byte
	Text   string
	Epoch  uint64
	Flags  MessageFlags
	// Meta is opaque data the node keeps with the message (its kind,
	// reply target, mentions, file description), at most MaxMetaLen
	// bytes; nil for a plain text message.
	Meta []byte
	// Extra is more searchable text that is not the message's text (a
	// file's name), at most MaxExtraLen bytes.
	Extra string
}

// MaxExtraLen bounds Message.Extra.
const MaxExtraLen = 1 << 10

// indexText is what the search index holds of a message.
func (m *Message) indexText() string {
	if m.Extra == "" {
		return m.Text
	}
	return m.Text + "\n" + m.Extra
}

// MaxMetaLen bounds Message.Meta.
const MaxMetaLen = 16 << 10

// viewRecordVersion is the encoding of view records. Version 1 (schema 1)
// had no document number; see migrateBuildIndex.
const viewRecordVersion = 2

// viewKey is the key of a message in the view: group, time, id, then the
// sender (length-prefixed), so that two senders' messages with the same id
// and time are two records (a member cannot overwrite another's message by
// copying its id and time). Keys written before the sender was appended end
// after the id; decodeViewKey accepts both, so no migration is needed.
func viewKey(g []byte, ts int64, id MessageID, sender []byte) []byte {
	return newKey(spaceView, 1+len(g)+8+MessageIDLen+1+len(sender)).group(g).nanos(ts).raw(id[:]).sender(sender)
}

// legacyViewKey is the key of a view record written before the sender was
// part of it.
func legacyViewKey(g []byte, ts int64, id MessageID) []byte {
	return newKey(spaceView, 1+len(g)+8+MessageIDLen).group(g).nanos(ts).raw(id[:])
}

// viewByIDKey is the schema-1 id index, replaced in schema 2 by the time
// held in the dedup marker. Only the migration uses it.
func viewByIDKey(g []byte, id MessageID) []byte {
	return newKey(spaceViewByID, 1+len(g)+MessageIDLen).group(g).raw(id[:])
}

// dedupKey is the dedup marker of a message id from one sender: ids are
// chosen by senders, so a marker bound to the id alone would let one
// member suppress another's message by sending first under its id. The
// same sender's re-sends (across epochs, under the same id) still meet
// their marker.
func dedupKey(g []byte, id MessageID, sender []byte) []byte {
	return dedupPrefix(g, id).sender(sender)
}

// dedupPrefix is the start of every dedup key of an id in a group, and
// itself the key of a marker written before markers named the sender
// (legacy: the sender is unknown, so such a marker deduplicates the id
// for every sender, as it did when written).
func dedupPrefix(g []byte, id MessageID) keyBuf {
	return newKey(spaceDedup, 1+len(g)+MessageIDLen+1+MaxSenderLen).group(g).raw(id[:])
}

func checkSender(s []byte) error {
	if len(s) == 0 || len(s) > MaxSenderLen {
		return invalidf("sender of %d bytes, want 1..%d", len(s), MaxSenderLen)
	}
	return nil
}

func checkMessage(m *Message) error {
	if err := checkGroup(m.Group); err != nil {
		return err
	}
	if err := checkSender(m.Sender); err != nil {
		return err
	}
	if len(m.Text) > MaxTextLen {
		return invalidf("text of %d bytes exceeds %d", len(m.Text), MaxTextLen)
	}
	if len(m.Meta) > MaxMetaLen {
		return invalidf("metadata of %d bytes exceeds %d", len(m.Meta), MaxMetaLen)
	}
	if len(m.Extra) > MaxExtraLen {
		return invalidf("extra text of %d bytes exceeds %d", len(m.Extra), MaxExtraLen)
	}
	if m.Flags&(recordHasMeta|recordHasExtra) != 0 {
		return invalidf("reserved message flag")
	}
	if m.Time.IsZero() {
		return invalidf("message without time")
	}
	return nil
}

// AddMessage adds a decrypted message to the local view and the search index
// in one synced batch. A message whose id was already seen in the group (even
// if since deleted) is not added again and added is false: that is the dedup
// by application message id.
func (db *DB) AddMessage(m Message) (added bool, err error) {
	res, err := db.AddMessages([]Message{m})
	if err != nil {
		return false, err
	}
	return res[0], nil
}

// AddMessages adds several messages in one synced batch; added[i] reports
// whether msgs[i] was new. Either all new messages are stored or none.
func (db *DB) AddMessages(msgs []Message) (added []bool, err error) {
	b := db.NewBatch()
	for i := range msgs {
		if err := b.AddMessage(msgs[i]); err != nil {
			return nil, err
		}
	}
	return b.Commit()
}

// Seen reports whether a message id from sender has been recorded in the
// group's dedup markers (by AddMessage or MarkSeen).
func (db *DB) Seen(group, sender []byte, id MessageID) (bool, error) {
	if err := checkGroup(group); err != nil {
		return false, err
	}
	if err := checkSender(sender); err != nil {
		return false, err
	}
	release, err := db.use()
	if err != nil {
		return false, err
	}
	defer release()
	for _, k := range [][]byte{dedupKey(group, id, sender), dedupPrefix(group, id)} {
		val, err := db.get(k)
		if err == ErrNotFound {
			continue
		}
		if err != nil {
			return false, err
		}
		if _, err := decodeDedup(val); err != nil {
			return false, fmt.Errorf("store: dedup marker: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// MarkSeen records a dedup marker of a message id from sender without
// adding a message (e.g. for messages the node drops on purpose). It
// reports whether the id was new from that sender.
func (db *DB) MarkSeen(group, sender []byte, id MessageID) (bool, error) {
	if err := checkGroup(group); err != nil {
		return false, err
	}
	if err := checkSender(sender); err != nil {
		return false, err
	}
	release, err := db.use()
	if err != nil {
		return false, err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	k := dedupKey(group, id, sender)
	seen, err := db.seenLocked(k, group, id)
	if err != nil || seen {
		return false, err
	}
	if err := db.pdb.Set(k, encodeDedup(dedupRecord{seen: db.opts.Now()}), pebble.Sync); err != nil {
		return false, fmt.Errorf("store: write: %w", err)
	}
	db.present.add(k)
	return true, nil
}

// seenLocked reports whether the dedup marker k (of id from one sender) or
// a legacy marker of id exists.
func (db *DB) seenLocked(k, group []byte, id MessageID) (bool, error) {
	seen, err := db.hasFiltered(k)
	if err != nil || seen {
		return seen, err
	}
	return db.hasFiltered(dedupPrefix(group, id))
}

// viewRef locates a message of the view: its key and its time.
type viewRef struct {
	key    []byte // the dedup marker's key
	sender []byte // nil for a legacy marker
	ts     int64
}

// viewRefs lists the messages of the view with the given id in a group,
// from any sender, or from one sender if sender is not nil; the caller
// holds use().
func (db *DB) viewRefs(group []byte, id MessageID, sender []byte) ([]viewRef, error) {
	p := dedupPrefix(group, id)
	var out []viewRef
	err := db.scan(p, func(k, v []byte) error {
		var snd []byte
		if len(k) > len(p) {
			r := keyReader{b: k[len(p):]}
			snd = r.sender()
			if err := r.done(); err != nil {
				return fmt.Errorf("store: dedup marker: %w", err)
			}
		}
		rec, err := decodeDedup(v)
		if err != nil {
			return fmt.Errorf("store: dedup marker: %w", err)
		}
		if !rec.inView || (sender != nil && snd != nil && !bytes.Equal(snd, sender)) {
			return nil
		}
		out = append(out, viewRef{key: slices.Clone(k), sender: snd, ts: rec.ts})
		return nil
	})
	return out, err
}

// loadMessage reads the view record ref points at; the caller holds use().
func (db *DB) loadMessage(group []byte, id MessageID, ref viewRef) (Message, uint64, []byte, error) {
	vk := legacyViewKey(group, ref.ts, id)
	if ref.sender != nil {
		vk = viewKey(group, ref.ts, id, ref.sender)
	}
	val, err := db.get(vk)
	if err == ErrNotFound {
		return Message{}, 0, nil, corruptf("view id index points at missing message")
	}
	if err != nil {
		return Message{}, 0, nil, err
	}
	m, doc, err := decodeMessage(val)
	if err != nil {
		return Message{}, 0, nil, fmt.Errorf("store: view: %w", err)
	}
	m.Group, m.ID, m.Time = group, id, time.Unix(0, ref.ts).UTC()
	return m, doc, vk, nil
}

// lookupMessages finds the messages of the view with an id (from sender
// only, if sender is not nil); the caller holds use().
func (db *DB) lookupMessages(group []byte, id MessageID, sender []byte) ([]Message, []uint64, [][]byte, error) {
	refs, err := db.viewRefs(group, id, sender)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		ms   []Message
		docs []uint64
		keys [][]byte
	)
	for _, ref := range refs {
		m, doc, vk, err := db.loadMessage(group, id, ref)
		if err != nil {
			return nil, nil, nil, err
		}
		if sender != nil && !bytes.Equal(m.Sender, sender) {
			continue // a legacy record of another sender
		}
		ms, docs, keys = append(ms, m), append(docs, doc), append(keys, vk)
	}
	return ms, docs, keys, nil
}

// Message returns a message of the local view by id, or ErrNotFound. Ids
// are chosen by senders, so two senders' messages may share one: Message
// returns one of them; MessageFrom names the sender.
func (db *DB) Message(group []byte, id MessageID) (Message, error) {
	return db.message(group, id, nil)
}

// MessageFrom returns sender's message of the local view by id, or
// ErrNotFound.
func (db *DB) MessageFrom(group, sender []byte, id MessageID) (Message, error) {
	if err := checkSender(sender); err != nil {
		return Message{}, err
	}
	return db.message(group, id, sender)
}

func (db *DB) message(group []byte, id MessageID, sender []byte) (Message, error) {
	if err := checkGroup(group); err != nil {
		return Message{}, err
	}
	release, err := db.use()
	if err != nil {
		return Message{}, err
	}
	defer release()
	ms, _, _, err := db.lookupMessages(group, id, sender)
	if err != nil {
		return Message{}, err
	}
	if len(ms) == 0 {
		return Message{}, ErrNotFound
	}
	return ms[0], nil
}

// Messages returns up to limit messages of a group with Time >= since, in
// time order (ties by id).
func (db *DB) Messages(group []byte, since time.Time, limit int) ([]Message, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, invalidf("limit %d", limit)
	}
	release, err := db.use()
	if err != nil {
		return nil, err
	}
	defer release()
	prefix := newKey(spaceView, 1+len(group)).group(group)
	var start []byte
	if since.IsZero() {
		start = prefix
	} else {
		start = newKey(spaceView, 1+len(group)+8).group(group).nanos(since.UnixNano())
	}
	var out []Message
	err = db.scanRange(start, prefixEnd(prefix), func(k, v []byte) error {
		if len(out) >= limit {
			return errStopScan
		}
		m, err := decodeViewEntry(k, v)
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err == errStopScan {
		err = nil
	}
	return out, err
}

func decodeViewEntry(k, v []byte) (Message, error) {
	r := keyReader{b: k}
	r.space(spaceView)
	g := r.group()
	ts := r.nanos()
	id := r.fixed(MessageIDLen)
	sender := r.optionalSender()
	if err := r.done(); err != nil {
		return Message{}, fmt.Errorf("store: view: %w", err)
	}
	m, _, err := decodeMessage(v)
	if err != nil {
		return Message{}, fmt.Errorf("store: view: %w", err)
	}
	if sender != nil && !bytes.Equal(sender, m.Sender) {
		return Message{}, corruptf("view key and record name different senders")
	}
	m.Group, m.Time = g, time.Unix(0, ts).UTC()
	copy(m.ID[:], id)
	return m, nil
}

// SetMessageFlags replaces the flags of the messages in the view with the
// id (of every sender: see Message), or returns ErrNotFound.
func (db *DB) SetMessageFlags(group []byte, id MessageID, flags MessageFlags) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	ms, docs, keys, err := db.lookupMessages(group, id, nil)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return ErrNotFound
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	for i := range ms {
		ms[i].Flags = flags&^(recordHasMeta|recordHasExtra) | ms[i].Flags&contentFlags
		b.Set(keys[i], encodeMessage(&ms[i], docs[i]), nil)
	}
	return db.commit(b)
}

// DeleteMessage removes the messages with the id (of every sender: see
// Message) from the view and their postings from the search index, or
// returns ErrNotFound. Their dedup markers stay, so a late copy is not
// shown again.
func (db *DB) DeleteMessage(group []byte, id MessageID) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.purgeGate.RLock()
	defer db.purgeGate.RUnlock()
	refs, err := db.viewRefs(group, id, nil)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return ErrNotFound
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	ix := db.newIndexer(b)
	for _, ref := range refs {
		m, doc, vk, err := db.loadMessage(group, id, ref)
		if err != nil {
			return err
		}
		ix.remove(&m, doc)
		b.Delete(vk, nil)
		db.notePurge(b, keyRange{vk, append(slices.Clone(vk), 0)})
		b.Set(ref.key, encodeDedup(dedupRecord{seen: db.opts.Now()}), nil)
	}
	if err := ix.finish(); err != nil {
		return err
	}
	if err := db.commit(b); err != nil {
		return err
	}
	ix.publish()
	return nil
}

func encodeMessage(m *Message, doc uint64) []byte {
	e := newEncV(viewRecordVersion, len(m.Sender)+len(m.Text)+len(m.Meta)+24)
	e.bytes(m.Sender)
	e.bytes([]byte(m.Text))
	e.uvarint(m.Epoch)
	flags := m.Flags &^ (recordHasMeta | recordHasExtra)
	if len(m.Meta) > 0 {
		flags |= recordHasMeta
	}
	if m.Extra != "" {
		flags |= recordHasExtra
	}
	e.uvarint(uint64(flags))
	e.uvarint(doc)
	if len(m.Meta) > 0 {
		e.bytes(m.Meta)
	}
	if m.Extra != "" {
		e.bytes([]byte(m.Extra))
	}
	return e.b
}

// decodeMessage decodes a view record (without the fields held in its key).
func decodeMessage(val []byte) (Message, uint64, error) {
	d := newDecV(val, "message", viewRecordVersion)
	var m Message
	m.Sender = d.bytes(MaxSenderLen)
	m.Text = string(d.bytes(MaxTextLen))
	m.Epoch = d.uvarint()
	flags := d.uvarint()
	doc := d.uvarint()
	if d.err == nil && (flags > 0xffffffff || len(m.Sender) == 0 || doc == 0) {
		d.fail("bad flags, sender or document number")
	}
	m.Flags = MessageFlags(flags)
	if m.Flags&recordHasMeta != 0 {
		m.Meta = d.bytes(MaxMetaLen)
		if d.err == nil && len(m.Meta) == 0 {
			d.fail("empty metadata")
		}
	}
	if m.Flags&recordHasExtra != 0 {
		m.Extra = string(d.bytes(MaxExtraLen))
		if d.err == nil && m.Extra == "" {
			d.fail("empty extra text")
		}
	}
	m.Flags &^= recordHasMeta | recordHasExtra
	return m, doc, d.finish()
}

// decodeMessageV1 decodes a schema-1 view record, which had no document
// number. Only the migration reads these.
func decodeMessageV1(val []byte) (Message, error) {
	d := newDecV(val, "message v1", 1)
	var m Message
	m.Sender = d.bytes(MaxSenderLen)
	m.Text = string(d.bytes(MaxTextLen))
	m.Epoch = d.uvarint()
	flags := d.uvarint()
	if d.err == nil && (flags > 0xffffffff || len(m.Sender) == 0) {
		d.fail("bad flags or sender")
	}
	m.Flags = MessageFlags(flags)
	return m, d.finish()
}

// dedupRecord is the dedup marker of an application message id. While the
// message is in the view it also holds the message time, which locates the
// view record (view keys are ordered by time).
type dedupRecord struct {
	seen   time.Time
	inView bool
	ts     int64 // message time in Unix nanoseconds, when inView
}

// dedupRecordVersion is the encoding of dedup markers; version 1 (schema 1)
// held only the first-seen time.
const dedupRecordVersion = 2

// decodeDedupV1 decodes a schema-1 dedup marker. Only the migration reads
// these.
func decodeDedupV1(val []byte) (time.Time, error) {
	d := newDecV(val, "dedup marker v1", 1)
	t := d.time()
	return t, d.finish()
}

func encodeDedup(r dedupRecord) []byte {
	e := newEncV(dedupRecordVersion, 20)
	e.time(r.seen)
	if r.inView {
		e.u8(1)
		e.varint(r.ts)
	} else {
		e.u8(0)
	}
	return e.b
}

func decodeDedup(val []byte) (dedupRecord, error) {
	d := newDecV(val, "dedup marker", dedupRecordVersion)
	var r dedupRecord
	r.seen = d.time()
	switch d.u8() {
	case 0:
	case 1:
		r.inView = true
		r.ts = d.varint()
	default:
		d.fail("bad view flag")
	}
	return r, d.finish()
}
