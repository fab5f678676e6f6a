// Who may fetch a file's chunks (issue 21): the members of an epoch in
// which the post carrying the file's key was sent. Each device records,
// per file, the peers of the members of every epoch it saw the post in
// (the one it was sent in; another after a fork rollback re-sent it), in
// one setting per group, and serves a file's chunks only to a peer in
// that record that is also a member now. A member who joined later never
// held the key; it is refused with a chunkRefused frame and
// ErrFileNotAllowed, as is a request naming chunks of no such file.

package node

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/mls"
	"grove/store"
)

func fileAccessSetting(hexID string) string { return "fileaccess." + hexID }

// fileAccess maps the id of a message carrying a file to the peers that
// may fetch its chunks.
type fileAccess map[[16]byte]map[peer.ID]bool

const maxAccessPeers = 1 << 16

func (fa fileAccess) marshal() []byte {
	ids := make([][16]byte, 0, len(fa))
	for id := range fa {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	var w wbuf
	for _, id := range ids {
		w.raw(id[:])
		ps := make([]string, 0, len(fa[id]))
		for p := range fa[id] {
			ps = append(ps, string(p))
		}
		slices.Sort(ps)
		w.u64(uint64(len(ps)))
		for _, p := range ps {
			w.vec([]byte(p))
		}
	}
	return w.b
}

func unmarshalFileAccess(data []byte) (fileAccess, error) {
	fa := fileAccess{}
	r := rbuf{b: data}
	for r.err == nil && len(r.b) > 0 {
		id := [16]byte(r.fixed(16, "file id"))
		k := r.u64("peer count")
		if r.err == nil && k > maxAccessPeers {
			r.fail("peer count")
		}
		set := map[peer.ID]bool{}
		for i := uint64(0); i < k && r.err == nil; i++ {
			set[peer.ID(r.vec(256, "peer"))] = true
		}
		fa[id] = set
	}
	if err := r.done("file access"); err != nil {
		return nil, err
	}
	return fa, nil
}

// fileAccess reads the group's record; a damaged one serves nobody.
func (a *groupActor) fileAccess() fileAccess {
	raw, err := a.n.db.Setting(fileAccessSetting(a.hexID))
	if err != nil {
		return fileAccess{}
	}
	fa, err := unmarshalFileAccess(raw)
	if err != nil {
		a.log.Warn("file access record", "err", err)
		return fileAccess{}
	}
	return fa
}

func (a *groupActor) saveFileAccess(fa fileAccess) {
	var err error
	if len(fa) == 0 {
		err = a.n.db.DeleteSetting(fileAccessSetting(a.hexID))
	} else {
		err = a.n.db.SetSetting(fileAccessSetting(a.hexID), fa.marshal())
	}
	if err != nil {
		a.log.Warn("save file access record", "err", err)
	}
}

// recordFileAccess notes that the post id carrying a file's key was sent
// in epoch g: its members may fetch the file.
func (a *groupActor) recordFileAccess(id [16]byte, g *mls.Group) {
	fa := a.fileAccess()
	set := fa[id]
	if set == nil {
		set = map[peer.ID]bool{}
		fa[id] = set
	}
	added := false
	for _, m := range g.Members() {
		if pid, err := parseIdentity(m.Identity); err == nil && !set[pid.Peer] {
			set[pid.Peer], added = true, true
		}
	}
	if added {
		a.saveFileAccess(fa)
	}
}

// forgetFileAccess drops the record of a deleted file.
func (a *groupActor) forgetFileAccess(id [16]byte) {
	fa := a.fileAccess()
	if _, ok := fa[id]; ok {
		delete(fa, id)
		a.saveFileAccess(fa)
	}
}

// checkFileAccess decides a chunk request from p (a member of the
// canonical epoch): every chunk asked must belong to a file whose key p
// received (version 2 requests name the file; version 1 requests are
// checked against every file p may fetch).
func (a *groupActor) checkFileAccess(p peer.ID, req *fileRequest) error {
	fa := a.fileAccess()
	var files [][16]byte
	if req.Version == fileReqVersion1 {
		for id, set := range fa {
			if set[p] {
				files = append(files, id)
			}
		}
	} else {
		set := fa[req.File]
		if set == nil {
			set = a.legacyFileAccess(req.File)
		}
		if !set[p] {
			return fmt.Errorf("%w: %s asked for file %x", ErrFileNotAllowed, p, req.File[:4])
		}
		files = [][16]byte{req.File}
	}
	allowed := map[[fileHashLen]byte]bool{}
	for _, id := range files {
		m, err := a.n.db.Message(a.id, store.MessageID(id))
		if err != nil {
			continue
		}
		if f := fileOf(m); f != nil {
			for _, name := range f.chunkNames() {
				allowed[name] = true
			}
		}
	}
	for _, c := range req.Chunks {
		if !allowed[c] {
			return fmt.Errorf("%w: %s asked for chunk %x of no file it may fetch", ErrFileNotAllowed, p, c[:4])
		}
	}
	return nil
}

// legacyFileAccess is who may fetch a file this device holds no record
// for (received before records were kept): the members of the retained
// epochs numbered as the one the message was stored in; nobody once
// those are gone.
func (a *groupActor) legacyFileAccess(id [16]byte) map[peer.ID]bool {
	m, err := a.n.db.Message(a.id, store.MessageID(id))
	if err != nil || fileOf(m) == nil {
		return nil
	}
	set := map[peer.ID]bool{}
	for _, g := range a.epochs {
		if g.Epoch() != m.Epoch {
			continue
		}
		for _, mb := range g.Members() {
			if pid, err := parseIdentity(mb.Identity); err == nil {
				set[pid.Peer] = true
			}
		}
	}
	return set
}

// fileAccessPeers lists the peers that may fetch the file of message id,
// or nil when this device holds no record of it.
func (a *groupActor) fileAccessPeers(id [16]byte) map[peer.ID]bool {
	return a.fileAccess()[id]
}

// noteFileSent records the members of g as allowed to fetch the file of
// an own post encrypted in g (sent first, or re-sent after a rollback or
// to members it did not reach).
func (a *groupActor) noteFileSent(plain []byte, id [16]byte, g *mls.Group) {
	if len(plain) < 2 || payloadKind(plain[1]) != kindContent {
		return
	}
	p, err := unmarshalPayload(plain)
	if err != nil || p.Content == nil || p.Content.Type != contentPost || p.Content.File == nil {
		return
	}
	a.recordFileAccess(id, g)
}
