package node

import (
	"fmt"
	"unicode/utf8"
)

// The content payload (kindContent): what a member says beyond plain text
// (a post with a reply target, mentions or a file; a reaction; an edit; a
// delete; a read receipt; a typing indicator). It is versioned by type:
//
//	u8 type | u8 flags | vec body
//
// A device that does not know a type keeps the body unparsed and, when
// the sender set contentVisible, shows an "unsupported message" in its
// place; an unknown type without that flag (a new kind of control or
// ephemeral signal) is ignored. So new types roll out without older
// devices failing on them or hiding that something was said. Known types
// parse their body strictly (trailing bytes rejected), so that a new field
// is a new type, never a silent misreading.

// contentType says what a content payload carries.
type contentType uint8

const (
	contentPost    contentType = 1 // text, optionally replying, mentioning, with a file
	contentReact   contentType = 2 // add or remove an emoji on Target
	contentEdit    contentType = 3 // replace the text of the sender's Target
	contentDelete  contentType = 4 // delete Target for everyone
	contentReceipt contentType = 5 // the sender read up to Target
	contentTyping  contentType = 6 // the sender is typing (never stored)
	// contentPostFile2 is the wire type of a post whose file is described
	// the second way (fileMeta, Version 2: chunks named by the SHA-256
	// chaining values of the content, an optional image preview). It
	// decodes to a contentPost; a device that predates it shows an
	// "unsupported message" instead of misreading the file.
	contentPostFile2 contentType = 7
)

// contentVisible: the payload is a message the user should see; an
// unknown type with it is shown as unsupported.
const contentVisible uint8 = 1

// Bounds of content fields.
const (
	maxContent   = maxText + 32<<10
	maxEmoji     = 64
	maxMentions  = 32
	maxFileName  = 255
	maxFileType  = 127
	maxChunks    = 256
	fileHashLen  = 32
	fileKeyLen   = 32
	maxChunkSize = 4 << 20
	// maxPreview bounds an image preview carried in a post: a thumbnail
	// of at most maxPreviewSide pixels a side is a few KiB.
	maxPreview     = 12 << 10
	maxPreviewSide = 160
	// maxFileSize is the largest file a post may carry (issue 21: 100 MiB).
	maxFileSize = 100 << 20
)

// content is a decoded content payload.
type content struct {
	Type  contentType
	Flags uint8
	// Text: post and edit.
	Text string
	// Target: the message reacted to, edited, deleted or read up to; for
	// a post, the message replied to when HasTarget.
	Target    [16]byte
	HasTarget bool
	Emoji     string // react
	Remove    bool   // react: remove the emoji instead of adding it
	// Mentions: post and edit, the credential identities of the members
	// named with @name.
	Mentions [][]byte
	File     *fileMeta // post
	Body     []byte    // an unknown type's body, kept as received
}

// fileMeta describes a file sent in a post: enough to fetch its chunks
// from any member, decrypt them with Key and check the result.
type fileMeta struct {
	Name      string
	Size      uint64
	Type      string // media type, as the sender guessed it
	Hash      [fileHashLen]byte
	Key       [fileKeyLen]byte
	ChunkSize uint32
	// Version 1: Chunks are the SHA-256 hashes of the encrypted chunks,
	// in order: the chunks' names on /grove/file/1 and their integrity
	// check. Version 2: Chunks are the SHA-256 chaining values of the
	// plaintext after each chunk (the last is Hash), so that one SHA-256
	// pass over the content both names every chunk and gives the file's
	// hash (files.go, chunkName and checkChunk).
	Chunks  [][fileHashLen]byte
	Version uint8
	// Width, Height and Preview (version 2, an image): the picture's size
	// and a small JPEG or PNG thumbnail of it (Preview empty when the
	// sender made none).
	Width, Height uint32
	Preview       []byte
	// names caches the chunks' names (chunkName).
	names [][fileHashLen]byte
}

func (c *content) marshal() []byte {
	var body wbuf
	wireType := c.Type
	switch c.Type {
	case contentPost:
		body.vec([]byte(c.Text))
		putOptionalID(&body, c.HasTarget, c.Target)
		putMentions(&body, c.Mentions)
		if c.File != nil && c.File.Version >= 2 {
			wireType = contentPostFile2
			c.File.marshal2To(&body)
		} else if c.File == nil {
			body.u8(0)
		} else {
			body.u8(1)
			c.File.marshalTo(&body)
		}
	case contentReact:
		body.raw(c.Target[:])
		body.vec([]byte(c.Emoji))
		body.u8(boolByte(c.Remove))
	case contentEdit:
		body.raw(c.Target[:])
		body.vec([]byte(c.Text))
		putMentions(&body, c.Mentions)
	case contentDelete, contentReceipt:
		body.raw(c.Target[:])
	case contentTyping:
	default:
		body.raw(c.Body)
	}
	var w wbuf
	w.u8(byte(wireType))
	w.u8(c.Flags)
	w.vec(body.b)
	return w.b
}

func unmarshalContent(data []byte) (*content, error) {
	r := rbuf{b: data}
	c := &content{Type: contentType(r.u8("content type")), Flags: r.u8("content flags")}
	body := r.vec(maxContent, "content body")
	if err := r.done("content"); err != nil {
		return nil, err
	}
	b := rbuf{b: body}
	switch c.Type {
	case contentPost:
		c.Text = string(b.vec(maxText, "text"))
		c.HasTarget, c.Target = getOptionalID(&b)
		c.Mentions = getMentions(&b)
		switch b.u8("file flag") {
		case 0:
		case 1:
			c.File = unmarshalFileMeta(&b)
		default:
			b.fail("file flag")
		}
	case contentPostFile2:
		c.Type = contentPost
		c.Text = string(b.vec(maxText, "text"))
		c.HasTarget, c.Target = getOptionalID(&b)
		c.Mentions = getMentions(&b)
		c.File = unmarshalFileMeta2(&b)
	case contentReact:
		copy(c.Target[:], b.fixed(16, "target"))
		c.Emoji = string(b.vec(maxEmoji, "emoji"))
		c.Remove = readBool(&b, "remove flag")
		if b.err == nil && (c.Emoji == "" || !utf8.ValidString(c.Emoji)) {
			b.fail("emoji")
		}
	case contentEdit:
		copy(c.Target[:], b.fixed(16, "target"))
		c.Text = string(b.vec(maxText, "text"))
		c.Mentions = getMentions(&b)
	case contentDelete, contentReceipt:
		copy(c.Target[:], b.fixed(16, "target"))
	case contentTyping:
	default:
		c.Body = body
		return c, nil
	}
	if err := b.done("content body"); err != nil {
		return nil, err
	}
	return c, nil
}

func (f *fileMeta) marshalTo(w *wbuf) {
	w.vec([]byte(f.Name))
	w.u64(f.Size)
	w.vec([]byte(f.Type))
	w.raw(f.Hash[:])
	w.raw(f.Key[:])
	w.u64(uint64(f.ChunkSize))
	var hs []byte
	for _, h := range f.Chunks {
		hs = append(hs, h[:]...)
	}
	w.vec(hs)
}

func unmarshalFileMeta(r *rbuf) *fileMeta {
	f := &fileMeta{Version: 1}
	f.Name = string(r.vec(maxFileName, "file name"))
	f.Size = r.u64("file size")
	f.Type = string(r.vec(maxFileType, "file type"))
	copy(f.Hash[:], r.fixed(fileHashLen, "file hash"))
	copy(f.Key[:], r.fixed(fileKeyLen, "file key"))
	cs := r.u64("chunk size")
	hs := r.vec(maxChunks*fileHashLen, "chunk hashes")
	if r.err != nil {
		return nil
	}
	// The claimed size must be what the chunks can hold: a file claiming
	// 10 GiB in a hundred chunks is refused here, before anything is
	// fetched or allocated.
	if f.Size > maxFileSize || cs == 0 || cs > maxChunkSize || len(hs)%fileHashLen != 0 ||
		f.Size > uint64(len(hs)/fileHashLen)*cs || (len(hs) > 0 && f.Size <= uint64(len(hs)/fileHashLen-1)*cs) ||
		(f.Size == 0) != (len(hs) == 0) {
		r.fail("file size and chunks disagree")
		return nil
	}
	f.ChunkSize = uint32(cs)
	for i := 0; i < len(hs); i += fileHashLen {
		var h [fileHashLen]byte
		copy(h[:], hs[i:])
		f.Chunks = append(f.Chunks, h)
	}
	return f
}

// marshal2To writes a version 2 file description: the version 1 fields,
// then the image's size and preview.
func (f *fileMeta) marshal2To(w *wbuf) {
	f.marshalTo(w)
	w.u64(uint64(f.Width))
	w.u64(uint64(f.Height))
	w.vec(f.Preview)
}

func unmarshalFileMeta2(r *rbuf) *fileMeta {
	f := unmarshalFileMeta(r)
	wd, ht := r.u64("image width"), r.u64("image height")
	pv := r.vec(maxPreview, "preview")
	if r.err != nil || f == nil {
		return nil
	}
	// Chaining values exist only at block boundaries: a chunk size that
	// is not a multiple of SHA-256's 64-byte block cannot be checked.
	if f.ChunkSize%64 != 0 || (len(f.Chunks) > 0 && f.Chunks[len(f.Chunks)-1] != f.Hash) ||
		wd > 1<<20 || ht > 1<<20 || (len(pv) > 0 && (wd == 0 || ht == 0)) {
		r.fail("file description")
		return nil
	}
	f.Version, f.Width, f.Height = 2, uint32(wd), uint32(ht)
	f.nameChunks()
	if len(pv) > 0 {
		f.Preview = pv
	}
	return f
}

func putOptionalID(w *wbuf, ok bool, id [16]byte) {
	if !ok {
		w.u8(0)
		return
	}
	w.u8(1)
	w.raw(id[:])
}

func getOptionalID(r *rbuf) (bool, [16]byte) {
	var id [16]byte
	switch r.u8("optional id") {
	case 0:
		return false, id
	case 1:
		copy(id[:], r.fixed(16, "id"))
		return true, id
	}
	r.fail("optional id flag")
	return false, id
}

func putMentions(w *wbuf, ms [][]byte) {
	w.u8(byte(len(ms)))
	for _, m := range ms {
		w.vec(m)
	}
}

func getMentions(r *rbuf) [][]byte {
	n := int(r.u8("mention count"))
	if n > maxMentions {
		r.fail("mention count")
		return nil
	}
	var out [][]byte
	for range n {
		m := r.vec(maxIdentity, "mention")
		if r.err != nil {
			return nil
		}
		if len(m) == 0 {
			r.fail("empty mention")
			return nil
		}
		out = append(out, m)
	}
	return out
}

// String names a content type for logs and the API.
func (t contentType) String() string {
	switch t {
	case contentPost:
		return "post"
	case contentReact:
		return "react"
	case contentEdit:
		return "edit"
	case contentDelete:
		return "delete"
	case contentReceipt:
		return "receipt"
	case contentTyping:
		return "typing"
	}
	return fmt.Sprintf("type%d", uint8(t))
}
