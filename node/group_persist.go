// What a group's actor writes about its own state: commitorder's state
// (saveOrder at once, or with the next flush when only evidence changed),
// epoch states (persist, persistTo; flush for epochs whose receive keys
// were consumed), and the group's floor (loadFloor, setFloor). Writes of
// received messages are batched with flush's sync (durable.go).

package node

import (
	"encoding/binary"
	"fmt"

	"grove/commitorder"
	"grove/store"
)

func (a *groupActor) saveOrder() {
	a.orderDirty = false
	data, err := a.co.MarshalBinary()
	if err != nil {
		a.log.Error("marshal commit order", "err", err)
		return
	}
	if err := a.n.db.PutGroup(a.id, store.GroupMeta{Name: a.name, Created: a.created, Data: data}); err != nil {
		a.log.Error("save group", "err", err)
	}
}

// persist writes an epoch's MLS state at once (own sends: a sending key
// generation must never be reused after a crash).
func (a *groupActor) persist(eid commitorder.EpochID) error {
	tx := a.n.db.NewBatch()
	if err := a.persistTo(tx, eid); err != nil {
		return err
	}
	_, err := tx.Commit()
	return err
}

// persistTo adds an epoch's MLS state to tx, to be written with the writes
// that depend on it.
func (a *groupActor) persistTo(tx *store.Batch, eid commitorder.EpochID) error {
	g := a.epochs[eid]
	if g == nil {
		return nil
	}
	data, err := g.MarshalBinary()
	if err != nil {
		return fmt.Errorf("node: marshal epoch state: %w", err)
	}
	defer clear(data) // tx holds its own copy
	delete(a.dirty, eid)
	// Its sealing key outlives the state (epochKey): derived while we
	// can.
	a.epochKey(eid, g)
	return tx.PutEpochState(a.id, store.EpochState{EID: store.EpochID(eid), Epoch: g.Epoch(), State: data})
}

// flush persists epochs whose receive keys were consumed since the last
// write and the commit order's evidence, then makes them and the received
// messages stored since the last flush durable, all with one sync (see
// deferredWrites). Losing these on a crash only means a message could be
// decrypted once more (and is then deduplicated by id).
func (a *groupActor) flush() {
	tx := a.n.db.NewBatch()
	var eids []commitorder.EpochID
	for eid := range a.dirty {
		if err := a.persistTo(tx, eid); err != nil {
			a.log.Warn("persist epoch", "err", err)
			continue
		}
		eids = append(eids, eid)
	}
	order := a.orderDirty && a.phase != phaseRemoved
	if order {
		a.orderDirty = false
		data, err := a.co.MarshalBinary()
		if err != nil {
			a.log.Error("marshal commit order", "err", err)
		} else if err := tx.PutGroup(a.id, store.GroupMeta{Name: a.name, Created: a.created, Data: data}); err != nil {
			a.log.Error("save group", "err", err)
		}
	}
	if tx.Len() > 0 {
		if _, err := tx.CommitNoSync(); err != nil {
			a.log.Warn("persist epochs", "err", err)
			for _, eid := range eids {
				a.dirty[eid] = true
			}
			a.orderDirty = a.orderDirty || order
		} else {
			a.writes.unsynced = true
		}
	} else {
		tx.Discard()
	}
	// The unread count's write is synced: when there is one, it covers
	// everything above.
	if a.n.saveUnread(a.hexID) {
		a.writes.unsynced = false
	}
	a.syncWrites()
}

func floorSetting(hexID string) string { return "group-floor/" + hexID }

// loadFloor reads the group's floor, or records the current root as the
// floor the first time (right after a join the root is the joined epoch).
func (a *groupActor) loadFloor() {
	if a.phase == phaseRemoved {
		return
	}
	if v, err := a.n.db.Setting(floorSetting(a.hexID)); err == nil && len(v) == 8 {
		a.floor = binary.BigEndian.Uint64(v)
		return
	}
	_, root := a.co.Root()
	a.setFloor(root)
}

func (a *groupActor) setFloor(epoch uint64) {
	a.floor = epoch
	if err := a.n.db.SetSetting(floorSetting(a.hexID), binary.BigEndian.AppendUint64(nil, epoch)); err != nil {
		a.log.Warn("save group floor", "err", err)
	}
}
