package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

func TestContentPayloadRoundTrip(t *testing.T) {
	fm := &fileMeta{Name: "a.png", Size: 3 << 20, Type: "image/png", ChunkSize: 1 << 20,
		Chunks: make([][fileHashLen]byte, 3)}
	fm2 := &fileMeta{Name: "b.png", Size: 3 << 20, Type: "image/png", ChunkSize: 1 << 20, Version: 2,
		Chunks: make([][fileHashLen]byte, 3), Width: 1024, Height: 768, Preview: []byte("jpeg")}
	fm2.Hash = [fileHashLen]byte{1}
	fm2.Chunks[2] = fm2.Hash
	for _, c := range []*content{
		{Type: contentPost, Flags: contentVisible, Text: "hi @bob", Mentions: [][]byte{[]byte("bob")}},
		{Type: contentPost, Flags: contentVisible, Text: "re", HasTarget: true, Target: [16]byte{1}},
		{Type: contentPost, Flags: contentVisible, File: fm},
		{Type: contentPost, Flags: contentVisible, Text: "pic", File: fm2},
		{Type: contentReact, Target: [16]byte{2}, Emoji: "👍", Remove: true},
		{Type: contentEdit, Target: [16]byte{3}, Text: "fixed"},
		{Type: contentDelete, Target: [16]byte{4}},
		{Type: contentReceipt, Target: [16]byte{5}},
		{Type: contentTyping},
		{Type: 200, Flags: contentVisible, Body: []byte("from the future")},
	} {
		p := &appPayload{Kind: kindContent, ID: [16]byte{9}, Time: time.Unix(5, 0).UTC(), Content: c}
		data := p.marshal()
		got, err := unmarshalPayload(data)
		if err != nil {
			t.Fatalf("%v: %v", c.Type, err)
		}
		if !bytes.Equal(got.marshal(), data) {
			t.Fatalf("%v: re-encoding differs", c.Type)
		}
	}
}

// TestContentDecoderRefuses: malformed known types, and a file whose
// claimed size its chunks cannot hold (10 GiB in three chunks), are
// refused by the decoder with ErrMalformed, before anything is fetched.
func TestContentDecoderRefuses(t *testing.T) {
	huge := &fileMeta{Name: "x", Size: 10 << 30, ChunkSize: 1 << 20, Chunks: make([][fileHashLen]byte, 3)}
	tooFew := &fileMeta{Name: "x", Size: 5 << 20, ChunkSize: 1 << 20, Chunks: make([][fileHashLen]byte, 3)}
	tooMany := &fileMeta{Name: "x", Size: 1 << 20, ChunkSize: 1 << 20, Chunks: make([][fileHashLen]byte, 3)}
	for name, c := range map[string]*content{
		"10 GiB":      {Type: contentPost, File: huge},
		"size > cap":  {Type: contentPost, File: tooFew},
		"extra chunk": {Type: contentPost, File: tooMany},
		"empty emoji": {Type: contentReact},
	} {
		data := (&appPayload{Kind: kindContent, Content: c}).marshal()
		if _, err := unmarshalPayload(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	trailing := append((&content{Type: contentDelete}).marshal(), 0)
	if _, err := unmarshalContent(trailing); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing bytes: %v", err)
	}
}

func FuzzContent(f *testing.F) {
	f.Add((&content{Type: contentPost, Text: "x", HasTarget: true, Mentions: [][]byte{{1}}}).marshal())
	f.Add((&content{Type: contentPost, File: &fileMeta{Name: "n", Size: 1, ChunkSize: 1, Chunks: make([][fileHashLen]byte, 1)}}).marshal())
	f.Add((&content{Type: contentReact, Emoji: "+"}).marshal())
	f.Add((&content{Type: contentPost, File: &fileMeta{Name: "p", Size: 64, ChunkSize: 64, Version: 2,
		Chunks: make([][fileHashLen]byte, 1), Width: 2, Height: 2, Preview: []byte{1}}}).marshal())
	f.Add((&content{Type: contentEdit, Text: "e"}).marshal())
	f.Add((&content{Type: 99, Flags: 1, Body: []byte{1, 2}}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := unmarshalContent(data)
		if err != nil {
			return
		}
		if got := c.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
		}
	})
}

// soloGroup starts one node with a group of its own and returns its actor.
func soloGroup(t *testing.T) (*Node, *groupActor) {
	t.Helper()
	_, ns, g := memGroup(t, "alice")
	a, err := ns[0].lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	return ns[0], a
}

func contentPayload(at time.Time, c *content) *appPayload {
	p := &appPayload{Kind: kindContent, Time: at.UTC(), Content: c}
	rand.Read(p.ID[:])
	return p
}

// deliverContent hands payloads to the actor as if decrypted from senders.
func deliverContent(t *testing.T, a *groupActor, sender []byte, ps ...*appPayload) {
	t.Helper()
	err := a.do(context.Background(), func() error {
		_, g := a.head()
		for _, p := range ps {
			if p.Kind == kindText {
				a.receivePost(p, sender, g.Epoch(), 0)
			} else {
				a.onContent(p, sender, g)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type sent struct {
	sender []byte
	p      *appPayload
}

// TestContentFoldIsOrderIndependent delivers a message, two edits by its
// author, an edit by another member, and reactions added and removed, in
// many random orders (each twice over, so every one also arrives
// twice): every order ends in the same view, with the author's latest
// edit, the other member's edit ignored, and each reaction counted once.
func TestContentFoldIsOrderIndependent(t *testing.T) {
	n, a := soloGroup(t)
	author, other, third := []byte("author-id"), []byte("other-id"), []byte("third-id")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	var want string
	for run := range 12 {
		var target [16]byte
		rand.Read(target[:])
		post := &appPayload{Kind: kindText, ID: target, Time: t0, Text: fmt.Sprintf("orignal %d", run)}
		ops := []sent{
			{author, post},
			{author, contentPayload(t0.Add(1*time.Second), &content{Type: contentEdit, Target: target, Text: "first fix"})},
			{author, contentPayload(t0.Add(2*time.Second), &content{Type: contentEdit, Target: target, Text: "second fix"})},
			{other, contentPayload(t0.Add(3*time.Second), &content{Type: contentEdit, Target: target, Text: "hijacked"})},
			{other, contentPayload(t0.Add(1*time.Second), &content{Type: contentReact, Target: target, Emoji: "👍"})},
			{other, contentPayload(t0.Add(2*time.Second), &content{Type: contentReact, Target: target, Emoji: "👍", Remove: true})},
			{other, contentPayload(t0.Add(3*time.Second), &content{Type: contentReact, Target: target, Emoji: "🎉"})},
			{third, contentPayload(t0.Add(1*time.Second), &content{Type: contentReact, Target: target, Emoji: "🎉"})},
		}
		all := append(slices.Clone(ops), ops...)
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, s := range all {
			deliverContent(t, a, s.sender, s.p)
		}
		m, err := n.db.MessageFrom(a.id, author, store.MessageID(target))
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		am := n.apiMessage(a, m)
		got := fmt.Sprintf("%s edited=%v reactions=%v", am.Text, am.Edited, reactionSummary(am.Reactions))
		if run == 0 {
			want = got
			if !strings.HasPrefix(want, "second fix edited=true reactions=[🎉x2]") {
				t.Fatalf("fold: %s", got)
			}
		} else if got != want {
			t.Fatalf("run %d ends in %q, run 0 in %q", run, got, want)
		}
		if others, _ := a.messagesWithID(store.MessageID(target)); len(others) != 1 {
			t.Fatalf("run %d: %d messages with the id", run, len(others))
		}
	}
	res, err := n.db.Search(context.Background(), store.Query{Text: "hijacked", Group: a.id})
	if err != nil || len(res.Hits) != 0 {
		t.Fatalf("a non-author's edit is searchable: %v %v", res.Hits, err)
	}
	res, err = n.db.Search(context.Background(), store.Query{Text: "orignal", Group: a.id})
	if err != nil || len(res.Hits) != 0 {
		t.Fatalf("edited-away text is searchable: %v %v", res.Hits, err)
	}
}

func reactionSummary(rs []api.Reaction) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%sx%d", r.Emoji, r.Count))
	}
	slices.Sort(out)
	return out
}

// TestDeleteWinsInAnyOrder: a delete by the author, arriving before,
// between or after the message, its edit and a reaction, always leaves a
// tombstone, and nothing of the text stays in the view, the index or the
// operations; a delete by a member who is neither author nor admin
// changes nothing.
func TestDeleteWinsInAnyOrder(t *testing.T) {
	n, a := soloGroup(t)
	author, other := []byte("author-id"), []byte("other-id")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 2))
	for run := range 10 {
		var target [16]byte
		rand.Read(target[:])
		word := fmt.Sprintf("zebrasecret%d", run)
		ops := []sent{
			{author, &appPayload{Kind: kindText, ID: target, Time: t0, Text: word + " original"}},
			{author, contentPayload(t0.Add(time.Second), &content{Type: contentEdit, Target: target, Text: word + "edit typo"})},
			{other, contentPayload(t0.Add(time.Second), &content{Type: contentReact, Target: target, Emoji: "👍"})},
			{author, contentPayload(t0.Add(2*time.Second), &content{Type: contentDelete, Target: target})},
		}
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		for _, s := range ops {
			deliverContent(t, a, s.sender, s.p)
		}
		m, err := n.db.MessageFrom(a.id, author, store.MessageID(target))
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if m.Text != "" || m.Flags&store.FlagDeleted == 0 || !bytes.Equal(m.Meta, tombstoneMeta) {
			t.Fatalf("run %d: not a tombstone: %+v", run, m)
		}
		ops2, _ := n.db.Ops(a.id, store.MessageID(target))
		for _, o := range ops2 {
			if o.Kind != opDelete {
				t.Fatalf("run %d: operation kind %d kept after delete", run, o.Kind)
			}
		}
		for _, q := range []string{word, word + "edit"} {
			if res, err := n.db.Search(context.Background(), store.Query{Text: q, Group: a.id}); err != nil || len(res.Hits) != 0 {
				t.Fatalf("run %d: deleted text %q searchable: %v %v", run, q, res.Hits, err)
			}
		}
	}

	// A non-author, non-admin delete is refused and changes nothing.
	var target [16]byte
	rand.Read(target[:])
	deliverContent(t, a, author, &appPayload{Kind: kindText, ID: target, Time: t0, Text: "stays"})
	err := a.do(context.Background(), func() error {
		return a.applyDelete(contentPayload(t0, &content{Type: contentDelete, Target: target}), other, false)
	})
	if !errors.Is(err, ErrNotAuthor) {
		t.Fatalf("non-author delete: %v", err)
	}
	err = a.do(context.Background(), func() error {
		return a.applyEdit(contentPayload(t0, &content{Type: contentEdit, Target: target, Text: "evil"}), other)
	})
	if !errors.Is(err, ErrNotAuthor) {
		t.Fatalf("non-author edit: %v", err)
	}
	if m, err := n.db.MessageFrom(a.id, author, store.MessageID(target)); err != nil || m.Text != "stays" || m.Flags != 0 {
		t.Fatalf("after refused operations: %+v %v", m, err)
	}
	if ops, _ := n.db.Ops(a.id, store.MessageID(target)); len(ops) != 0 {
		t.Fatalf("refused operations stored: %v", ops)
	}
	// An admin's delete of another's message is applied.
	deliverContent(t, a, n.selfID, contentPayload(t0.Add(time.Second), &content{Type: contentDelete, Target: target}))
	if m, err := n.db.MessageFrom(a.id, author, store.MessageID(target)); err != nil || m.Flags&store.FlagDeleted == 0 {
		t.Fatalf("admin delete not applied: %+v %v", m, err)
	}
}

// TestConversationBetweenMembers runs the API between two members: a
// reply, reactions, an edit and a delete reach the other member, search
// follows the edit and forgets the deleted text, and hostile requests get
// typed errors.
func TestConversationBetweenMembers(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	first, err := alice.Send(ctx, g, "lunch at noon tomorow?")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob has the message", func() error { return hasTexts(bob, g, "lunch at noon tomorow?") })
	reply, err := bob.Post(ctx, api.PostRequest{Group: g, Text: "yes @alice", ReplyTo: first.ID[:8]})
	if err != nil {
		t.Fatal(err)
	}
	if reply.ReplyTo != first.ID || len(reply.Mentions) != 1 || reply.Mentions[0] != "alice" {
		t.Fatalf("reply: %+v", reply)
	}
	if _, err := alice.React(ctx, api.ReactRequest{Group: g, ID: first.ID, Emoji: "👍"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.React(ctx, api.ReactRequest{Group: g, ID: first.ID, Emoji: "👍"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, g, first.ID, "lunch at noon tomorrow?"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees the edit, reactions and mention", func() error {
		m, err := findAPI(bob, g, first.ID)
		if err != nil {
			return err
		}
		if m.Text != "lunch at noon tomorrow?" || !m.Edited || len(m.Reactions) != 1 || m.Reactions[0].Count != 2 {
			return fmt.Errorf("bob sees %+v", m)
		}
		gs, _ := alice.Groups(ctx)
		if len(gs) != 1 || gs[0].Mentions != 1 {
			return fmt.Errorf("alice's mention count %+v", gs)
		}
		return nil
	})
	// (A rewritten message is searchable a moment after its new text is
	// readable: the index is published after the batch commits.)
	eventually(t, 10*time.Second, "bob finds the edited text", func() error {
		res, err := bob.Search(ctx, api.SearchRequest{Query: "tomorrow", Group: g})
		if err != nil || len(res.Hits) != 1 {
			return fmt.Errorf("search for the edited text: %+v %v", res, err)
		}
		return nil
	})
	// Hostile requests: typed errors, nothing sent.
	if _, err := bob.Edit(ctx, g, first.ID, "bob's words"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob edits alice's message: %v", err)
	}
	if _, err := bob.Delete(ctx, g, first.ID); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob deletes alice's message: %v", err)
	}
	if _, err := bob.React(ctx, api.ReactRequest{Group: g, ID: strings.Repeat("ab", 16), Emoji: "👍"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("reaction to an unknown id: %v", err)
	}
	if _, err := alice.Delete(ctx, g, first.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees the delete", func() error {
		m, err := findAPI(bob, g, first.ID)
		if err != nil {
			return err
		}
		if !m.Deleted || m.Text != "" || m.Kind != api.KindDeleted || len(m.Reactions) != 0 {
			return fmt.Errorf("bob sees %+v", m)
		}
		return nil
	})
	eventually(t, 10*time.Second, "deleted text unsearchable", func() error {
		for _, n := range []*Node{alice, bob} {
			if res, err := n.Search(ctx, api.SearchRequest{Query: "lunch", Group: g}); err != nil || len(res.Hits) != 0 {
				return fmt.Errorf("deleted text found: %+v %v", res, err)
			}
		}
		return nil
	})
	a, _ := alice.lookup(g)
	if _, err := alice.db.Outbox(a.id, store.MessageID(mustHex16(t, first.ID))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted message left in alice's outbox: %v", err)
	}
	if _, err := bob.Edit(ctx, g, reply.ID, "yes"); err != nil {
		t.Fatal(err)
	}
	// Read receipts: bob reads, alice's reply-target... alice's view of
	// bob's reply shows nothing (it is bob's); bob's view of alice's
	// messages would. Alice reads bob's reply: bob sees it seen by alice.
	if err := alice.MarkRead(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees alice read his reply", func() error {
		m, err := findAPI(bob, g, reply.ID)
		if err != nil {
			return err
		}
		if len(m.SeenBy) != 1 || m.SeenBy[0] != "alice" || m.Text != "yes" {
			return fmt.Errorf("bob's reply: %+v", m)
		}
		return nil
	})
}

func mustHex16(t *testing.T, s string) [16]byte {
	t.Helper()
	b, err := decodeHex(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("id %q", s)
	}
	return [16]byte(b)
}

func findAPI(n *Node, group, id string) (api.Message, error) {
	ms, err := n.Log(context.Background(), group, 1000)
	if err != nil {
		return api.Message{}, err
	}
	for _, m := range ms {
		if m.ID == id {
			return m, nil
		}
	}
	return api.Message{}, fmt.Errorf("no message %s", id)
}

func writeRandomFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "blob.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestFileTransfer: alice sends a file; bob fetches it from alice; alice
// goes away and carol fetches it from bob; a member serving wrong chunks
// is caught (ErrChunkHash, nothing kept); an outsider is refused chunks.
func TestFileTransfer(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	path, data := writeRandomFile(t, 3*fileChunkSize+1234)
	m, err := alice.Post(ctx, api.PostRequest{Group: g, Text: "the build", File: path})
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != api.KindFile || m.File == nil || m.File.Size != int64(len(data)) || m.File.Have != m.File.Size || m.File.Name != "blob.bin" {
		t.Fatalf("posted: %+v %+v", m, m.File)
	}
	want := sha256.Sum256(data)
	if m.File.Hash != hex.EncodeToString(want[:]) {
		t.Fatalf("hash %s", m.File.Hash)
	}
	eventually(t, 10*time.Second, "bob and carol see the file", func() error {
		for _, n := range []*Node{bob, carol} {
			fs, err := n.Files(ctx, g)
			if err != nil || len(fs) != 1 || fs[0].Have != 0 {
				return fmt.Errorf("files %+v %v", fs, err)
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "search finds the file by its name", func() error {
		for _, n := range []*Node{alice, bob} {
			if res, err := n.Search(ctx, api.SearchRequest{Query: "blob", Group: g}); err != nil || len(res.Hits) != 1 {
				return fmt.Errorf("search by file name on %s: %+v %v", n.self.Name, res, err)
			}
		}
		return nil
	})
	out := filepath.Join(t.TempDir(), "got.bin")
	saved, err := bob.SaveFile(ctx, api.SaveRequest{Group: g, File: m.ID[:8], Path: out})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) || saved.Have != saved.Size {
		t.Fatalf("bob saved %d bytes (have %d)", len(got), saved.Have)
	}

	// A member serving garbage: caught, nothing kept.
	a, _ := carol.lookup(g)
	bob.net.Serve(ProtocolFile, func(ctx context.Context, s p2p.Stream) {
		req, _ := s.Recv()
		fr, _ := unmarshalFileRequest(req)
		for range fr.Chunks {
			s.Send(append([]byte{chunkOK}, bytes.Repeat([]byte{7}, 100)...))
		}
		s.CloseWrite()
	})
	cm, _ := carol.db.Message(a.id, store.MessageID(mustHex16(t, m.ID)))
	f := fileOf(cm)
	err = carol.fetchChunks(ctx, a, carol.chunkDir(a), cm.ID, f, []peer.ID{bob.net.ID()}, nil)
	if !errors.Is(err, ErrFileIncomplete) || !errors.Is(err, ErrChunkHash) {
		t.Fatalf("garbage chunks: %v", err)
	}
	if len(missingChunks(carol.chunkDir(a), f)) != len(f.Chunks) {
		t.Fatal("a garbage chunk was kept")
	}
	bob.net.Serve(ProtocolFile, bob.serveFile)

	// An outsider asking alice is refused.
	eve := memNode(t, mn, "eve")
	if err := eve.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	s, err := eve.net.OpenStream(ctx, alice.net.ID(), ProtocolFile)
	if err != nil {
		t.Fatal(err)
	}
	s.Send((&fileRequest{Group: a.id, Chunks: f.chunkNames()[:1]}).marshal())
	s.CloseWrite()
	if frame, err := s.Recv(); err == nil {
		t.Fatalf("outsider got a chunk frame of %d bytes", len(frame))
	}
	s.Close()

	// The sender gone, carol fetches from bob, who holds the chunks.
	alice.Close()
	out2 := filepath.Join(t.TempDir(), "got2.bin")
	if _, err := carol.SaveFile(ctx, api.SaveRequest{Group: g, File: m.ID, Path: out2}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out2); !bytes.Equal(got, data) {
		t.Fatal("carol's copy differs")
	}
}

// TestDeleteDropsFile: deleting a file's message deletes its chunks and
// its key with the message.
func TestDeleteDropsFile(t *testing.T) {
	n, a := soloGroup(t)
	ctx := context.Background()
	path, _ := writeRandomFile(t, fileChunkSize+1)
	m, err := n.Post(ctx, api.PostRequest{Group: a.hexID, File: path})
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(n.chunkDir(a)); len(ents) != 2 {
		t.Fatalf("%d chunk files", len(ents))
	}
	if _, err := n.Delete(ctx, a.hexID, m.ID); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(n.chunkDir(a)); len(ents) != 0 {
		t.Fatalf("%d chunk files left after delete", len(ents))
	}
	if fs, err := n.Files(ctx, a.hexID); err != nil || len(fs) != 0 {
		t.Fatalf("files after delete: %+v %v", fs, err)
	}
}

// TestFileTooLargeRefused: a file over 100 MiB is refused before
// anything is read or sent.
func TestFileTooLargeRefused(t *testing.T) {
	_, a := soloGroup(t)
	n := a.n
	path := filepath.Join(t.TempDir(), "big")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fh.Truncate(maxFileSize + 1)
	fh.Close()
	if _, err := n.Post(context.Background(), api.PostRequest{Group: a.hexID, File: path}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("oversized file: %v", err)
	}
	if _, err := os.Stat(n.chunkDir(a)); !os.IsNotExist(err) {
		t.Fatalf("chunks written for a refused file: %v", err)
	}
}

// TestFileTransferResumes: a transfer cut half way (the serving member
// stops after two chunks) keeps what arrived; the next save asks only for
// the chunks still missing and ends with the right file.
func TestFileTransferResumes(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	path, data := writeRandomFile(t, 5*fileChunkSize)
	m, err := alice.Post(ctx, api.PostRequest{Group: g, File: path})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees the file", func() error {
		_, err := findAPI(bob, g, m.ID)
		return err
	})
	var (
		mu    sync.Mutex
		asked int
	)
	serveSome := func(limit int) p2p.StreamHandler {
		return func(ctx context.Context, s p2p.Stream) {
			req, err := s.Recv()
			if err != nil {
				return
			}
			fr, _ := unmarshalFileRequest(req)
			mu.Lock()
			asked += len(fr.Chunks)
			mu.Unlock()
			a, _ := alice.lookup(g)
			for i, id := range fr.Chunks {
				if i == limit {
					s.Reset() // the connection drops half way
					return
				}
				ct, _ := os.ReadFile(chunkPath(alice.chunkDir(a), id))
				s.Send(append([]byte{chunkOK}, ct...))
			}
			s.CloseWrite()
		}
	}
	alice.net.Serve(ProtocolFile, serveSome(2))
	out := filepath.Join(t.TempDir(), "got.bin")
	if _, err := bob.SaveFile(ctx, api.SaveRequest{Group: g, File: m.ID, Path: out}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("cut transfer: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a partial file was saved")
	}
	// (The reset may drop the second chunk in flight.)
	fs, _ := bob.Files(ctx, g)
	if len(fs) != 1 || fs[0].Have < fileChunkSize || fs[0].Have > 2*fileChunkSize {
		t.Fatalf("bob holds %+v after the cut", fs)
	}
	held := int(fs[0].Have / fileChunkSize)
	mu.Lock()
	asked = 0
	mu.Unlock()
	alice.net.Serve(ProtocolFile, serveSome(-1))
	if _, err := bob.SaveFile(ctx, api.SaveRequest{Group: g, File: m.ID, Path: out}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 5-held {
		t.Fatalf("resumed transfer asked for %d chunks, want the %d missing", asked, 5-held)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("resumed file differs")
	}
}

// TestUnsupportedTypingReceipts: a content type this device does not know
// is shown as unsupported when its sender marked it visible and ignored
// otherwise; a typing indicator reaches the other member as an event and
// is neither logged nor shown on either side; read receipts are sent on
// MarkRead unless this device opted out.
func TestUnsupportedTypingReceipts(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	ab, _ := bob.lookup(g)

	future := contentPayload(time.Now(), &content{Type: 77, Flags: contentVisible, Body: []byte("a poll, say")})
	silent := contentPayload(time.Now(), &content{Type: 78, Body: []byte("a control signal")})
	deliverContent(t, ab, alice.selfID, future, silent)
	if m, err := findAPI(bob, g, hex.EncodeToString(future.ID[:])); err != nil || m.Kind != api.KindUnsupported || m.Text != "" {
		t.Fatalf("unknown visible type: %+v %v", m, err)
	}
	if _, err := findAPI(bob, g, hex.EncodeToString(silent.ID[:])); err == nil {
		t.Fatal("unknown silent type shown")
	}

	logCount := func(n *Node) int {
		a, _ := n.lookup(g)
		es, err := n.db.LogSince(a.id, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	events, err := bob.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	beforeA, beforeB := logCount(alice), logCount(bob)
	if err := alice.Typing(ctx, g); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Kind == api.EventTyping {
			if ev.Member == nil || ev.Member.Name != "alice" {
				t.Fatalf("typing event %+v", ev)
			}
			break
		}
	}
	if a, b := logCount(alice), logCount(bob); a != beforeA || b != beforeB {
		t.Fatalf("typing logged: alice %d->%d, bob %d->%d", beforeA, a, beforeB, b)
	}

	// Receipts: bob opts out; alice does not.
	if st, err := bob.Status(ctx); err != nil || st.ReceiptsOff {
		t.Fatalf("bob's status before opting out: receipts_off=%v %v", st.ReceiptsOff, err)
	}
	if err := bob.SetReceipts(ctx, false); err != nil {
		t.Fatal(err)
	}
	if st, err := bob.Status(ctx); err != nil || !st.ReceiptsOff {
		t.Fatalf("bob's status after opting out: receipts_off=%v %v", st.ReceiptsOff, err)
	}
	am, err := alice.Send(ctx, g, "read me")
	if err != nil {
		t.Fatal(err)
	}
	bm, err := bob.Send(ctx, g, "and me")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both messages everywhere", func() error {
		return errors.Join(hasTexts(alice, g, "read me", "and me"), hasTexts(bob, g, "read me", "and me"))
	})
	if err := bob.MarkRead(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkRead(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees alice read his message", func() error {
		m, err := findAPI(bob, g, bm.ID)
		if err != nil || len(m.SeenBy) != 1 {
			return fmt.Errorf("bob's message %+v %v", m, err)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // bob's receipt, were it sent, would be here by now
	if m, err := findAPI(alice, g, am.ID); err != nil || len(m.SeenBy) != 0 {
		t.Fatalf("bob opted out but alice's message shows %+v %v", m.SeenBy, err)
	}
}

func TestResendPlaintext(t *testing.T) {
	at := time.Unix(100, 0).UTC()
	plain := store.Message{ID: store.MessageID{1}, Time: at, Text: "hello"}
	p, err := unmarshalPayload(resendPlaintext(plain))
	if err != nil || p.Kind != kindText || p.Text != "hello" || p.ID != [16]byte{1} {
		t.Fatalf("text: %+v %v", p, err)
	}
	post := store.Message{ID: store.MessageID{2}, Time: at, Text: "re (edited)", Flags: store.FlagEdited,
		Meta: postMeta(&content{Type: contentPost, Flags: contentVisible, HasTarget: true, Target: [16]byte{1}})}
	p, err = unmarshalPayload(resendPlaintext(post))
	if err != nil || p.Kind != kindContent || p.Content.Text != "re (edited)" || !p.Content.HasTarget || p.Content.Target != [16]byte{1} {
		t.Fatalf("post: %+v %v", p, err)
	}
	gone := store.Message{ID: store.MessageID{3}, Time: at, Flags: store.FlagDeleted, Meta: tombstoneMeta}
	if resendPlaintext(gone) != nil {
		t.Fatal("a deleted message would be sent again")
	}
}

// convSummary is what members must agree on about a group's messages.
func convSummary(t *testing.T, n *Node, g string) string {
	t.Helper()
	ms, err := n.Log(context.Background(), g, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s %q edited=%v deleted=%v %v\n", m.ID, m.Sender, m.Text, m.Edited, m.Deleted, reactionSummary(m.Reactions))
	}
	return b.String()
}

// TestContentAcrossForkAndHeal: edits, deletes and reactions made on both
// sides of a partition whose commits fork (the losing side's epoch is
// orphaned and its outbox re-sent) end, after the heal, in one view on
// every member, each applied once.
func TestContentAcrossForkAndHeal(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	keep, err := alice.Send(ctx, g, "draft one")
	if err != nil {
		t.Fatal(err)
	}
	drop, err := alice.Send(ctx, g, "remove me later")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "everyone has both", func() error {
		return errors.Join(hasTexts(bob, g, "draft one", "remove me later"), hasTexts(carol, g, "draft one", "remove me later"))
	})
	am := alice.net.(*p2p.MemNode)
	am.Disconnect(bob.PeerID())
	am.Disconnect(carol.PeerID())
	e0 := groupEpoch(t, alice, g)
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := bob.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both sides committed", func() error {
		for _, n := range ns {
			if groupEpoch(t, n, g) <= e0 {
				return fmt.Errorf("%s has not moved", n.self.Name)
			}
		}
		return nil
	})
	if _, err := alice.Edit(ctx, g, keep.ID, "draft two"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Delete(ctx, g, drop.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.React(ctx, api.ReactRequest{Group: g, ID: keep.ID, Emoji: "👍"}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.React(ctx, api.ReactRequest{Group: g, ID: keep.ID, Emoji: "👍"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past finality age on each side
	for _, p := range []*Node{bob, carol} {
		if err := alice.Connect(ctx, p.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "one view after the heal", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		want := convSummary(t, alice, g)
		for _, n := range ns[1:] {
			if got := convSummary(t, n, g); got != want {
				return fmt.Errorf("%s:\n%s\nalice:\n%s", n.self.Name, got, want)
			}
		}
		m, err := findAPI(bob, g, keep.ID)
		if err != nil || m.Text != "draft two" || !m.Edited || len(m.Reactions) != 1 || m.Reactions[0].Count != 2 {
			return fmt.Errorf("kept message at bob: %+v %v", m, err)
		}
		if d, err := findAPI(carol, g, drop.ID); err != nil || !d.Deleted {
			return fmt.Errorf("deleted message at carol: %+v %v", d, err)
		}
		return nil
	})
	forks := int64(0)
	for _, n := range ns {
		forks += n.Metrics().Forks
	}
	if forks == 0 {
		t.Fatal("no fork was resolved: the partition did not produce sibling commits")
	}
}

func FuzzFileRequest(f *testing.F) {
	f.Add((&fileRequest{Group: []byte("g"), Chunks: make([][fileHashLen]byte, 2)}).marshal())
	f.Add([]byte{1, 1, 'g', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := unmarshalFileRequest(data)
		if err != nil {
			return
		}
		if got := r.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
		}
	})
}

// TestSHA256Chain: the chaining value taken after whole blocks and
// resumed gives the same hash as one pass (it fails if crypto/sha256's
// state layout changes, which version 2 chunk names rely on).
func TestSHA256Chain(t *testing.T) {
	data := make([]byte, 3*fileChunkSize+100)
	rand.Read(data)
	h := sha256.New()
	h.Write(data[:2*fileChunkSize])
	chain, err := sha256Chain(h)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sha256Resume(chain, 2*fileChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	r.Write(data[2*fileChunkSize:])
	if want := sha256.Sum256(data); !bytes.Equal(r.Sum(nil), want[:]) {
		t.Fatal("resumed SHA-256 differs from one pass")
	}
}

// TestFileChunksChecked: every chunk of a version 2 file checks against
// its chaining value and decrypts to its part of the file; a chunk
// changed, moved to another index or from another file is refused with
// ErrChunkHash, and the last chunk's value is the file's SHA-256.
func TestFileChunksChecked(t *testing.T) {
	data := make([]byte, 2*fileChunkSize+7)
	rand.Read(data)
	var cts [][]byte
	f, err := encryptFile(bytes.NewReader(data), int64(len(data)), func(_ [fileHashLen]byte, ct []byte) error {
		cts = append(cts, bytes.Clone(ct))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Hash != sha256.Sum256(data) || f.Chunks[2] != f.Hash || len(cts) != 3 {
		t.Fatalf("hash %x, last chain %x, %d chunks", f.Hash, f.Chunks[2], len(cts))
	}
	// The description goes through the wire as a receiver gets it.
	c, err := unmarshalContent((&content{Type: contentPost, File: f}).marshal())
	if err != nil {
		t.Fatal(err)
	}
	g := c.File
	if !slices.Equal(g.chunkNames(), f.chunkNames()) {
		t.Fatal("chunk names differ after decoding")
	}
	gcm, _ := fileAEAD(g)
	var got []byte
	for i, ct := range cts {
		pt, err := g.checkChunk(gcm, i, ct, nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		got = append(got, pt...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("decrypted chunks differ from the file")
	}
	bad := bytes.Clone(cts[1])
	bad[10] ^= 1
	if _, err := g.checkChunk(gcm, 1, bad, nil); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("changed chunk: %v", err)
	}
	// A member holds the key, so it can make a chunk that decrypts: the
	// chaining value still refuses it.
	forged := gcm.Seal(nil, chunkNonce(1), make([]byte, fileChunkSize), nil)
	if _, err := g.checkChunk(gcm, 1, forged, nil); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("forged chunk: %v", err)
	}
	if _, err := g.checkChunk(gcm, 0, cts[1], nil); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("chunk at another index: %v", err)
	}
}

// TestFileVersion1StillSaved: a file described the first way (chunks
// named by the SHA-256 of their ciphertext, as devices sent before
// version 2) still decodes, is fetched, checked and saved.
func TestFileVersion1StillSaved(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	data := make([]byte, fileChunkSize+5)
	rand.Read(data)
	f := &fileMeta{Name: "old.bin", Size: uint64(len(data)), ChunkSize: fileChunkSize, Version: 1, Hash: sha256.Sum256(data)}
	rand.Read(f.Key[:])
	gcm, _ := fileAEAD(f)
	a, _ := alice.lookup(g)
	for i := 0; i*fileChunkSize < len(data); i++ {
		ct := gcm.Seal(nil, chunkNonce(i), data[i*fileChunkSize:min((i+1)*fileChunkSize, len(data))], nil)
		id := sha256.Sum256(ct)
		if err := writeChunk(alice.chunkDir(a), id, ct); err != nil {
			t.Fatal(err)
		}
		f.Chunks = append(f.Chunks, id)
	}
	var m api.Message
	if err := a.do(ctx, func() error {
		var err error
		m, err = a.postContent(&content{Type: contentPost, Flags: contentVisible, File: f})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if wire := (&content{Type: contentPost, File: f}).marshal(); contentType(wire[0]) != contentPost {
		t.Fatalf("version 1 file sent as wire type %d", wire[0])
	}
	eventually(t, 10*time.Second, "bob sees the file", func() error {
		_, err := findAPI(bob, g, m.ID)
		return err
	})
	out := filepath.Join(t.TempDir(), "old.bin")
	if _, err := bob.SaveFile(ctx, api.SaveRequest{Group: g, File: m.ID, Path: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved version 1 file differs")
	}
}

// TestFileRefusedToLaterMember: a member who joined after a file was sent
// never held its key; asking the sender for its chunks (naming the file,
// or the chunks alone as version 1 requests do) is refused with a
// chunkRefused frame and ErrFileNotAllowed, while a member of the epoch
// that carried the key is served, and a file sent after the join reaches
// the new member.
func TestFileRefusedToLaterMember(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	path, _ := writeRandomFile(t, fileChunkSize+9)
	m, err := alice.Post(ctx, api.PostRequest{Group: g, File: path})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob sees the file", func() error {
		_, err := findAPI(bob, g, m.ID)
		return err
	})
	// A file without a record (received before records were kept): the
	// members of the epoch it was stored in, while that is retained.
	{
		a, _ := alice.lookup(g)
		id := store.MessageID(mustHex16(t, m.ID))
		var bobErr, eveErr error
		a.do(ctx, func() error {
			kept := a.fileAccess()
			a.saveFileAccess(fileAccess{})
			am, _ := alice.db.Message(a.id, id)
			req := &fileRequest{Version: fileReqVersion, Group: a.id, File: id, Chunks: fileOf(am).chunkNames()}
			bobErr = a.checkFileAccess(bob.net.ID(), req)
			eveErr = a.checkFileAccess("eve", req)
			a.saveFileAccess(kept)
			return nil
		})
		if bobErr != nil || !errors.Is(eveErr, ErrFileNotAllowed) {
			t.Fatalf("access check without a record: bob %v, a stranger %v", bobErr, eveErr)
		}
	}
	carol := memNode(t, mn, "carol")
	for _, n := range ns {
		if err := carol.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol is a member", func() error {
		if c := memberCount(alice, g); c != 3 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	a, _ := alice.lookup(g)
	id := store.MessageID(mustHex16(t, m.ID))
	am, err := alice.db.Message(a.id, id)
	if err != nil {
		t.Fatal(err)
	}
	names := fileOf(am).chunkNames()
	var carolErr, bobErr error
	a.do(ctx, func() error {
		carolErr = a.checkFileAccess(carol.net.ID(), &fileRequest{Version: fileReqVersion, Group: a.id, File: id, Chunks: names})
		bobErr = a.checkFileAccess(bob.net.ID(), &fileRequest{Version: fileReqVersion, Group: a.id, File: id, Chunks: names})
		return nil
	})
	if !errors.Is(carolErr, ErrFileNotAllowed) || bobErr != nil {
		t.Fatalf("access check: carol %v, bob %v", carolErr, bobErr)
	}
	for _, req := range []*fileRequest{
		{Version: fileReqVersion, Group: a.id, File: id, Chunks: names},
		{Version: fileReqVersion1, Group: a.id, Chunks: names},
	} {
		s, err := carol.net.OpenStream(ctx, alice.net.ID(), ProtocolFile)
		if err != nil {
			t.Fatal(err)
		}
		s.Send(req.marshal())
		s.CloseWrite()
		frame, err := s.Recv()
		if err != nil || !bytes.Equal(frame, []byte{chunkRefused}) {
			t.Fatalf("version %d request from a later member: frame %x, %v", req.Version, frame, err)
		}
		if frame, err := s.Recv(); err == nil {
			t.Fatalf("a later member got a frame of %d bytes after the refusal", len(frame))
		}
		s.Close()
	}
	ac, _ := carol.lookup(g)
	if err := carol.fetchChunks(ctx, ac, t.TempDir(), id, fileOf(am), []peer.ID{alice.net.ID(), bob.net.ID()}, nil); !errors.Is(err, ErrFileNotAllowed) {
		t.Fatalf("fetch by a later member: %v", err)
	}

	// Sent after carol joined: hers to fetch.
	path2, data2 := writeRandomFile(t, 3000)
	m2, err := alice.Post(ctx, api.PostRequest{Group: g, File: path2})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol sees the second file", func() error {
		_, err := findAPI(carol, g, m2.ID)
		return err
	})
	out := filepath.Join(t.TempDir(), "second.bin")
	if _, err := carol.SaveFile(ctx, api.SaveRequest{Group: g, File: m2.ID, Path: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data2) {
		t.Fatal("carol's copy of the second file differs")
	}
}
