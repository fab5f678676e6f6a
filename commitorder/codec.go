package commitorder

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// Serialised state, version 3. Version 2 lacks the trailing foreign-since
// time (rejoin.go's case B wait), decoded as "not waiting"; version 1 also
// lacks the behind-since time before it and the "fresh" group flag (8),
// decoded as "not catching up" and "not fresh". Every collection is written in a canonical
// order (sorted by key, strictly increasing) and every integer as a minimal
// uvarint or fixed 8 bytes, and the decoder rejects anything else, so
// decode-then-encode reproduces the input byte for byte. Derived fields
// (parent pointers, children, the canonical marks) are not stored; they are
// rebuilt and must agree with the stored head. A history entry's class
// byte carries histLimited when the winning child was over its committer's
// rate limit (states written before the rate limit became a fork-choice
// demotion never set it: a limited commit could not win then).
const (
	codecMagic     = "GCO"
	codecVersion   = 3
	codecVersionV2 = 2
	codecVersionV1 = 1
	histLimited    = 0x80
)

// MarshalBinary encodes the whole state. The node stores it in the same
// batch as the effects it carried out, so a crash restores a consistent
// pair.
func (g *Group) MarshalBinary() ([]byte, error) {
	var w []byte
	w = append(w, codecMagic...)
	w = append(w, codecVersion)
	w = putBytes(w, []byte(g.self))
	w = binary.BigEndian.AppendUint64(w, uint64(g.now))
	w = append(w, g.root.eid[:]...)
	w = append(w, g.head.eid[:]...)

	nodes := make([]*node, 0, len(g.nodes))
	for _, n := range g.nodes {
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *node) int { return cmpEpochEid(a.epoch, a.eid, b.epoch, b.eid) })
	w = binary.AppendUvarint(w, uint64(len(nodes)))
	for _, n := range nodes {
		w = append(w, n.eid[:]...)
		w = append(w, n.parent[:]...)
		w = binary.AppendUvarint(w, n.epoch)
		w = append(w, n.cid[:]...)
		w = append(w, byte(n.class))
		w = putBytes(w, []byte(n.committer))
		w = putMembers(w, n.members)
		w = putMembers(w, n.admins)
		w = putMembers(w, n.recent)
		w = binary.BigEndian.AppendUint64(w, uint64(n.seenAt))
		var flags byte
		if n.mlsValid {
			flags |= 1
		}
		if n.own {
			flags |= 2
		}
		if n.welcome {
			flags |= 4
		}
		w = append(w, flags)
		w = binary.AppendUvarint(w, uint64(len(n.intents)))
		for _, id := range n.intents {
			w = append(w, id[:]...)
		}
	}

	w = putEvidence(w, g.acts)
	w = putEvidence(w, g.proofs)

	claimants := make([]MemberID, 0, len(g.claims))
	for m := range g.claims {
		claimants = append(claimants, m)
	}
	slices.Sort(claimants)
	w = binary.AppendUvarint(w, uint64(len(claimants)))
	for _, m := range claimants {
		w = putBytes(w, []byte(m))
		cl := g.claims[m]
		w = append(w, cl.eid[:]...)
		w = binary.AppendUvarint(w, cl.epoch)
		w = binary.BigEndian.AppendUint64(w, uint64(cl.at))
	}

	held := make([]*heldCommit, 0, len(g.held))
	for _, h := range g.held {
		held = append(held, h)
	}
	slices.SortFunc(held, func(a, b *heldCommit) int { return bytes.Compare(a.cid[:], b.cid[:]) })
	w = binary.AppendUvarint(w, uint64(len(held)))
	for _, h := range held {
		w = append(w, h.cid[:]...)
		w = append(w, h.parent[:]...)
		w = binary.AppendUvarint(w, h.parentEpoch)
		w = binary.BigEndian.AppendUint64(w, uint64(h.askedAt))
	}

	w = binary.AppendUvarint(w, uint64(len(g.history)))
	for _, h := range g.history {
		w = append(w, h.eid[:]...)
		w = binary.AppendUvarint(w, h.epoch)
		cl := byte(h.child.class)
		if h.child.limited {
			cl |= histLimited
		}
		w = append(w, cl)
		w = append(w, h.child.rank[:]...)
		w = append(w, h.child.cid[:]...)
	}

	msgs := make([]MsgID, 0, len(g.outbox))
	for id := range g.outbox {
		msgs = append(msgs, id)
	}
	sortMsgIDs(msgs)
	w = binary.AppendUvarint(w, uint64(len(msgs)))
	for _, id := range msgs {
		w = append(w, id[:]...)
		o := g.outbox[id]
		w = binary.AppendUvarint(w, uint64(len(o.copies)))
		for _, e := range o.copies {
			w = append(w, e[:]...)
		}
	}

	w = binary.AppendUvarint(w, uint64(len(g.queue)))
	for _, q := range g.queue {
		w = append(w, q.id[:]...)
		w = append(w, byte(q.class))
	}
	if g.prop == nil {
		w = append(w, 0)
	} else {
		w = append(w, 1)
		w = append(w, g.prop.parent[:]...)
		w = binary.BigEndian.AppendUint64(w, uint64(g.prop.at))
		w = binary.AppendUvarint(w, uint64(len(g.prop.intents)))
		for _, q := range g.prop.intents {
			w = append(w, q.id[:]...)
			w = append(w, byte(q.class))
		}
	}
	w = binary.BigEndian.AppendUint64(w, uint64(g.witnessedAt))
	w = binary.BigEndian.AppendUint64(w, uint64(g.headSince))
	w = binary.BigEndian.AppendUint64(w, uint64(g.wonAt))
	w = binary.BigEndian.AppendUint64(w, uint64(g.lastRange))
	var flags byte
	if g.lost {
		flags |= 1
	}
	if g.done {
		flags |= 2
	}
	if g.diverged {
		flags |= 4
	}
	if g.fresh {
		flags |= 8 // version 2
	}
	w = append(w, flags)
	w = binary.AppendUvarint(w, g.lostEpoch)
	w = binary.BigEndian.AppendUint64(w, uint64(g.behindSince)) // version 2
	w = binary.BigEndian.AppendUint64(w, uint64(g.foreignAt))   // version 3
	return w, nil
}

func putEvidence(w []byte, ev map[MemberID]map[EpochID]uint64) []byte {
	members := make([]MemberID, 0, len(ev))
	for m := range ev {
		members = append(members, m)
	}
	slices.Sort(members)
	w = binary.AppendUvarint(w, uint64(len(members)))
	for _, m := range members {
		w = putBytes(w, []byte(m))
		a := ev[m]
		eids := make([]EpochID, 0, len(a))
		for e := range a {
			eids = append(eids, e)
		}
		slices.SortFunc(eids, func(x, y EpochID) int { return bytes.Compare(x[:], y[:]) })
		w = binary.AppendUvarint(w, uint64(len(eids)))
		for _, e := range eids {
			w = append(w, e[:]...)
			w = binary.AppendUvarint(w, a[e])
		}
	}
	return w
}

func cmpEpochEid(ea uint64, a EpochID, eb uint64, b EpochID) int {
	switch {
	case ea < eb:
		return -1
	case ea > eb:
		return 1
	}
	return bytes.Compare(a[:], b[:])
}

func putBytes(w, b []byte) []byte {
	w = binary.AppendUvarint(w, uint64(len(b)))
	return append(w, b...)
}

// putMembers writes a list in its given order (members and admins are
// sorted sets; recent is a sequence).
func putMembers(w []byte, ms []MemberID) []byte {
	w = binary.AppendUvarint(w, uint64(len(ms)))
	for _, m := range ms {
		w = putBytes(w, []byte(m))
	}
	return w
}

// Unmarshal decodes a state written by MarshalBinary, for a group running
// with cfg (which is not stored: it is the node's configuration).
func Unmarshal(cfg Config, data []byte) (*Group, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := decode(cfg, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return g, nil
}

// UnmarshalBinary replaces g's state with the decoded one, keeping g's
// config (defaults if g is the zero value). On error g is unchanged.
func (g *Group) UnmarshalBinary(data []byte) error {
	ng, err := Unmarshal(g.cfg, data)
	if err != nil {
		return err
	}
	*g = *ng
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("bad %s", what)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	// Reject non-minimal encodings so re-encoding is byte-exact.
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a collection length, bounded by what the remaining bytes can
// hold, so hostile lengths cannot make us allocate.
func (r *reader) count(minSize int, what string) int {
	v := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if v > uint64(len(r.b)/minSize) {
		r.fail(what)
		return 0
	}
	return int(v)
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) byte1(what string) byte {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) eid(what string) (e EpochID) {
	copy(e[:], r.take(16, what))
	return e
}

func (r *reader) id32(what string) (c [32]byte) {
	copy(c[:], r.take(32, what))
	return c
}

func (r *reader) str(what string) string {
	n := r.count(1, what)
	return string(r.take(n, what))
}

// members reads a list; sorted demands a strictly increasing non-empty
// set (members, admins), otherwise any non-empty identities (recent).
func (r *reader) members(sorted bool, what string) []MemberID {
	n := r.count(1, what)
	if n == 0 || r.err != nil {
		return nil
	}
	out := make([]MemberID, 0, n)
	for range n {
		m := MemberID(r.str(what))
		if r.err != nil {
			return nil
		}
		if m == "" || (sorted && len(out) > 0 && out[len(out)-1] >= m) {
			r.fail(what)
			return nil
		}
		out = append(out, m)
	}
	return out
}

// evidence decodes an acts or proofs map; proofs may name retained epochs
// only.
func (r *reader) evidence(g *Group, into map[MemberID]map[EpochID]uint64, knownOnly bool) error {
	na := r.count(2, "evidence")
	var prevM MemberID
	for i := range na {
		m := MemberID(r.str("evidence member"))
		if r.err != nil {
			return r.err
		}
		if m == "" || (i > 0 && m <= prevM) {
			return fmt.Errorf("evidence out of order")
		}
		prevM = m
		ne := r.count(17, "evidence eids")
		if ne == 0 {
			return fmt.Errorf("empty evidence")
		}
		a := make(map[EpochID]uint64, ne)
		var pe EpochID
		for j := range ne {
			e := r.eid("evidence eid")
			ep := r.uvarint("evidence epoch")
			if r.err != nil {
				return r.err
			}
			if j > 0 && bytes.Compare(pe[:], e[:]) >= 0 {
				return fmt.Errorf("evidence eids out of order")
			}
			n := g.nodes[e]
			if (n != nil && n.epoch != ep) || (knownOnly && n == nil) {
				return fmt.Errorf("evidence epoch mismatch")
			}
			pe = e
			a[e] = ep
		}
		into[m] = a
	}
	return nil
}

func decode(cfg Config, data []byte) (*Group, error) {
	r := &reader{b: data}
	if string(r.take(3, "magic")) != codecMagic {
		return nil, fmt.Errorf("bad magic")
	}
	version := r.byte1("version")
	if version != codecVersion && version != codecVersionV2 && version != codecVersionV1 {
		return nil, fmt.Errorf("unsupported version %d", version)
	}
	self := MemberID(r.str("self"))
	if self == "" {
		r.fail("self")
	}
	g := newEmpty(cfg, self)
	g.now = int64(r.u64("now"))
	rootEid, headEid := r.eid("root"), r.eid("head")

	nn := r.count(16+16+1+32+1+1+1+1+1+8+1+1, "node count")
	var prevEpoch uint64
	var prevEid EpochID
	for i := range nn {
		n := &node{}
		n.eid, n.parent = r.eid("eid"), r.eid("parent")
		n.epoch = r.uvarint("epoch")
		n.cid = r.id32("cid")
		n.class = Class(r.byte1("class"))
		n.committer = MemberID(r.str("committer"))
		n.members = r.members(true, "members")
		n.admins = r.members(true, "admins")
		n.recent = r.members(false, "recent")
		n.seenAt = int64(r.u64("seen"))
		flags := r.byte1("flags")
		ni := r.count(16, "intents")
		for range ni {
			var id IntentID
			copy(id[:], r.take(16, "intent"))
			n.intents = append(n.intents, id)
		}
		if r.err != nil {
			return nil, r.err
		}
		if flags&^7 != 0 || !n.class.valid() || (flags&2 == 0 && (flags&4 != 0 || ni != 0)) {
			return nil, fmt.Errorf("bad node flags")
		}
		if i > 0 && cmpEpochEid(prevEpoch, prevEid, n.epoch, n.eid) >= 0 {
			return nil, fmt.Errorf("nodes out of order")
		}
		prevEpoch, prevEid = n.epoch, n.eid
		n.mlsValid, n.own, n.welcome = flags&1 != 0, flags&2 != 0, flags&4 != 0
		if n.committer != "" {
			n.rank = RankOf(n.parent, n.committer)
		}
		g.nodes[n.eid] = n
	}
	g.root, g.head = g.nodes[rootEid], g.nodes[headEid]
	if g.root == nil || g.head == nil || len(g.root.members) == 0 {
		return nil, fmt.Errorf("root or head missing")
	}
	// Link parents in node order (by epoch), so children lists are
	// deterministic.
	order := make([]*node, 0, len(g.nodes))
	for _, n := range g.nodes {
		order = append(order, n)
	}
	slices.SortFunc(order, func(a, b *node) int { return cmpEpochEid(a.epoch, a.eid, b.epoch, b.eid) })
	for _, n := range order {
		if n == g.root {
			continue
		}
		p := g.nodes[n.parent]
		if p == nil || p.epoch+1 != n.epoch || n.committer == "" || (len(n.recent) == 0 && !addsMember(p.members, n.members)) || len(n.recent) > 255 {
			return nil, fmt.Errorf("node %v detached", n.eid)
		}
		n.up = p
		p.children = append(p.children, n)
		n.limited = g.overLimit(p, n.committer, n.class)
	}

	if err := r.evidence(g, g.acts, false); err != nil {
		return nil, err
	}
	if err := r.evidence(g, g.proofs, true); err != nil {
		return nil, err
	}
	var prevM MemberID
	nc := r.count(2+16+1+8, "claims")
	prevM = ""
	for i := range nc {
		m := MemberID(r.str("claimant"))
		e := r.eid("claim eid")
		ep := r.uvarint("claim epoch")
		at := int64(r.u64("claim time"))
		if r.err != nil {
			return nil, r.err
		}
		if m == "" || (i > 0 && m <= prevM) || m == self {
			return nil, fmt.Errorf("claims out of order")
		}
		if n := g.nodes[e]; n != nil && n.epoch != ep {
			return nil, fmt.Errorf("claim epoch mismatch")
		}
		prevM = m
		g.claims[m] = claim{e, ep, at}
	}

	nh := r.count(32+16+1+8, "held")
	var prevCid CommitID
	for i := range nh {
		h := &heldCommit{}
		h.cid = r.id32("held cid")
		h.parent = r.eid("held parent")
		h.parentEpoch = r.uvarint("held epoch")
		h.askedAt = int64(r.u64("held asked"))
		if r.err != nil {
			return nil, r.err
		}
		if (i > 0 && bytes.Compare(prevCid[:], h.cid[:]) >= 0) || g.nodes[h.parent] != nil {
			return nil, fmt.Errorf("bad held commit")
		}
		prevCid = h.cid
		g.held[h.cid] = h
	}

	nhist := r.count(16+1+1+32+32, "history")
	for range nhist {
		var h histEntry
		h.eid = r.eid("hist eid")
		h.epoch = r.uvarint("hist epoch")
		cl := r.byte1("hist class")
		h.child.limited, h.child.class = cl&histLimited != 0, Class(cl&^histLimited)
		h.child.rank = r.id32("hist rank")
		h.child.cid = r.id32("hist cid")
		if r.err != nil {
			return nil, r.err
		}
		if !h.child.class.valid() {
			return nil, fmt.Errorf("bad history class")
		}
		g.history = append(g.history, h)
	}

	no := r.count(17, "outbox")
	var prevMsg MsgID
	for i := range no {
		var id MsgID
		copy(id[:], r.take(16, "msg id"))
		nc := r.count(16, "copies")
		if r.err != nil {
			return nil, r.err
		}
		if (i > 0 && bytes.Compare(prevMsg[:], id[:]) >= 0) || nc == 0 {
			return nil, fmt.Errorf("bad outbox entry")
		}
		prevMsg = id
		o := &outEntry{}
		for range nc {
			e := r.eid("copy")
			if r.err != nil {
				return nil, r.err
			}
			if g.nodes[e] == nil || slices.Contains(o.copies, e) {
				return nil, fmt.Errorf("bad outbox copy")
			}
			o.copies = append(o.copies, e)
		}
		g.outbox[id] = o
	}

	nq := r.count(17, "queue")
	for range nq {
		var q queuedIntent
		copy(q.id[:], r.take(16, "queued intent"))
		q.class = Class(r.byte1("queued class"))
		if r.err != nil {
			return nil, r.err
		}
		if !q.class.valid() {
			return nil, fmt.Errorf("bad queued class")
		}
		g.queue = append(g.queue, q)
	}
	switch r.byte1("proposal flag") {
	case 0:
	case 1:
		p := &proposal{}
		p.parent = r.eid("proposal parent")
		p.at = int64(r.u64("proposal time"))
		np := r.count(17, "proposal intents")
		for range np {
			var q queuedIntent
			copy(q.id[:], r.take(16, "proposal intent"))
			q.class = Class(r.byte1("proposal class"))
			if r.err == nil && !q.class.valid() {
				r.fail("proposal class")
			}
			p.intents = append(p.intents, q)
		}
		g.prop = p
	default:
		r.fail("proposal flag")
	}
	g.witnessedAt = int64(r.u64("witnessed at"))
	g.headSince = int64(r.u64("head since"))
	g.wonAt = int64(r.u64("won at"))
	g.lastRange = int64(r.u64("last range"))
	flags := r.byte1("flags")
	g.lostEpoch = r.uvarint("lost epoch")
	if version >= 2 {
		g.behindSince = int64(r.u64("behind since"))
	}
	if version >= 3 {
		g.foreignAt = int64(r.u64("foreign since"))
	}
	if r.err != nil {
		return nil, r.err
	}
	known := byte(15)
	if version == codecVersionV1 {
		known = 7
	}
	if flags&^known != 0 || (flags&1 == 0 && g.lostEpoch != 0) {
		return nil, fmt.Errorf("bad group flags")
	}
	g.lost, g.done, g.diverged, g.fresh = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if len(g.held) > cfg.MaxHeld || len(g.history) > cfg.History {
		return nil, fmt.Errorf("collections exceed configured bounds")
	}
	// Rebuild the canonical marks; the stored head must be the fork-choice
	// tip, and the structure must hold every invariant.
	if n := g.canonicalTip(); n != g.head {
		return nil, fmt.Errorf("stored head is not the fork-choice tip")
	}
	if err := g.checkStructure(); err != nil {
		return nil, err
	}
	return g, nil
}
