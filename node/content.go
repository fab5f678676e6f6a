// Conversations beyond plain text (issue 21): posts that reply, mention
// or carry a file; reactions; edits; deletes for everyone; read receipts;
// typing. Each travels as a content payload (content_wire.go) inside an
// MLS application message, through the outbox like text, so it is
// durable before acknowledged, re-sent after a fork and deduplicated by
// its id.
//
// What a member does to a message after sending it is stored as an
// operation on its target (store.Op), and a message's state is a fold of
// its operations that does not depend on the order they arrived in:
//
//   - edit: only the author's own edits count (the MLS sender of the edit
//     against the MLS sender of the message, never a claimed name); the
//     latest by (sender time, edit id) wins.
//   - delete: by the author, or by a member who was an admin in the epoch
//     the delete was sent in; any such delete wins over everything, and
//     what the message said (its text, its edits, its file description)
//     is purged from the view, the index and the outbox (store.Tombstone).
//   - reaction: per member and emoji, the latest add or remove by (sender
//     time, reaction id) wins.
//   - receipt: per member, the latest receipt names the newest message it
//     has read.
//
// An operation that arrives before its target is kept and applied when
// the target arrives (receivePost reads the pending edits and deletes
// before it stores the message); one that arrives twice is stored once;
// one that arrives after its target was deleted is dropped. Because the
// outcome is a fold, a resync or a fork rollback that delivers the same
// operations again, or in another order, ends in the same view.

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"grove/mls"
	"grove/node/api"
	"grove/store"
)

// Operation kinds in the store (store.Op.Kind), the same numbers as the
// content types that make them.
const (
	opReact   = uint8(contentReact)
	opEdit    = uint8(contentEdit)
	opDelete  = uint8(contentDelete)
	opReceipt = uint8(contentReceipt)
)

// receiptTarget is the target receipts are stored under: one record per
// reader, overwritten by its newer receipts.
var receiptTarget store.MessageID

// Errors of received operations that are refused (nothing is stored or
// changed); the receive path logs them, tests check them.
var (
	// ErrNotAuthor: an edit of another member's message, or a delete of
	// one by a member who is not an admin.
	ErrNotAuthor = errors.New("node: not the author of the message")
	// ErrTargetDeleted: an operation on a message deleted for everyone.
	ErrTargetDeleted = errors.New("node: message was deleted")
)

// receiptsOffSetting is set when this device sends no read receipts.
const receiptsOffSetting = "receipts.off"

func mentionsSetting(hexID string) string { return "mentions." + hexID }

// onContent handles a content payload from sender, decrypted in epoch g
// (own: sent by this device and applied locally). It reports whether the
// message belongs in the ciphertext log: a typing indicator does not (it
// is never stored, and so never served to a member that resyncs).
func (a *groupActor) onContent(p *appPayload, sender []byte, g *mls.Group) bool {
	c := p.Content
	var err error
	switch c.Type {
	case contentPost:
		checkPreview(c.File) // files_preview.go
		a.receivePost(p, sender, g.Epoch(), 0)
		if c.File != nil {
			a.recordFileAccess(p.ID, g) // files_access.go
		}
	case contentReact:
		err = a.applyReact(p, sender)
	case contentEdit:
		err = a.applyEdit(p, sender)
	case contentDelete:
		err = a.applyDelete(p, sender, adminIn(g, sender))
	case contentReceipt:
		err = a.applyReceipt(p, sender)
	case contentTyping:
		if !bytes.Equal(sender, a.n.selfID) {
			a.n.emit(api.Event{Kind: api.EventTyping, Group: a.hexID, Time: a.n.cfg.Clock.Now(),
				Member: &api.Member{Name: a.memberName(sender), PeerID: peerOf(sender)}})
		}
		return false
	default:
		if c.Flags&contentVisible != 0 {
			a.receivePost(p, sender, g.Epoch(), 0)
		}
	}
	if err != nil {
		a.log.Debug("content operation refused", "type", c.Type, "err", err)
	}
	return true
}

// postMeta is what the view keeps of a post besides its text: the
// content payload without the text (its reply target, mentions, file),
// or an unknown type's header (shown as unsupported).
func postMeta(c *content) []byte {
	if c == nil {
		return nil
	}
	m := *c
	m.Text = ""
	m.Body = nil
	return m.marshal()
}

// tombstoneMeta is the metadata of a deleted message: nothing of what it
// said (no reply target, mentions or file) survives.
var tombstoneMeta = (&content{Type: contentPost}).marshal()

// receivePost stores a message (plain text, a post, or an unsupported
// content type) from sender, with the edits and deletes that arrived
// before it already applied.
func (a *groupActor) receivePost(p *appPayload, sender []byte, epoch uint64, flags store.MessageFlags) {
	sm := store.Message{Group: a.id, ID: store.MessageID(p.ID), Time: p.Time, Sender: sender, Text: p.Text, Epoch: epoch, Flags: flags}
	if p.Kind == kindContent {
		sm.Text, sm.Meta = p.Content.Text, postMeta(p.Content)
		sm.Extra = searchExtra(p.Content)
	}
	ops, err := a.n.db.Ops(a.id, sm.ID)
	if err != nil {
		a.log.Warn("read operations", "err", err)
	}
	if deleteAllowed(ops, sender) {
		sm.Text, sm.Meta, sm.Extra, sm.Flags = "", tombstoneMeta, "", sm.Flags|store.FlagDeleted
		// Its edits were dropped on arrival (applyEdit), but a reaction
		// may have come before the delete.
		if err := a.n.db.DeleteOps(a.id, sm.ID, opEdit, opReact); err != nil {
			a.log.Warn("purge operations", "err", err)
		}
	} else if e := latestEdit(ops, sender); e != nil {
		sm.Text, sm.Flags = e.Text, sm.Flags|store.FlagEdited
	}
	if err := a.storeReceived(sm); err != nil {
		a.log.Warn("add message to view", "err", err)
		return
	}
	if sm.Flags&store.FlagDeleted == 0 && p.Kind == kindContent && containsID(p.Content.Mentions, a.n.selfID) && !bytes.Equal(sender, a.n.selfID) {
		a.n.noteMention(a.hexID)
	}
}

// putOp stores an operation; it reports false for one already stored.
func (a *groupActor) putOp(target store.MessageID, kind uint8, sender []byte, id [16]byte, at time.Time, val []byte, replace bool) (bool, error) {
	sync := a.writes.depth == 0
	if !sync {
		a.writes.unsynced = true
	}
	return a.n.db.PutOp(store.Op{Group: a.id, Target: target, Kind: kind, Sender: sender, ID: store.MessageID(id), Time: at, Value: val}, replace, sync)
}

func (a *groupActor) applyReact(p *appPayload, sender []byte) error {
	target := store.MessageID(p.Content.Target)
	ms, err := a.messagesWithID(target)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Flags&store.FlagDeleted != 0 {
			return ErrTargetDeleted
		}
	}
	if ops, err := a.n.db.Ops(a.id, target); err == nil && len(ms) == 0 && anyDelete(ops) {
		return ErrTargetDeleted
	}
	added, err := a.putOp(target, opReact, sender, p.ID, p.Time, p.Content.marshal(), false)
	if err != nil || !added {
		return err
	}
	a.emitUpdated(ms)
	return nil
}

func (a *groupActor) applyEdit(p *appPayload, sender []byte) error {
	target := store.MessageID(p.Content.Target)
	ops, err := a.n.db.Ops(a.id, target)
	if err != nil {
		return err
	}
	if deleteAllowed(ops, sender) {
		return ErrTargetDeleted
	}
	m, err := a.n.db.MessageFrom(a.id, sender, target)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if others, err := a.messagesWithID(target); err != nil {
			return err
		} else if len(others) > 0 {
			return ErrNotAuthor
		}
		// Its target has not arrived yet: kept for receivePost.
		_, err := a.putOp(target, opEdit, sender, p.ID, p.Time, p.Content.marshal(), false)
		return err
	case err != nil:
		return err
	case m.Flags&store.FlagDeleted != 0:
		return ErrTargetDeleted
	}
	added, err := a.putOp(target, opEdit, sender, p.ID, p.Time, p.Content.marshal(), false)
	if err != nil || !added {
		return err
	}
	ops = append(ops, store.Op{Kind: opEdit, Sender: sender, ID: store.MessageID(p.ID), Time: p.Time, Value: p.Content.marshal()})
	e := latestEdit(ops, sender)
	if e == nil || (e.Text == m.Text && m.Flags&store.FlagEdited != 0) {
		return nil
	}
	if err := a.n.db.ReplaceText(a.id, sender, target, e.Text); err != nil {
		return err
	}
	a.n.noteEdit()
	a.emitUpdated([]store.Message{m})
	return nil
}

// applyDelete deletes the target for everyone if sender wrote it or was
// an admin in the epoch of the delete.
func (a *groupActor) applyDelete(p *appPayload, sender []byte, admin bool) error {
	target := store.MessageID(p.Content.Target)
	ms, err := a.messagesWithID(target)
	if err != nil {
		return err
	}
	var mine []store.Message
	for _, m := range ms {
		if admin || bytes.Equal(m.Sender, sender) {
			mine = append(mine, m)
		}
	}
	if len(ms) > 0 && len(mine) == 0 {
		return ErrNotAuthor
	}
	if _, err := a.putOp(target, opDelete, sender, p.ID, p.Time, []byte{boolByte(admin)}, false); err != nil {
		return err
	}
	var done []store.Message
	for _, m := range mine {
		if m.Flags&store.FlagDeleted != 0 {
			continue
		}
		if err := a.tombstone(m); err != nil {
			return err
		}
		done = append(done, m)
	}
	if len(done) > 0 {
		a.n.requestPurge()
	}
	a.emitUpdated(done)
	return nil
}

// tombstone purges what m said: its text and metadata in the view and
// the index, its edits and reactions, and, if this device wrote it, its
// outbox entry and those of its edits.
func (a *groupActor) tombstone(m store.Message) error {
	var outbox []store.MessageID
	if bytes.Equal(m.Sender, a.n.selfID) {
		outbox = append(outbox, m.ID)
		ops, err := a.n.db.Ops(a.id, m.ID)
		if err != nil {
			return err
		}
		for _, o := range ops {
			if o.Kind == opEdit && bytes.Equal(o.Sender, a.n.selfID) {
				outbox = append(outbox, o.ID)
			}
		}
	}
	if err := a.n.db.Tombstone(a.id, m.Sender, m.ID, tombstoneMeta, []uint8{opEdit, opReact}, outbox); err != nil {
		return fmt.Errorf("node: delete message: %w", err)
	}
	a.dropFileChunks(m)
	return nil
}

func (a *groupActor) applyReceipt(p *appPayload, sender []byte) error {
	ops, err := a.n.db.Ops(a.id, receiptTarget)
	if err != nil {
		return err
	}
	for _, o := range ops {
		if o.Kind == opReceipt && bytes.Equal(o.Sender, sender) && !o.Time.Before(p.Time) {
			return nil // an older or repeated receipt
		}
	}
	_, err = a.putOp(receiptTarget, opReceipt, sender, [16]byte{}, p.Time, p.Content.Target[:], true)
	if err != nil {
		return err
	}
	if m, err := a.n.db.Message(a.id, store.MessageID(p.Content.Target)); err == nil {
		a.emitUpdated([]store.Message{m})
	}
	return nil
}

// messagesWithID returns the view's messages with an id, from any sender.
func (a *groupActor) messagesWithID(id store.MessageID) ([]store.Message, error) {
	var out []store.Message
	m, err := a.n.db.Message(a.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out = append(out, m)
	// Ids are chosen by senders, so a second sender may use one: look for
	// the others through the members' identities.
	for _, mem := range a.knownSenders() {
		if bytes.Equal(mem, m.Sender) {
			continue
		}
		if o, err := a.n.db.MessageFrom(a.id, mem, id); err == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

// knownSenders lists the identities of the members of every retained
// epoch.
func (a *groupActor) knownSenders() [][]byte {
	var out [][]byte
	for _, g := range a.epochs {
		for _, m := range g.Members() {
			if !containsID(out, m.Identity) {
				out = append(out, m.Identity)
			}
		}
	}
	return out
}

func (a *groupActor) emitUpdated(ms []store.Message) {
	for _, m := range ms {
		cur, err := a.n.db.MessageFrom(a.id, m.Sender, m.ID)
		if err != nil {
			continue
		}
		am := a.n.apiMessage(a, cur)
		a.n.emit(api.Event{Kind: api.EventMessageUpdated, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &am})
	}
}

// deleteAllowed reports whether ops hold a delete of author's message:
// by the author, or by an admin.
func deleteAllowed(ops []store.Op, author []byte) bool {
	for _, o := range ops {
		if o.Kind == opDelete && (bytes.Equal(o.Sender, author) || bytes.Equal(o.Value, []byte{1})) {
			return true
		}
	}
	return false
}

func anyDelete(ops []store.Op) bool {
	return slices.ContainsFunc(ops, func(o store.Op) bool { return o.Kind == opDelete })
}

// later orders operations by (sender time, id): the fold's tie-break,
// the same on every device.
func later(a, b store.Op) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return bytes.Compare(a.ID[:], b.ID[:]) > 0
}

// latestEdit returns author's latest edit among ops, or nil.
func latestEdit(ops []store.Op, author []byte) *content {
	var best *store.Op
	for i := range ops {
		o := &ops[i]
		if o.Kind != opEdit || !bytes.Equal(o.Sender, author) {
			continue
		}
		if best == nil || later(*o, *best) {
			best = o
		}
	}
	if best == nil {
		return nil
	}
	c, err := unmarshalContent(best.Value)
	if err != nil || c.Type != contentEdit {
		return nil
	}
	return c
}

func peerOf(identity []byte) string {
	if id, err := parseIdentity(identity); err == nil {
		return id.Peer.String()
	}
	return ""
}

// memberName is how a sender is shown (see apiMessage).
func (a *groupActor) memberName(identity []byte) string {
	if id, err := parseIdentity(identity); err == nil {
		return a.shown.name(identity, id.Name)
	}
	return ""
}

// decorate fills the conversation fields of an API message.
func (n *Node) decorate(a *groupActor, out *api.Message, m store.Message) {
	out.Kind = api.KindText
	out.Edited = m.Flags&store.FlagEdited != 0
	if m.Flags&store.FlagDeleted != 0 {
		out.Kind, out.Deleted = api.KindDeleted, true
		return
	}
	if len(m.Meta) > 0 {
		c, err := unmarshalContent(m.Meta)
		switch {
		case err != nil:
		case c.Type != contentPost:
			out.Kind = api.KindUnsupported
		default:
			if c.HasTarget {
				out.ReplyTo = hex.EncodeToString(c.Target[:])
			}
			for _, id := range c.Mentions {
				out.Mentions = append(out.Mentions, a.memberName(id))
			}
			if c.File != nil {
				out.Kind = api.KindFile
				f := n.apiFile(a, m, c.File)
				out.File = &f
			}
		}
	}
	ops, err := n.db.Ops(a.id, m.ID)
	if err == nil {
		out.Reactions = n.reactions(a, ops)
	}
	if out.Own {
		out.SeenBy = n.seenBy(a, m)
	}
}

// reactions folds the reaction operations of one message.
func (n *Node) reactions(a *groupActor, ops []store.Op) []api.Reaction {
	type key struct{ sender, emoji string }
	latest := map[key]store.Op{}
	var order []key
	for _, o := range ops {
		if o.Kind != opReact {
			continue
		}
		c, err := unmarshalContent(o.Value)
		if err != nil || c.Type != contentReact {
			continue
		}
		k := key{string(o.Sender), c.Emoji}
		cur, ok := latest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || later(o, cur) {
			latest[k] = o
		}
	}
	var out []api.Reaction
	for _, k := range order {
		c, _ := unmarshalContent(latest[k].Value)
		if c.Remove {
			continue
		}
		i := slices.IndexFunc(out, func(r api.Reaction) bool { return r.Emoji == k.emoji })
		if i < 0 {
			out = append(out, api.Reaction{Emoji: k.emoji})
			i = len(out) - 1
		}
		out[i].Count++
		out[i].By = append(out[i].By, a.memberName([]byte(k.sender)))
		if k.sender == string(n.selfID) {
			out[i].Own = true
		}
	}
	return out
}

// seenBy lists the members whose latest read receipt names m or a later
// message.
func (n *Node) seenBy(a *groupActor, m store.Message) []string {
	ops, err := n.db.Ops(a.id, receiptTarget)
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range ops {
		if o.Kind != opReceipt || bytes.Equal(o.Sender, m.Sender) || len(o.Value) != 16 {
			continue
		}
		read, err := n.db.Message(a.id, store.MessageID(o.Value))
		if err != nil || read.Time.Before(m.Time) {
			continue
		}
		out = append(out, a.memberName(o.Sender))
	}
	return out
}

// ---- sending ----

// canSend refuses when this device cannot send in the group.
func (a *groupActor) canSend() error {
	if a.phase == phaseRemoved {
		return a.errRemoved()
	}
	if a.phase == phaseRejoining {
		return api.Errorf(api.CodeConflict, "this device's state of the group lost to the rest of the group beyond the retention window: leave and be invited again")
	}
	if eid, g := a.head(); g == nil {
		if _, ok := a.selfRemove[eid]; ok {
			return a.errRemoving()
		}
		return api.Errorf(api.CodeUnavailable, "group has no usable epoch")
	}
	return nil
}

func (a *groupActor) sendPayload(p *appPayload, sm *store.Message) (pending bool, err error) {
	_, g := a.head()
	plain := p.marshal()
	if len(plain) > store.MaxTextLen {
		return false, api.Errorf(api.CodeInvalidArgument, "message of %d bytes is too long", len(plain))
	}
	out := store.OutboxEntry{Group: a.id, ID: store.MessageID(p.ID), State: store.OutboxPending,
		Epoch: g.Epoch(), Plaintext: plain, Created: a.n.cfg.Clock.Now()}
	tx := a.n.db.NewBatch()
	if err := tx.PutOutbox(out); err != nil {
		tx.Discard()
		return false, api.Errorf(api.CodeInternal, "outbox: %v", err)
	}
	if sm != nil {
		sm.Epoch = g.Epoch()
		if err := tx.AddMessage(*sm); err != nil {
			tx.Discard()
			return false, api.Errorf(api.CodeInternal, "outbox: %v", err)
		}
	}
	eid, ct, encErr := a.encryptInto(tx, plain, p.ID)
	if _, err := tx.Commit(); err != nil {
		if encErr == nil {
			a.dirty[eid] = true // the key is consumed in memory
		}
		return false, api.Errorf(api.CodeInternal, "outbox: %v", err)
	}
	if encErr != nil {
		a.log.Warn("send deferred", "err", encErr)
		return true, nil
	}
	a.published(eid, ct, p.ID)
	return false, nil
}

// applyOwn applies an own content payload locally, as every other member
// will when it arrives.
func (a *groupActor) applyOwn(p *appPayload) {
	_, g := a.head()
	if g == nil {
		return
	}
	a.onContent(p, a.n.selfID, g)
}

// findMessage resolves a message id (hex, or a unique prefix of at least
// 6 hex digits) in the group's view.
func (a *groupActor) findMessage(idText string) (store.Message, error) {
	idText = strings.ToLower(strings.TrimSpace(idText))
	if len(idText) < 6 || len(idText) > 32 {
		return store.Message{}, api.Errorf(api.CodeInvalidArgument, "message id %q: give the id that log shows (at least 6 hex digits)", idText)
	}
	if _, err := hex.DecodeString(idText[:len(idText)&^1]); err != nil {
		return store.Message{}, api.Errorf(api.CodeInvalidArgument, "message id %q is not hex", idText)
	}
	if len(idText) == 32 {
		raw, _ := hex.DecodeString(idText)
		m, err := a.n.db.Message(a.id, store.MessageID(raw))
		if errors.Is(err, store.ErrNotFound) {
			return store.Message{}, api.Errorf(api.CodeNotFound, "no message %s in group %q", idText, a.name)
		}
		if err != nil {
			return store.Message{}, api.Errorf(api.CodeInternal, "read message: %v", err)
		}
		return m, nil
	}
	all, err := a.n.db.Messages(a.id, time.Time{}, 1<<30)
	if err != nil {
		return store.Message{}, api.Errorf(api.CodeInternal, "read messages: %v", err)
	}
	var found []store.Message
	for _, m := range all {
		if strings.HasPrefix(hex.EncodeToString(m.ID[:]), idText) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return store.Message{}, api.Errorf(api.CodeNotFound, "no message %s in group %q", idText, a.name)
	case 1:
		return found[0], nil
	}
	return store.Message{}, api.Errorf(api.CodeInvalidArgument, "message id %s is ambiguous: give more digits", idText)
}

// resolveMentions finds the members named with @name in text: a name
// that matches exactly one member of the head epoch (case-insensitive) is
// a mention; others stay plain text.
func (a *groupActor) resolveMentions(text string) [][]byte {
	_, g := a.head()
	if g == nil || !strings.Contains(text, "@") {
		return nil
	}
	var out [][]byte
	for _, word := range strings.FieldsFunc(text, func(r rune) bool { return unicode.IsSpace(r) }) {
		if !strings.HasPrefix(word, "@") {
			continue
		}
		name := strings.TrimRightFunc(word[1:], func(r rune) bool { return unicode.IsPunct(r) && r != '-' && r != '_' })
		if name == "" {
			continue
		}
		var match []byte
		n := 0
		for _, m := range g.Members() {
			if id, err := parseIdentity(m.Identity); err == nil && strings.EqualFold(id.Name, name) {
				match, n = m.Identity, n+1
			}
		}
		if n == 1 && !containsID(out, match) && len(out) < maxMentions {
			out = append(out, match)
		}
	}
	return out
}

// Post implements api.Conversations.
func (n *Node) Post(ctx context.Context, req api.PostRequest) (api.Message, error) {
	if req.File != "" {
		return n.postFile(ctx, req)
	}
	if err := api.CheckText(req.Text); err != nil {
		return api.Message{}, err
	}
	a, err := n.lookup(req.Group)
	if err != nil {
		return api.Message{}, err
	}
	var out api.Message
	err = a.do(ctx, func() error {
		c := &content{Type: contentPost, Flags: contentVisible, Text: req.Text, Mentions: a.resolveMentions(req.Text)}
		if req.ReplyTo != "" {
			t, err := a.findMessage(req.ReplyTo)
			if err != nil {
				return err
			}
			c.HasTarget, c.Target = true, t.ID
		}
		out, err = a.postContent(c)
		return err
	})
	return out, err
}

// postContent sends a post and adds it to this device's view.
func (a *groupActor) postContent(c *content) (api.Message, error) {
	if err := a.canSend(); err != nil {
		return api.Message{}, err
	}
	p := &appPayload{Kind: kindContent, Time: a.n.cfg.Clock.Now().UTC(), Content: c}
	rand.Read(p.ID[:])
	sm := store.Message{Group: a.id, ID: store.MessageID(p.ID), Time: p.Time, Sender: a.n.selfID, Text: c.Text, Meta: postMeta(c), Extra: searchExtra(c)}
	pending, err := a.sendPayload(p, &sm)
	if err != nil {
		return api.Message{}, err
	}
	m := a.n.apiMessage(a, sm)
	m.Pending = pending
	a.n.emit(api.Event{Kind: api.EventMessage, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &m})
	return m, nil
}

// React implements api.Conversations.
func (n *Node) React(ctx context.Context, req api.ReactRequest) (api.Message, error) {
	e := strings.TrimSpace(req.Emoji)
	if e == "" || len(e) > maxEmoji || !utf8.ValidString(e) {
		return api.Message{}, api.Errorf(api.CodeInvalidArgument, "give one emoji (at most %d bytes)", maxEmoji)
	}
	return n.operate(ctx, req.Group, req.ID, func(a *groupActor, t store.Message) (*content, error) {
		if t.Flags&store.FlagDeleted != 0 {
			return nil, api.Errorf(api.CodeConflict, "that message was deleted")
		}
		return &content{Type: contentReact, Target: t.ID, Emoji: e, Remove: req.Remove}, nil
	})
}

// Edit implements api.Conversations.
func (n *Node) Edit(ctx context.Context, group, id, text string) (api.Message, error) {
	if err := api.CheckText(text); err != nil {
		return api.Message{}, err
	}
	return n.operate(ctx, group, id, func(a *groupActor, t store.Message) (*content, error) {
		if !bytes.Equal(t.Sender, n.selfID) {
			if _, err := n.db.MessageFrom(a.id, n.selfID, t.ID); err != nil {
				return nil, api.Errorf(api.CodeForbidden, "you can only edit your own messages")
			}
		}
		if t.Flags&store.FlagDeleted != 0 {
			return nil, api.Errorf(api.CodeConflict, "that message was deleted")
		}
		return &content{Type: contentEdit, Target: t.ID, Text: text, Mentions: a.resolveMentions(text)}, nil
	})
}

// Delete implements api.Conversations.
func (n *Node) Delete(ctx context.Context, group, id string) (api.Message, error) {
	return n.operate(ctx, group, id, func(a *groupActor, t store.Message) (*content, error) {
		if !bytes.Equal(t.Sender, n.selfID) && !a.isAdmin() {
			if _, err := n.db.MessageFrom(a.id, n.selfID, t.ID); err != nil {
				return nil, api.Errorf(api.CodeForbidden, "only its author or an admin can delete a message")
			}
		}
		if t.Flags&store.FlagDeleted != 0 {
			return nil, api.Errorf(api.CodeConflict, "that message was deleted already")
		}
		return &content{Type: contentDelete, Target: t.ID}, nil
	})
}

// operate resolves a target message, builds an operation on it, applies
// it here and sends it; it returns the target as it is then.
func (n *Node) operate(ctx context.Context, group, id string, build func(*groupActor, store.Message) (*content, error)) (api.Message, error) {
	a, err := n.lookup(group)
	if err != nil {
		return api.Message{}, err
	}
	var out api.Message
	err = a.do(ctx, func() error {
		if err := a.canSend(); err != nil {
			return err
		}
		t, err := a.findMessage(id)
		if err != nil {
			return err
		}
		if own, err := n.db.MessageFrom(a.id, n.selfID, t.ID); err == nil {
			t = own // the message of ours under that id, if any
		}
		c, err := build(a, t)
		if err != nil {
			return err
		}
		p := &appPayload{Kind: kindContent, Time: n.cfg.Clock.Now().UTC(), Content: c}
		rand.Read(p.ID[:])
		// Applied before it is sent: a delete purges the outbox entries
		// of what it deletes, and must not purge its own.
		a.applyOwn(p)
		if _, err := a.sendPayload(p, nil); err != nil {
			return err
		}
		cur, err := n.db.MessageFrom(a.id, t.Sender, t.ID)
		if err != nil {
			return api.Errorf(api.CodeInternal, "read message: %v", err)
		}
		out = n.apiMessage(a, cur)
		return nil
	})
	return out, err
}

// Typing implements api.Conversations: one application message, neither
// logged nor put in the outbox, so it is never stored or re-sent.
func (n *Node) Typing(ctx context.Context, group string) error {
	a, err := n.lookup(group)
	if err != nil {
		return err
	}
	return a.do(ctx, func() error {
		if err := a.canSend(); err != nil {
			return err
		}
		p := &appPayload{Kind: kindContent, Time: n.cfg.Clock.Now().UTC(), Content: &content{Type: contentTyping}}
		rand.Read(p.ID[:])
		eid, g := a.head()
		ct, err := g.ProtectApplication(p.marshal(), messageAD(eid), rand.Reader)
		if err != nil {
			return api.Errorf(api.CodeInternal, "encrypt: %v", err)
		}
		a.dirty[eid] = true // the consumed key is stored at the next flush
		a.markSeen(sha256.Sum256(ct))
		// Sealed in its epoch like every member message (epochseal.go);
		// publish is for a rejoin's external Commit only.
		return a.publishIn(eid, sealedMLS, ct)
	})
}

// SetReceipts implements api.Conversations.
func (n *Node) SetReceipts(ctx context.Context, on bool) error {
	var err error
	if on {
		err = n.db.DeleteSetting(receiptsOffSetting)
	} else {
		err = n.db.SetSetting(receiptsOffSetting, []byte{1})
	}
	if err != nil {
		return api.Errorf(api.CodeInternal, "save setting: %v", err)
	}
	return nil
}

func (n *Node) receiptsOn() bool {
	_, err := n.db.Setting(receiptsOffSetting)
	return errors.Is(err, store.ErrNotFound)
}

// onMarkRead runs when the user read a group: its mention count is reset
// and, unless this device opted out, a read receipt names the newest
// message from someone else.
func (n *Node) onMarkRead(a *groupActor) {
	n.resetMentions(a.hexID)
	if !n.receiptsOn() {
		return
	}
	a.post(func() {
		if a.canSend() != nil {
			return
		}
		ms, err := n.db.Messages(a.id, time.Time{}, 1<<30)
		if err != nil {
			return
		}
		for i := len(ms) - 1; i >= 0; i-- {
			if bytes.Equal(ms[i].Sender, n.selfID) {
				continue
			}
			p := &appPayload{Kind: kindContent, Time: n.cfg.Clock.Now().UTC(), Content: &content{Type: contentReceipt, Target: ms[i].ID}}
			rand.Read(p.ID[:])
			if err := a.encryptAndPublishIntent(p); err != nil {
				a.log.Debug("read receipt", "err", err)
			}
			return
		}
	})
}

// noteMention counts a message mentioning this device's user.
func (n *Node) noteMention(hexID string) {
	c := n.mentionCount(hexID) + 1
	if err := n.db.SetSetting(mentionsSetting(hexID), []byte(fmt.Sprint(c))); err != nil {
		n.log.Warn("save mention count", "err", err)
	}
}

func (n *Node) resetMentions(hexID string) {
	if err := n.db.DeleteSetting(mentionsSetting(hexID)); err != nil {
		n.log.Warn("reset mention count", "err", err)
	}
}

// mentionCount is the number of unread messages that mention this
// device's user in a group.
func (n *Node) mentionCount(hexID string) int {
	raw, err := n.db.Setting(mentionsSetting(hexID))
	if err != nil {
		return 0
	}
	var c int
	fmt.Sscan(string(raw), &c)
	return c
}

var _ api.Conversations = (*Node)(nil)

// editsBeforeOptimize is how many edits leave enough small posting blocks
// behind (each rewrite indexes one document alone) to merge them: 10,000
// edits unmerged made searches 3.8x slower than a fresh index of the same
// texts; merged and compacted they are as fast (store's
// BenchmarkSearchAfterEdits).
const editsBeforeOptimize = 500

// noteEdit counts a rewritten message and asks for a purge: the replaced
// text must leave the disk, and the purge loop merges the index after it.
func (n *Node) noteEdit() {
	n.edits.Add(1)
	n.requestPurge()
}

// optimizeAfterEdits merges the index's small blocks once enough edits
// made them; purgeLoop calls it after each purge.
func (n *Node) optimizeAfterEdits() {
	if n.edits.Load() < editsBeforeOptimize {
		return
	}
	n.edits.Store(0)
	if _, err := n.db.OptimizeIndex(n.ctx); err != nil && n.ctx.Err() == nil {
		n.log.Warn("optimise search index", "err", err)
	}
}

// resendPlaintext rebuilds the payload of an own message of the view for
// sending it again (after a cut or a rejoin, once its outbox entry is
// gone): a post keeps its reply target, mentions and file; a deleted
// message is not sent again (nil).
func resendPlaintext(m store.Message) []byte {
	if m.Flags&store.FlagDeleted != 0 {
		return nil
	}
	p := &appPayload{ID: m.ID, Kind: kindText, Time: m.Time, Text: m.Text}
	if len(m.Meta) > 0 {
		c, err := unmarshalContent(m.Meta)
		if err != nil {
			return nil
		}
		c.Text = m.Text
		p.Kind, p.Text, p.Content = kindContent, "", c
	}
	return p.marshal()
}

// searchExtra is what search finds of a post besides its text: its
// file's name.
func searchExtra(c *content) string {
	if c == nil || c.File == nil || len(c.File.Name) > store.MaxExtraLen {
		return ""
	}
	return c.File.Name
}

// adminIn reports whether identity is an admin in epoch g, by the rule
// isAdmin applies to this device (a group without an admin list lets
// every member administer it), so that a delete this device allows
// itself is one every member applies.
func adminIn(g *mls.Group, identity []byte) bool {
	admins := groupPolicy(g).Admins
	return len(admins) == 0 || slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, identity) })
}
