// The send path of a group's actor: send writes a message to the outbox
// and the view, encrypts it in the head epoch and publishes it
// (encryptInto, published); an entry no member heard stays for
// resendUnheard (unheard.go), a settled one lingers (dropSettled), and
// after a restart replayOutbox publishes every entry not yet settled.
// resend re-encrypts an entry commitorder asked for again; intents go out
// through encryptAndPublishIntent.

package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"grove/commitorder"
	"grove/node/api"
	"grove/store"
)

// publish sends an MLS message of no epoch we hold (a rejoin's external
// Commit) to the group's topic: sealed under the key a member sent with
// the GroupInfo it was made from (learnEpochKey) if we have it, else in
// the group's envelope only. Everything else goes sealed in its epoch
// (publishIn).
func (a *groupActor) publish(data []byte) error {
	if eid, ok := a.rejoinSealKey(data); ok {
		return a.publishIn(eid, sealedMLS, data)
	}
	return a.publishEnvelope(a.wire.seal(data))
}

// publishEnvelope sends an envelope (envelope.go) to the group's topic.
func (a *groupActor) publishEnvelope(env []byte) error {
	ctx, cancel := context.WithTimeout(a.n.ctx, 5*time.Second)
	defer cancel()
	err := a.n.net.Publish(ctx, a.wire.topic, env)
	if err != nil {
		a.log.Debug("publish", "err", err)
	}
	return err
}

func (a *groupActor) send(text string) (api.Message, error) {
	if a.phase == phaseRemoved {
		return api.Message{}, a.errRemoved()
	}
	if a.phase == phaseRejoining {
		return api.Message{}, api.Errorf(api.CodeConflict, "this device's state of the group lost to the rest of the group beyond the retention window: leave and be invited again")
	}
	p := &appPayload{Kind: kindText, Time: a.n.cfg.Clock.Now().UTC(), Text: text}
	rand.Read(p.ID[:])
	eid, g := a.head()
	if g == nil {
		if _, ok := a.selfRemove[eid]; ok {
			return api.Message{}, a.errRemoving()
		}
		return api.Message{}, api.Errorf(api.CodeUnavailable, "group has no usable epoch")
	}
	plain := p.marshal()
	out := store.OutboxEntry{Group: a.id, ID: store.MessageID(p.ID), State: store.OutboxPending,
		Epoch: g.Epoch(), Plaintext: plain, Created: a.n.cfg.Clock.Now()}
	sm := store.Message{Group: a.id, ID: store.MessageID(p.ID), Time: p.Time, Sender: a.n.selfID, Text: text, Epoch: g.Epoch()}
	// Durable first, in one synced batch before anything is published: the
	// outbox entry (once Send returns, a crash cannot lose the message),
	// the view record and, when it could be encrypted, the consumed sending
	// key and the ciphertext. encryptInto marks the entry sent.
	tx := a.n.db.NewBatch()
	if err := errors.Join(tx.PutOutbox(out), tx.AddMessage(sm)); err != nil {
		tx.Discard()
		return api.Message{}, api.Errorf(api.CodeInternal, "outbox: %v", err)
	}
	eid, ct, encErr := a.encryptInto(tx, plain, p.ID)
	if encErr != nil {
		if _, err := tx.Commit(); err != nil {
			return api.Message{}, api.Errorf(api.CodeInternal, "outbox: %v", err)
		}
		m := a.n.apiMessage(a, sm)
		a.n.emit(api.Event{Kind: api.EventMessage, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &m})
		m.Pending = true
		a.log.Warn("send deferred", "err", encErr)
		return m, nil
	}
	// Published before its writes are synced, and synced by Node.Send,
	// off the actor, before Send returns: the fsync (the slowest step,
	// tens of milliseconds when the disk is busy) delays neither the
	// deliveries of this message nor the actor's other work. A crash in
	// between cannot make this device reuse the sending key: the epoch
	// states it loads at the next start skip sendGenerationMargin
	// generations (skipSendGenerations), and unsyncedSends keeps fewer
	// than that unsynced.
	if a.unsyncedSends.Load() >= sendGenerationMargin/2 {
		if err := a.n.db.Sync(); err != nil {
			return api.Message{}, api.Errorf(api.CodeInternal, "outbox: %v", err)
		}
	}
	if _, err := tx.CommitNoSync(); err != nil {
		a.dirty[eid] = true // the key is consumed in memory
		return api.Message{}, api.Errorf(api.CodeInternal, "outbox: %v", err)
	}
	a.unsyncedSends.Add(1)
	a.published(eid, ct, p.ID)
	m := a.n.apiMessage(a, sm)
	a.n.emit(api.Event{Kind: api.EventMessage, Group: a.hexID, Time: a.n.cfg.Clock.Now(), Message: &m})
	return m, nil
}

// syncSend makes a message that send published durable, on the caller's
// goroutine (see send).
func (a *groupActor) syncSend() error {
	defer a.unsyncedSends.Add(-1)
	if err := a.n.db.Sync(); err != nil {
		return api.Errorf(api.CodeInternal, "outbox: %v", err)
	}
	return nil
}

// sendGenerationMargin is how many sending generations each epoch state
// skips when it is loaded (skipSendGenerations): more than a crash can
// have used without a durable trace. Send publishes before its writes are
// synced, and syncs inline first once half this many are unsynced
// (unsyncedSends); every other encrypting path writes synced before
// publishing. Receivers keep the keys of skipped generations
// (mls MaxSkippedKeys, 1000 in groupConfig), so each start costs every
// other member this many unused keys per epoch at most.
const sendGenerationMargin = 8

// skipSendGenerations moves this device's sending ratchet of every loaded
// epoch sendGenerationMargin generations on and stores the states (synced)
// before anything can be sent: a message published before a crash whose
// consumed key never reached the disk must not have its generation used
// again for another plaintext (AES-GCM nonce reuse; RFC 9420, Section
// 6.3.1's reuse guard makes it unlikely, not impossible, and receivers
// that consumed the key could not read the second message at all). An
// epoch in which this device cannot send is left as it is.
func (a *groupActor) skipSendGenerations() error {
	tx := a.n.db.NewBatch()
	for eid, g := range a.epochs {
		skipped := 0
		for range sendGenerationMargin {
			if _, err := g.ProtectApplication([]byte{0}, nil, rand.Reader); err != nil {
				break
			}
			skipped++
		}
		if skipped == 0 {
			continue
		}
		if err := a.persistTo(tx, eid); err != nil {
			tx.Discard()
			return err
		}
	}
	if _, err := tx.Commit(); err != nil {
		return fmt.Errorf("node: store skipped sending generations: %w", err)
	}
	return nil
}

// encryptAndPublish encrypts plaintext in the canonical epoch, persists the
// consumed sending key, logs the ciphertext and marks the outbox entry sent
// in one synced batch, then publishes it (see published for an entry whose
// publish reached no member).
func (a *groupActor) encryptAndPublish(plain []byte, id [16]byte) error {
	tx := a.n.db.NewBatch()
	eid, ct, err := a.encryptInto(tx, plain, id)
	if err != nil {
		tx.Discard()
		return err
	}
	if _, err := tx.Commit(); err != nil {
		a.dirty[eid] = true // the key is consumed in memory
		return fmt.Errorf("node: log: %w", err)
	}
	a.published(eid, ct, id)
	return nil
}

// encryptInto encrypts plaintext in the canonical epoch and adds to tx the
// epoch state with the consumed sending key, the ciphertext's log entry and
// the outbox entry's new state (sent in this epoch); nothing may be
// published before tx is committed. On error the ciphertext must not be
// published; what tx already holds (at most the epoch state) is still
// right to write.
func (a *groupActor) encryptInto(tx *store.Batch, plain []byte, id [16]byte) (commitorder.EpochID, []byte, error) {
	eid, g := a.head()
	if g == nil {
		return eid, nil, errors.New("node: no head epoch")
	}
	ct, err := g.ProtectApplication(plain, messageAD(eid), rand.Reader)
	if err != nil {
		return eid, nil, fmt.Errorf("node: encrypt: %w", err)
	}
	h := sha256.Sum256(ct)
	if err := errors.Join(a.persistTo(tx, eid),
		tx.AppendLog(a.id, g.Epoch(), store.MessageHash(h), ct),
		tx.SetOutboxState(a.id, store.MessageID(id), store.OutboxSent, g.Epoch())); err != nil {
		// The key is consumed in memory; the next persist writes it.
		a.dirty[eid] = true
		return eid, nil, err
	}
	a.noteFileSent(plain, id, g) // files_access.go
	return eid, ct, nil
}

// published publishes a ciphertext whose writes are durable and tells
// commitorder about the outbox entry. An entry whose publish reached no
// member is remembered as unheard (resendUnheard); its stored state says
// sent, which is fine: replayOutbox treats pending and sent entries alike.
func (a *groupActor) published(eid commitorder.EpochID, ct []byte, id [16]byte) {
	g := a.epochs[eid]
	a.markSeen(sha256.Sum256(ct))
	// (A group of one has nobody to reach: the entry settles as before.)
	alone := g == nil || len(g.Members()) < 2
	// A replay right after a restart is never taken as heard: our head
	// may be one the others have since left and deleted (they moved on
	// while we were down), so a message encrypted there may be readable
	// by nobody. It stays unheard until we have caught up with a member
	// and is then re-sent in the head (resendUnheard).
	heard := alone || (!a.replaying && a.gossipReach())
	// A publish our own topic check refused (the per-author rate limit
	// during a burst) went nowhere either: every member would refuse it
	// too, so it is kept and re-sent like one that reached nobody.
	if err := a.publishIn(eid, sealedMLS, ct); err != nil && !alone {
		heard = false
	}
	a.n.metrics.messagesOut.Add(1)
	if heard {
		delete(a.unheard, id)
	} else {
		// Before OutboxAdded: it may settle the entry at once (a head
		// that is already final), and the entry must outlive that.
		a.noteUnheard(id, g)
	}
	a.step(commitorder.OutboxAdded{ID: commitorder.MsgID(id), Eid: eid})
}

// resend re-encrypts an outbox entry in the canonical epoch under the same
// message id (commitorder decided the membership rule allows it).
func (a *groupActor) resend(id commitorder.MsgID) {
	e, err := a.n.db.Outbox(a.id, store.MessageID(id))
	if err != nil {
		return
	}
	a.n.db.SetMessageFlags(a.id, store.MessageID(id), store.FlagResent)
	if err := a.encryptAndPublish(e.Plaintext, id); err != nil {
		a.log.Warn("resend", "err", err)
	}
}

// replayOutbox re-sends, after a restart, every entry not yet settled:
// receivers deduplicate by message id, so a message that did go out before
// the crash is still shown once. Right after a start the mesh has usually
// not formed: what this publishes is then unheard, and resendUnheard sends
// it again once gossip reaches a member.
func (a *groupActor) replayOutbox() {
	if a.phase == phaseRemoved {
		return
	}
	entries, err := a.n.db.OutboxEntries(a.id, store.OutboxPending, store.OutboxSent)
	if err != nil {
		return
	}
	_, g := a.head()
	a.replaying = true
	defer func() { a.replaying = false }()
	for _, e := range entries {
		// Send writes the outbox before the view; a crash between the two
		// must not hide the message from its own sender.
		if p, err := unmarshalPayload(e.Plaintext); err == nil && p.Kind == kindText && g != nil {
			a.addToView(p, a.n.selfID, g.Epoch(), 0)
		} else if err == nil && p.Kind == kindContent && g != nil {
			a.onContent(p, a.n.selfID, g) // content.go; applying twice changes nothing
		}
		if err := a.encryptAndPublish(e.Plaintext, e.ID); err != nil {
			a.log.Warn("outbox replay", "err", err)
		}
	}
}

func (a *groupActor) encryptAndPublishIntent(p *appPayload) error {
	eid, g := a.head()
	ct, err := g.ProtectApplication(p.marshal(), messageAD(eid), rand.Reader)
	if err != nil {
		return api.Errorf(api.CodeInternal, "encrypt: %v", err)
	}
	if err := a.persist(eid); err != nil {
		return api.Errorf(api.CodeInternal, "persist: %v", err)
	}
	h := sha256.Sum256(ct)
	a.n.db.AppendLog(a.id, g.Epoch(), store.MessageHash(h), ct)
	a.publishIn(eid, sealedMLS, ct)
	return nil
}
