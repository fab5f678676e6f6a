package store

import "slices"

// DeleteGroup deletes everything the device holds about a group (metadata,
// epoch states and markers, log, outbox, view, search postings, dedup
// markers) and the named settings in one synced batch, so that a crash
// never leaves settings that belong to the group (the caller's per-group
// marks) behind a group that is gone, or the reverse. Settings that do not
// exist are not an error. Secrets stay on disk until PurgeDeleted.
func (db *DB) DeleteGroup(group []byte, settings ...string) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	for _, name := range settings {
		if err := checkSettingName(name); err != nil {
			return err
		}
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

	b := db.pdb.NewBatch()
	defer b.Close()
	ix := db.newIndexer(b)
	viewPrefix := newKey(spaceView, 1+len(group)).group(group)
	err = db.scan(viewPrefix, func(k, v []byte) error {
		m, doc, err := decodeMessageKeyed(k, v)
		if err != nil {
			return err
		}
		ix.remove(&m, doc)
		return nil
	})
	if err != nil {
		return err
	}
	for _, space := range []byte{spaceGroup, spaceEpochState, spaceEpochMark, spaceLog, spaceLogArrival, spaceOutbox, spaceView, spaceViewByID, spaceDedup, spaceContent} {
		p := newKey(space, 1+len(group)).group(group)
		r := keyRange{start: p, end: prefixEnd(p)}
		if space == spaceGroup {
			// The metadata key is exactly the prefix; group ids that extend
			// this one have a different length byte, so the range is exact.
			r.end = append(append([]byte(nil), p...), 0)
		}
		b.DeleteRange(r.start, r.end, nil)
		db.notePurge(b, r)
	}
	for _, name := range settings {
		k := settingKey(name)
		b.Delete(k, nil)
		db.notePurge(b, keyRange{k, append(slices.Clone(k), 0)})
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
