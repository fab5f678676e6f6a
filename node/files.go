// Files (issue 21): a post carries a file's description (name, size,
// type, SHA-256 of the content, a fresh per-file AES-256-GCM key, and the
// SHA-256 chaining value of the content after each chunk, or for files of
// version 1 the SHA-256 of each encrypted chunk) inside the MLS message; the chunks
// themselves travel out of band over /grove/file/1, fetched on request
// from any member that holds them, the sender first.
//
// Chunk i is AES-256-GCM(key, nonce = i as 12 big-endian bytes) of
// plaintext bytes [i*ChunkSize, (i+1)*ChunkSize); the key is fresh per
// file, so every (key, nonce) pair is used once. A chunk from any member
// is checked against the hash the sender signed (inside the MLS message)
// before it is kept, so a member serving garbage is caught at once; its
// name on the wire and on disk derives from that hash (chunkNameOf). A chunk is kept as
// a file of its own under Home/files/GROUP/, written by rename once
// checked, so a transfer cut by a crash or a disconnect resumes with the
// chunks still missing. Chunks are ciphertext; the key lives only in the
// (encrypted) store, with the message, and goes with it when the message
// is deleted.

package node

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// ProtocolFile serves encrypted file chunks to members.
const ProtocolFile protocol.ID = "/grove/file/1"

// fileChunkSize is the chunk size of the files this device sends: an
// encrypted chunk and its status byte fit one p2p frame (1 MiB).
const fileChunkSize = 512 << 10

// Errors of file transfers.
var (
	// ErrChunkHash: a peer sent a chunk that is not the one named.
	ErrChunkHash = errors.New("node: chunk does not match its hash")
	// ErrFileIncomplete: no reachable member holds some chunks.
	ErrFileIncomplete = errors.New("node: file incomplete")
	// ErrFileNotAllowed: the peer asking for a file's chunks was not a
	// member of any epoch in which the post carrying its key was sent
	// (it joined later), or asked for chunks of no such file.
	ErrFileNotAllowed = errors.New("node: not a member when the file was sent")
)

const (
	// Version 1 requests name chunks only; version 2 also the file (the
	// id of the message carrying it), whose access record decides.
	fileReqVersion1 = 1
	fileReqVersion  = 2
	chunkOK         = 0
	chunkMissing    = 1
	// chunkRefused, alone in the first frame, answers a member that was
	// not in the group when the file was sent.
	chunkRefused = 2
)

// fileRequest asks for chunks of a group's files.
type fileRequest struct {
	Version uint8
	Group   []byte
	File    [16]byte // version 2: the message carrying the file
	Chunks  [][fileHashLen]byte
}

func (r *fileRequest) marshal() []byte {
	var w wbuf
	if r.Version == fileReqVersion1 {
		w.u8(fileReqVersion1)
		w.vec(r.Group)
	} else {
		w.u8(fileReqVersion)
		w.vec(r.Group)
		w.raw(r.File[:])
	}
	var ids []byte
	for _, c := range r.Chunks {
		ids = append(ids, c[:]...)
	}
	w.vec(ids)
	return w.b
}

func unmarshalFileRequest(data []byte) (*fileRequest, error) {
	r := rbuf{b: data}
	v := r.u8("file request version")
	if r.err == nil && v != fileReqVersion && v != fileReqVersion1 {
		return nil, fmt.Errorf("%w: file request version %d", ErrMalformed, v)
	}
	req := &fileRequest{Version: v, Group: r.vec(maxGroupID, "group")}
	if v == fileReqVersion {
		copy(req.File[:], r.fixed(16, "file id"))
	}
	ids := r.vec(maxChunks*fileHashLen, "chunk ids")
	if err := r.done("file request"); err != nil {
		return nil, err
	}
	if len(ids)%fileHashLen != 0 || len(req.Group) == 0 {
		return nil, fmt.Errorf("%w: file request", ErrMalformed)
	}
	for i := 0; i < len(ids); i += fileHashLen {
		req.Chunks = append(req.Chunks, [fileHashLen]byte(ids[i:i+fileHashLen]))
	}
	return req, nil
}

func (n *Node) chunkDir(a *groupActor) string {
	return filepath.Join(n.cfg.Home, "files", a.hexID)
}

func chunkPath(dir string, id [fileHashLen]byte) string {
	return filepath.Join(dir, hex.EncodeToString(id[:]))
}

// chunkNonce is the GCM nonce of chunk i.
func chunkNonce(i int) []byte {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], uint64(i))
	return nonce[:]
}

// encryptFile reads r (size bytes) in chunks, encrypts each under a fresh
// key, hands every encrypted chunk to put (under its name), and returns
// the description (version 2: one SHA-256 pass over the content gives
// both the chunks' chaining values and the file's hash).
func encryptFile(r io.Reader, size int64, put func(name [fileHashLen]byte, ct []byte) error) (*fileMeta, error) {
	f := &fileMeta{Size: uint64(size), ChunkSize: fileChunkSize, Version: 2}
	if _, err := rand.Read(f.Key[:]); err != nil {
		return nil, err
	}
	gcm, err := fileAEAD(f)
	if err != nil {
		return nil, err
	}
	whole := sha256.New()
	buf := make([]byte, fileChunkSize)
	var ct []byte
	var read int64
	for i := 0; read < size; i++ {
		k, err := io.ReadFull(r, buf[:min(int64(fileChunkSize), size-read)])
		if err != nil {
			return nil, fmt.Errorf("node: read file: %w", err)
		}
		read += int64(k)
		// The hash and the encryption of a chunk read the same bytes and
		// take about as long each: on two cores they run side by side.
		var (
			chain    [fileHashLen]byte
			chainErr error
			wg       sync.WaitGroup
		)
		wg.Go(func() {
			whole.Write(buf[:k])
			if read == size {
				chain = [fileHashLen]byte(whole.Sum(nil))
			} else {
				chain, chainErr = sha256Chain(whole)
			}
		})
		ct = gcm.Seal(ct[:0], chunkNonce(i), buf[:k], nil)
		wg.Wait()
		if chainErr != nil {
			return nil, chainErr
		}
		name := chunkNameOf(f.Key, chain)
		if err := put(name, ct); err != nil {
			return nil, err
		}
		f.Chunks = append(f.Chunks, chain)
		f.names = append(f.names, name)
	}
	copy(f.Hash[:], whole.Sum(nil))
	return f, nil
}

func fileAEAD(f *fileMeta) (cipher.AEAD, error) {
	block, err := aes.NewCipher(f.Key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Version 2 files name their chunks by SHA-256 chaining values: the hash
// state after each chunk of the plaintext (chunk sizes are multiples of
// the 64-byte block, so the state is the 32-byte chaining value alone),
// the last chunk's being the file's hash. A receiver checks chunk i by
// resuming SHA-256 from chunk i-1's value, hashing the decrypted chunk
// and comparing with chunk i's: a member (who holds the key, so can
// forge GCM) must find a SHA-256 compression collision to slip another
// chunk in. One hash pass names the chunks and gives the hash a user
// compares with sha256sum; version 1 took two (the content, and every
// encrypted chunk again). The state comes from crypto/sha256's
// BinaryMarshaler (stable since Go 1.10; TestSHA256Chain fails if its
// layout changes).
const sha256StateLen = 4 + 32 + 64 + 8 // magic, chaining value, block buffer, length

// sha256Chain is the chaining value of h, which must have hashed a whole
// number of blocks.
func sha256Chain(h hash.Hash) ([fileHashLen]byte, error) {
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || len(st) != sha256StateLen || string(st[:4]) != "sha\x03" {
		return [fileHashLen]byte{}, fmt.Errorf("node: unexpected SHA-256 state layout (%d bytes)", len(st))
	}
	return [fileHashLen]byte(st[4:36]), nil
}

// sha256Resume is a SHA-256 that has hashed n bytes (a whole number of
// blocks) ending in chaining value chain.
func sha256Resume(chain [fileHashLen]byte, n uint64) (hash.Hash, error) {
	h := sha256.New()
	if n == 0 {
		return h, nil
	}
	st := make([]byte, 0, sha256StateLen)
	st = append(st, "sha\x03"...)
	st = append(st, chain[:]...)
	st = append(st, make([]byte, 64)...)
	st = binary.BigEndian.AppendUint64(st, n)
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, fmt.Errorf("node: resume SHA-256: %w", err)
	}
	return h, nil
}

// chunkNameOf names a version 2 chunk on the wire and on disk: its
// chaining value bound to the file's key, so that two files (or the same
// file sent twice, under two keys) never share a name, and the name
// tells nothing of the content to who lacks the key.
func chunkNameOf(key [fileKeyLen]byte, chain [fileHashLen]byte) [fileHashLen]byte {
	h := sha256.New()
	h.Write([]byte("grove file chunk v2\x00"))
	h.Write(key[:])
	h.Write(chain[:])
	return [fileHashLen]byte(h.Sum(nil))
}

// nameChunks fills the names of a version 2 file's chunks.
func (f *fileMeta) nameChunks() {
	f.names = make([][fileHashLen]byte, len(f.Chunks))
	for i, c := range f.Chunks {
		f.names[i] = chunkNameOf(f.Key, c)
	}
}

// chunkNames lists the names of f's chunks, in order: on /grove/file/1
// and in the chunk store.
func (f *fileMeta) chunkNames() [][fileHashLen]byte {
	if f.Version < 2 {
		return f.Chunks
	}
	return f.names
}

// checkChunk checks a received encrypted chunk i and returns its
// plaintext (appended to pt[:0]; nil for version 1, whose chunks are
// checked by the hash of the ciphertext and decrypted later).
func (f *fileMeta) checkChunk(gcm cipher.AEAD, i int, ct, pt []byte) ([]byte, error) {
	if f.Version < 2 {
		if sha256.Sum256(ct) != f.Chunks[i] {
			return nil, ErrChunkHash
		}
		return nil, nil
	}
	pt, err := gcm.Open(pt[:0], chunkNonce(i), ct, nil)
	if err != nil || int64(len(pt)) != chunkLen(f, i) {
		return nil, fmt.Errorf("%w: chunk %d does not decrypt", ErrChunkHash, i)
	}
	var prev [fileHashLen]byte
	if i > 0 {
		prev = f.Chunks[i-1]
	}
	h, err := sha256Resume(prev, uint64(i)*uint64(f.ChunkSize))
	if err != nil {
		return nil, err
	}
	h.Write(pt)
	var got [fileHashLen]byte
	if i == len(f.Chunks)-1 {
		got = [fileHashLen]byte(h.Sum(nil))
	} else if got, err = sha256Chain(h); err != nil {
		return nil, err
	}
	if got != f.Chunks[i] {
		return nil, fmt.Errorf("%w: chunk %d", ErrChunkHash, i)
	}
	return pt, nil
}

// writeChunk stores a chunk, checked already (checkChunk) or made here.
func writeChunk(dir string, id [fileHashLen]byte, ct []byte) error {
	// Written in place, neither synced nor renamed (metadata operations
	// are what a busy disk makes slow): a chunk torn by a crash fails GCM
	// when the file is assembled (and the receiver's hash check when it
	// is served), is deleted then and fetched again.
	fh, err := os.OpenFile(chunkPath(dir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			fh, err = os.OpenFile(chunkPath(dir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if errors.Is(err, os.ErrExist) {
		return nil // kept already
	}
	if err != nil {
		return fmt.Errorf("node: chunk store: %w", err)
	}
	_, err = fh.Write(ct)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(chunkPath(dir, id))
		return fmt.Errorf("node: chunk store: %w", err)
	}
	return nil
}

func (n *Node) postFile(ctx context.Context, req api.PostRequest) (api.Message, error) {
	if req.Text != "" {
		if err := api.CheckText(req.Text); err != nil {
			return api.Message{}, err
		}
	}
	a, err := n.lookup(req.Group)
	if err != nil {
		return api.Message{}, err
	}
	fh, err := os.Open(req.File)
	if err != nil {
		return api.Message{}, api.Errorf(api.CodeInvalidArgument, "cannot read %s: %v", req.File, errors.Unwrap(err))
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return api.Message{}, api.Errorf(api.CodeInvalidArgument, "%s is not a regular file", req.File)
	}
	if st.Size() > maxFileSize {
		return api.Message{}, api.Errorf(api.CodeInvalidArgument, "%s is %d MiB, more than the limit of %d MiB", req.File, st.Size()>>20, maxFileSize>>20)
	}
	head := make([]byte, 512)
	k, _ := io.ReadFull(fh, head)
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return api.Message{}, api.Errorf(api.CodeInternal, "read %s: %v", req.File, err)
	}
	sniffed := http.DetectContentType(head[:k])
	typ := mime.TypeByExtension(filepath.Ext(req.File))
	if typ == "" || isPreviewable(sniffed) {
		typ = sniffed
	}
	var (
		width, height uint32
		preview       []byte
	)
	if isPreviewable(sniffed) {
		width, height, preview, _ = makePreview(fh)
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return api.Message{}, api.Errorf(api.CodeInternal, "read %s: %v", req.File, err)
		}
	}
	if len(typ) > maxFileType {
		typ = "application/octet-stream"
	}
	name := filepath.Base(req.File)
	if len(name) > maxFileName {
		name = name[:maxFileName]
	}
	// Encrypted off the actor (it is the slow part), into this device's
	// chunk store: the sender is the first member others fetch from.
	dir := n.chunkDir(a)
	f, err := encryptFile(fh, st.Size(), func(id [fileHashLen]byte, ct []byte) error { return writeChunk(dir, id, ct) })
	if err != nil {
		return api.Message{}, api.Errorf(api.CodeInternal, "store file: %v", err)
	}
	f.Name, f.Type = strings.ToValidUTF8(name, "_"), typ
	f.Width, f.Height, f.Preview = width, height, preview
	var out api.Message
	err = a.do(ctx, func() error {
		c := &content{Type: contentPost, Flags: contentVisible, Text: req.Text, Mentions: a.resolveMentions(req.Text), File: f}
		if req.ReplyTo != "" {
			t, err := a.findMessage(req.ReplyTo)
			if err != nil {
				return err
			}
			c.HasTarget, c.Target = true, t.ID
		}
		var err error
		out, err = a.postContent(c)
		return err
	})
	if err != nil {
		// Not sent: its chunks would be kept for nothing.
		for _, id := range f.chunkNames() {
			os.Remove(chunkPath(dir, id))
		}
	}
	return out, err
}

// apiFile describes a file a post carries, with how much of it this
// device holds.
func (n *Node) apiFile(a *groupActor, m store.Message, f *fileMeta) api.File {
	out := api.File{ID: hex.EncodeToString(m.ID[:]), Group: a.hexID, Name: f.Name, Size: int64(f.Size), Type: f.Type,
		Hash: hex.EncodeToString(f.Hash[:]), Sender: a.memberName(m.Sender), Time: m.Time,
		Width: int(f.Width), Height: int(f.Height), Preview: previewURL(f.Preview)}
	dir := n.chunkDir(a)
	for i, id := range f.chunkNames() {
		if _, err := os.Stat(chunkPath(dir, id)); err == nil {
			out.Have += chunkLen(f, i)
		}
	}
	return out
}

// chunkLen is the plaintext length of chunk i.
func chunkLen(f *fileMeta, i int) int64 {
	start := int64(i) * int64(f.ChunkSize)
	return min(int64(f.ChunkSize), int64(f.Size)-start)
}

// dropFileChunks deletes the chunks of a deleted message's file.
func (a *groupActor) dropFileChunks(m store.Message) {
	c, err := unmarshalContent(m.Meta)
	if len(m.Meta) == 0 || err != nil || c.File == nil {
		return
	}
	dir := a.n.chunkDir(a)
	for _, id := range c.File.chunkNames() {
		os.Remove(chunkPath(dir, id))
	}
	a.forgetFileAccess(m.ID)
}

// Files implements api.Conversations.
func (n *Node) Files(ctx context.Context, group string) ([]api.File, error) {
	a, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	ms, err := n.db.Messages(a.id, time.Time{}, 1<<30)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "read messages: %v", err)
	}
	var out []api.File
	for _, m := range ms {
		if f := fileOf(m); f != nil {
			out = append(out, n.apiFile(a, m, f))
		}
	}
	return out, nil
}

func fileOf(m store.Message) *fileMeta {
	if len(m.Meta) == 0 || m.Flags&store.FlagDeleted != 0 {
		return nil
	}
	c, err := unmarshalContent(m.Meta)
	if err != nil || c.Type != contentPost {
		return nil
	}
	return c.File
}

// SaveFile implements api.Conversations.
func (n *Node) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	a, err := n.lookup(req.Group)
	if err != nil {
		return api.File{}, err
	}
	if req.Path == "" || !filepath.IsAbs(req.Path) {
		return api.File{}, api.Errorf(api.CodeInvalidArgument, "give an absolute path to save to")
	}
	var (
		m     store.Message
		peers []peer.ID
	)
	err = a.do(ctx, func() error {
		var err error
		if m, err = a.findMessage(req.File); err != nil {
			return err
		}
		if fileOf(m) == nil {
			return api.Errorf(api.CodeNotFound, "message %s carries no file", req.File)
		}
		peers = a.filePeers(m.Sender, a.fileAccessPeers(m.ID))
		return nil
	})
	if err != nil {
		return api.File{}, err
	}
	f := fileOf(m)
	dir := n.chunkDir(a)
	for attempt := 0; ; attempt++ {
		err := n.saveOnce(ctx, a, dir, m.ID, f, peers, req.Path)
		if err == nil {
			break
		}
		if errors.Is(err, ErrFileNotAllowed) {
			return api.File{}, api.Errorf(api.CodeForbidden, "%s was sent before you joined the group: members do not give it out", f.Name)
		}
		if errors.Is(err, ErrFileIncomplete) {
			return api.File{}, api.Errorf(api.CodeUnavailable, "%s: no reachable member holds all of it yet (%v); try again later", f.Name, err)
		}
		if !errors.Is(err, ErrChunkHash) || attempt > 0 {
			return api.File{}, api.Errorf(api.CodeInternal, "save %s: %v", f.Name, err)
		}
		// A chunk kept here was damaged (and is dropped now): fetch it
		// again.
	}
	out := n.apiFile(a, m, f)
	out.Saved = req.Path
	return out, nil
}

// filePeers lists whom to ask for a file's chunks: its sender first, then
// the other members of the canonical epoch that were members when the
// file was sent (allowed; nil: this device has no record of that, so
// every member).
func (a *groupActor) filePeers(sender []byte, allowed map[peer.ID]bool) []peer.ID {
	var out []peer.ID
	self := a.n.net.ID()
	if id, err := parseIdentity(sender); err == nil && id.Peer != self {
		out = append(out, id.Peer)
	}
	for p := range a.headMemberPeers() {
		if allowed != nil && !allowed[p] {
			continue
		}
		if p != self && (len(out) == 0 || p != out[0]) {
			out = append(out, p)
		}
	}
	return out
}

// missingChunks lists the chunks of f not in dir, in order.
func missingChunks(dir string, f *fileMeta) [][fileHashLen]byte {
	var out [][fileHashLen]byte
	for _, id := range f.chunkNames() {
		if _, err := os.Stat(chunkPath(dir, id)); err != nil && !containsChunk(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func containsChunk(ids [][fileHashLen]byte, id [fileHashLen]byte) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// fetchChunks gets the chunks of f that dir lacks from peers, in order,
// each peer asked for everything still missing; a chunk is kept only once
// its hash matches.
func (n *Node) fetchChunks(ctx context.Context, a *groupActor, dir string, file store.MessageID, f *fileMeta, peers []peer.ID, as *assembler) error {
	missing := missingChunks(dir, f)
	var lastErr error
	for _, p := range peers {
		if len(missing) == 0 {
			break
		}
		if err := n.fetchFrom(ctx, a, p, dir, file, f, missing, as); err != nil {
			if errors.Is(err, ErrFileNotAllowed) && (lastErr == nil || errors.Is(lastErr, ErrFileNotAllowed)) {
				// Said by every member asked so far: the error to show.
				lastErr = err
				continue
			}
			lastErr = err
			n.log.Debug("fetch chunks", "peer", p, "err", err)
		}
		missing = missingChunks(dir, f)
	}
	if len(missing) > 0 {
		if lastErr == nil {
			lastErr = errors.New("no member to ask")
		}
		if errors.Is(lastErr, ErrFileNotAllowed) {
			return lastErr
		}
		return fmt.Errorf("%w: %d of %d chunks missing: %w", ErrFileIncomplete, len(missing), len(f.Chunks), lastErr)
	}
	return nil
}

// fetchFrom asks one peer for chunks and keeps those it has.
func (n *Node) fetchFrom(ctx context.Context, a *groupActor, p peer.ID, dir string, file store.MessageID, f *fileMeta, want [][fileHashLen]byte, as *assembler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := n.net.OpenStream(ctx, p, ProtocolFile)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	defer s.Close()
	if err := s.Send((&fileRequest{Group: a.id, File: file, Chunks: want}).marshal()); err != nil {
		s.Reset()
		return err
	}
	s.CloseWrite()
	// Four stages on their own goroutines, so that receiving a chunk,
	// checking it (decrypt and hash), keeping it (its chunk file) and
	// writing the file overlap: the reader below, this loop, the keeper
	// and the assembler's writer. All end before fetchFrom returns (the
	// stream reset ends the reader; closing checked ends the keeper,
	// which closes kept, which ends the writer).
	if as != nil {
		as.incoming = map[[fileHashLen]byte]bool{}
		for _, id := range want {
			as.incoming[id] = true
		}
		// What this peer did not send stays missing; a later peer's
		// fetch sets its own.
		defer func() { as.incoming = nil }()
	}
	frames := make(chan []byte, 8)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(frames)
		for range want {
			frame, err := s.Recv()
			if err != nil {
				return
			}
			select {
			case frames <- frame:
			case <-ctx.Done():
				return
			}
		}
	})
	type keptChunk struct {
		id     [fileHashLen]byte
		ct, pt []byte
	}
	// Checked chunks are kept (chunk file) on one goroutine and then
	// written to the file on another: a chunk reaches the assembler only
	// once its chunk file is whole, which catchUp relies on.
	checked := make(chan keptChunk, 8)
	kept := make(chan keptChunk, 8)
	var storeErr, writeErr error
	wg.Go(func() {
		defer close(kept)
		for k := range checked {
			if storeErr != nil {
				continue
			}
			if storeErr = writeChunk(dir, k.id, k.ct); storeErr != nil {
				cancel()
				continue
			}
			kept <- k
			n.emit(api.Event{Kind: api.EventFileProgress, Group: a.hexID, Time: n.cfg.Clock.Now(),
				Detail: fmt.Sprintf("%s: chunk %s received", f.Name, hex.EncodeToString(k.id[:4]))})
		}
	})
	wg.Go(func() {
		for k := range kept {
			if writeErr != nil || as == nil {
				continue
			}
			if writeErr = as.take(k.id, k.ct, k.pt); writeErr != nil {
				cancel() // stops the reader and this transfer
			}
		}
	})
	gcm, err := fileAEAD(f)
	if err != nil {
		return err
	}
	index := make(map[[fileHashLen]byte]int, len(f.Chunks))
	for i, id := range f.chunkNames() {
		index[id] = i
	}
	err = func() error {
		defer close(checked)
		for _, id := range want {
			frame, ok := <-frames
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("node: receive chunk: stream ended after %s", hex.EncodeToString(id[:4]))
			}
			if len(frame) == 1 && frame[0] == chunkRefused {
				return fmt.Errorf("%w: %s refused", ErrFileNotAllowed, p)
			}
			if len(frame) == 0 || frame[0] != chunkOK {
				continue // the peer lacks it
			}
			i, ok := index[id]
			if !ok {
				return fmt.Errorf("node: chunk %s is not part of %s", hex.EncodeToString(id[:4]), f.Name)
			}
			// Each plaintext gets its own buffer: the writer still holds
			// the previous one.
			pt, err := f.checkChunk(gcm, i, frame[1:], nil)
			if err != nil {
				return err // ErrChunkHash: this peer is not trusted further
			}
			checked <- keptChunk{id, frame[1:], pt}
		}
		return nil
	}()
	if err != nil {
		s.Reset()
	}
	cancel()
	wg.Wait()
	if storeErr != nil {
		return storeErr
	}
	if writeErr != nil {
		return writeErr
	}
	return err
}

// assembler writes a file's plaintext to a temporary file beside its
// destination, chunk by chunk in order, as chunks become available (kept
// here already, or just received), hashing as it goes; finish checks the
// size and hash and renames it into place. Each chunk is authenticated by
// GCM under the file's key, so a chunk file damaged since it was kept (a
// crash before it reached the disk) is caught, dropped and fetched again
// (SaveFile).
type assembler struct {
	f    *fileMeta
	dir  string
	gcm  cipher.AEAD
	out  *os.File
	sum  hash.Hash // version 1: the content's hash so far
	next int
	// names are the chunks' names (fileMeta.chunkNames).
	names [][fileHashLen]byte
	size  uint64
	pt    []byte
	// incoming are the chunks a fetch in progress is writing: catchUp
	// must not read their files (written in place, perhaps half), they
	// come through take.
	incoming map[[fileHashLen]byte]bool
}

func newAssembler(dir string, f *fileMeta, path string) (*assembler, error) {
	gcm, err := fileAEAD(f)
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(filepath.Dir(path), ".grove-save")
	if err != nil {
		return nil, err
	}
	as := &assembler{f: f, dir: dir, gcm: gcm, out: out, names: f.chunkNames()}
	if f.Version < 2 {
		// Version 2 chunks were checked against the file's hash chain
		// as they arrived (and GCM catches a chunk file damaged since).
		as.sum = sha256.New()
	}
	return as, nil
}

// take writes chunk id, just received (pt: its plaintext, when checking
// it decrypted it already), if it is the next one, and then every
// following chunk already kept here.
func (as *assembler) take(id [fileHashLen]byte, ct, pt []byte) error {
	delete(as.incoming, id)
	if as.next >= len(as.names) || as.names[as.next] != id {
		return nil // written later, from its chunk file
	}
	var err error
	if pt != nil {
		err = as.writePlain(pt)
	} else {
		err = as.write(ct)
	}
	if err != nil {
		return err
	}
	return as.catchUp()
}

// catchUp writes the following chunks that are kept here.
func (as *assembler) catchUp() error {
	for as.next < len(as.names) {
		if as.incoming[as.names[as.next]] {
			return nil
		}
		ct, err := os.ReadFile(chunkPath(as.dir, as.names[as.next]))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := as.write(ct); err != nil {
			return err
		}
	}
	return nil
}

func (as *assembler) write(ct []byte) error {
	i := as.next
	var err error
	as.pt, err = as.gcm.Open(as.pt[:0], chunkNonce(i), ct, nil)
	if err != nil {
		os.Remove(chunkPath(as.dir, as.names[i]))
		return fmt.Errorf("%w: chunk %d does not decrypt", ErrChunkHash, i)
	}
	return as.writePlain(as.pt)
}

// writePlain writes the plaintext of the next chunk.
func (as *assembler) writePlain(pt []byte) error {
	i := as.next
	if int64(len(pt)) != chunkLen(as.f, i) {
		return fmt.Errorf("node: chunk %d has %d bytes, want %d", i, len(pt), chunkLen(as.f, i))
	}
	if as.sum != nil {
		as.sum.Write(pt)
	}
	if _, err := as.out.Write(pt); err != nil {
		return err
	}
	as.size += uint64(len(pt))
	as.next++
	return nil
}

// finish checks the whole file and renames it to path. Not synced, like a
// copy with cp: the chunks stay here, so a file lost in a crash is saved
// again in a moment.
func (as *assembler) finish(path string) error {
	if err := as.catchUp(); err != nil {
		return err
	}
	if as.next < len(as.names) {
		return fmt.Errorf("%w: chunk %d missing", ErrFileIncomplete, as.next)
	}
	if as.size != as.f.Size || (as.sum != nil && !bytes.Equal(as.sum.Sum(nil), as.f.Hash[:])) {
		return errors.New("node: file does not match its hash")
	}
	if err := as.out.Close(); err != nil {
		return err
	}
	return os.Rename(as.out.Name(), path)
}

// abort drops the temporary file (after finish, it is gone already).
func (as *assembler) abort() {
	as.out.Close()
	os.Remove(as.out.Name())
}

// saveOnce fetches what is missing of f and writes it to path.
func (n *Node) saveOnce(ctx context.Context, a *groupActor, dir string, file store.MessageID, f *fileMeta, peers []peer.ID, path string) error {
	as, err := newAssembler(dir, f, path)
	if err != nil {
		return err
	}
	defer as.abort()
	if err := as.catchUp(); err != nil {
		return err
	}
	if err := n.fetchChunks(ctx, a, dir, file, f, peers, as); err != nil {
		return err
	}
	return as.finish(path)
}

// serveFile is the server side of /grove/file/1: chunks of a group's
// files, to peers whose credential is in the group's canonical epoch, one
// frame per chunk asked (its status, then the chunk).
func (n *Node) serveFile(ctx context.Context, s p2p.Stream) {
	frame, err := s.Recv()
	if err != nil {
		s.Reset()
		return
	}
	req, err := unmarshalFileRequest(frame)
	if err != nil {
		s.Reset()
		return
	}
	a, err := n.lookupServing(hexOf(req.Group))
	if err != nil || !bytesEqual(a.id, req.Group) {
		s.Reset()
		return
	}
	var member bool
	var accessErr error
	if err := a.do(ctx, func() error {
		member = a.phase != phaseRemoved && a.headMemberPeers()[s.RemotePeer()]
		if member {
			accessErr = a.checkFileAccess(s.RemotePeer(), req)
		}
		return nil
	}); err != nil || !member {
		n.log.Info("file request refused", "peer", s.RemotePeer(), "err", errNotMember)
		s.Reset()
		return
	}
	if accessErr != nil {
		// A member now, but not when the file was sent: told so (it can
		// stop asking), and given nothing.
		n.log.Info("file request refused", "peer", s.RemotePeer(), "err", accessErr)
		s.Send([]byte{chunkRefused})
		s.CloseWrite()
		return
	}
	dir := n.chunkDir(a)
	// One buffer for every frame (Send has written it when it returns):
	// the status byte, then the chunk read in place behind it.
	buf := make([]byte, 1+fileChunkSize+16)
	for _, id := range req.Chunks {
		// Not hashed here: the receiver checks every chunk against its
		// name before keeping it.
		out, err := readChunkFrame(chunkPath(dir, id), buf)
		if err != nil {
			out = []byte{chunkMissing}
		}
		if err := s.Send(out); err != nil {
			s.Reset()
			return
		}
	}
	s.CloseWrite()
	// Progress on the sending side: chunks served, per request.
	n.emit(api.Event{Kind: api.EventFileProgress, Group: a.hexID, Time: n.cfg.Clock.Now(),
		Detail: fmt.Sprintf("sent %d chunks to %s", len(req.Chunks), s.RemotePeer())})
}

// readChunkFrame reads a chunk file into a chunkOK frame, in buf when it
// fits.
func readChunkFrame(path string, buf []byte) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxChunkSize+16 {
		return nil, fmt.Errorf("node: chunk file of %d bytes", st.Size())
	}
	if int64(len(buf)) < 1+st.Size() {
		buf = make([]byte, 1+st.Size())
	}
	out := buf[:1+st.Size()]
	out[0] = chunkOK
	if _, err := io.ReadFull(fh, out[1:]); err != nil {
		return nil, err
	}
	return out, nil
}

// dropGroupFiles deletes the chunks of a group this device left.
func (n *Node) dropGroupFiles(a *groupActor) {
	if err := os.RemoveAll(n.chunkDir(a)); err != nil {
		n.log.Warn("delete file chunks", "err", err)
	}
}
