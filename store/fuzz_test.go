package store

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// Each fuzz target feeds arbitrary bytes to one record decoder: it must never
// panic, and whatever it accepts must re-encode to exactly the same bytes
// (one encoding per value, so a forged alternative encoding is rejected).

func roundTrip(t *testing.T, in []byte, err error, out []byte) {
	t.Helper()
	if err != nil {
		return
	}
	if !bytes.Equal(in, out) {
		t.Fatalf("decode/encode mismatch:\n in  %x\n out %x", in, out)
	}
}

func FuzzGroupMeta(f *testing.F) {
	f.Add(encodeGroupMeta(GroupMeta{Name: "n", Created: time.Unix(5, 6), Data: []byte{1}}))
	f.Add(encodeGroupMeta(GroupMeta{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeGroupMeta(b)
		roundTrip(t, b, err, encodeGroupMeta(m))
	})
}

func FuzzEpochState(f *testing.F) {
	f.Add(encodeEpochState(EpochState{EID: eid(1), Epoch: 300, State: []byte("state")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeEpochState(b)
		roundTrip(t, b, err, encodeEpochState(s))
	})
}

func FuzzEpochMarker(f *testing.F) {
	f.Add(encodeEpochMarker(EpochMarker{EID: eid(2), Epoch: 1, Mark: MarkFinal, At: time.Unix(1, 0)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeEpochMarker(b)
		roundTrip(t, b, err, encodeEpochMarker(m))
	})
}

func FuzzLogEntry(f *testing.F) {
	f.Add(encodeLogEntry(7, time.Unix(9, 9), []byte("mls")))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e LogEntry
		err := decodeLogEntryInto(&e, b)
		roundTrip(t, b, err, encodeLogEntry(e.Seq, e.Arrived, e.Message))
	})
}

func FuzzLogRef(f *testing.F) {
	f.Add(encodeLogRef(3, hash(4), time.Unix(0, -5)))
	f.Fuzz(func(t *testing.T, b []byte) {
		epoch, h, at, err := decodeLogRef(b)
		roundTrip(t, b, err, encodeLogRef(epoch, h, at))
	})
}

func FuzzOutbox(f *testing.F) {
	f.Add(encodeOutbox(OutboxEntry{State: OutboxSent, Epoch: 4, Plaintext: []byte("hi"), Created: time.Unix(3, 0)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeOutbox(b)
		roundTrip(t, b, err, encodeOutbox(o))
	})
}

func FuzzMessage(f *testing.F) {
	m := msg(g1, 1, time.Unix(1, 0), "ann", "héllo wörld 東京")
	m.Flags = FlagResent
	f.Add(encodeMessage(&m, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, doc, err := decodeMessage(b)
		roundTrip(t, b, err, encodeMessage(&m, doc))
	})
}

func FuzzMessageV1(f *testing.F) {
	e := newEncV(1, 16)
	e.bytes([]byte("ann"))
	e.bytes([]byte("text"))
	e.uvarint(1)
	e.uvarint(2)
	f.Add(e.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessageV1(b)
		if err != nil {
			return
		}
		e := newEncV(1, 16)
		e.bytes(m.Sender)
		e.bytes([]byte(m.Text))
		e.uvarint(m.Epoch)
		e.uvarint(uint64(m.Flags))
		roundTrip(t, b, nil, e.b)
	})
}

func FuzzPostingBlock(f *testing.F) {
	f.Add(encodeBlock(10, []blockEntry{{doc: 10, dl: 12, tf: 3, pos: []uint32{0, 3, 9}}, {doc: 14, dl: 6, tf: 1, pos: []uint32{5}}}), uint64(10))
	f.Add(encodeBlock(1, []blockEntry{{doc: 3, dl: 1, tf: 1, pos: []uint32{0}}}), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, first uint64) {
		var entries []blockEntry
		err := decodeBlock(b, first, func(e blockEntry) error {
			if int(e.tf) != len(e.pos) || e.doc < first {
				t.Fatalf("bad entry %+v", e)
			}
			e.pos = slices.Clone(e.pos)
			entries = append(entries, e)
			return nil
		})
		fast, _, ferr := appendBlockPostings(nil, b, first)
		if err == nil {
			roundTrip(t, b, nil, encodeBlock(first, entries))
			if ferr != nil || len(fast) != len(entries) {
				t.Fatalf("fast decode disagrees: %v, %d entries vs %d", ferr, len(fast), len(entries))
			}
			for i, p := range fast {
				if p.doc != entries[i].doc || p.tf != entries[i].tf || p.dl != entries[i].dl {
					t.Fatalf("fast decode entry %d = %+v, want %+v", i, p, entries[i])
				}
			}
		}
	})
}

func FuzzIndexStats(f *testing.F) {
	f.Add(encodeIndexStats(indexStats{docs: 3, totalLen: 40, nextDoc: 9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeIndexStats(b)
		roundTrip(t, b, err, encodeIndexStats(s))
	})
}

func FuzzBlobAndDedup(f *testing.F) {
	f.Add(encodeBlob([]byte("id")))
	f.Add(encodeDedup(dedupRecord{seen: time.Unix(1, 2)}))
	f.Add(encodeDedup(dedupRecord{seen: time.Unix(1, 2), inView: true, ts: -5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeBlob(b)
		roundTrip(t, b, err, encodeBlob(v))
		at, err := decodeDedup(b)
		roundTrip(t, b, err, encodeDedup(at))
	})
}

func FuzzCursor(f *testing.F) {
	f.Add(encodeCursor(cursor{order: OrderRecency, ranked: ranked{score: 1.5, ts: -3, doc: 7}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCursor(b)
		roundTrip(t, b, err, encodeCursor(c))
	})
}

// FuzzKeys parses arbitrary bytes as keys of the spaces scanned by key.
func FuzzKeys(f *testing.F) {
	f.Add(viewKey(g1, 5, mid(1), []byte("ann")), []byte{2})
	f.Add(legacyViewKey(g1, 5, mid(1)), []byte{2})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if m, doc, err := decodeMessageKeyed(k, v); err == nil {
			if !bytes.Equal(viewKey(m.Group, m.Time.UnixNano(), m.ID, m.Sender), k) &&
				!bytes.Equal(legacyViewKey(m.Group, m.Time.UnixNano(), m.ID), k) {
				t.Fatalf("view key round trip: %x", k)
			}
			_ = doc
		}
		_, _ = decodeViewEntry(k, v)
	})
}

// FuzzQuery checks the query parser and tokenizer never panic and that
// tokens are non-empty, bounded and free of the key separator byte.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{`deploy "new release" depl*`, "Ünïcödé ÉCOLE", "東京都に行きます", "한국어 텍스트", `"unterminated`, "*", "a-b*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := parseQuery(s)
		if err == nil && len(cs) == 0 {
			t.Fatal("no clauses and no error")
		}
		tokenize(s, func(term string, pos int) {
			if term == "" || len(term) > maxTokenLen || bytes.IndexByte([]byte(term), 0) >= 0 {
				t.Fatalf("bad token %q", term)
			}
		})
	})
}
