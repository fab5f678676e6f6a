package node

import (
	"bytes"
	"encoding/base64"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

func writePNG(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 0xff})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shot.dat") // the name says nothing: the content does
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImagePreview: a picture sent as a file carries its size and a small
// JPEG thumbnail that the receiver shows (as a data: URL in the API).
func TestImagePreview(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	m, err := alice.Post(ctx, api.PostRequest{Group: g, File: writePNG(t, 1024, 768)})
	if err != nil {
		t.Fatal(err)
	}
	var got api.Message
	eventually(t, 10*time.Second, "bob sees the picture", func() error {
		got, err = findAPI(bob, g, m.ID)
		return err
	})
	f := got.File
	if f == nil || f.Width != 1024 || f.Height != 768 || f.Type != "image/png" {
		t.Fatalf("file %+v", f)
	}
	const prefix = "data:image/jpeg;base64,"
	if !strings.HasPrefix(f.Preview, prefix) {
		t.Fatalf("preview %.40q", f.Preview)
	}
	raw, err := base64.StdEncoding.DecodeString(f.Preview[len(prefix):])
	if err != nil || len(raw) > maxPreview {
		t.Fatalf("preview of %d bytes: %v", len(raw), err)
	}
	img, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != maxPreviewSide || img.Bounds().Dy() != 120 {
		t.Fatalf("preview %v: %v", img.Bounds(), err)
	}
}

// TestPreviewBombNotDecoded: a small PNG claiming 60000×60000 pixels gets
// its size recorded and no preview, without being decoded.
func TestPreviewBombNotDecoded(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	b := buf.Bytes()
	// The IHDR width and height (bytes 16..24), and its CRC, rewritten.
	copy(b[16:], []byte{0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60})
	fixPNGChunkCRC(b[8:])
	w, h, p, ok := makePreview(bytes.NewReader(b))
	if !ok || w != 60000 || h != 60000 || p != nil {
		t.Fatalf("bomb: %d×%d, preview %d bytes, ok %v", w, h, len(p), ok)
	}
	if _, _, _, ok := makePreview(bytes.NewReader([]byte("not a picture"))); ok {
		t.Fatal("text taken for a picture")
	}
}

// TestPreviewValidated: a receiver drops a preview that is too large, not
// a picture, larger than a thumbnail, or does not decode; it keeps a
// real one.
func TestPreviewValidated(t *testing.T) {
	thumb := func(w, h int) []byte {
		var buf bytes.Buffer
		jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h)), nil)
		return buf.Bytes()
	}
	good := thumb(160, 90)
	for name, p := range map[string][]byte{
		"too large":   bytes.Repeat([]byte{0xff}, maxPreview+1),
		"text":        []byte("hello"),
		"big picture": thumb(400, 300),
		"truncated":   good[:len(good)/2],
	} {
		f := &fileMeta{Preview: p}
		if checkPreview(f); f.Preview != nil {
			t.Errorf("%s: preview kept", name)
		}
	}
	f := &fileMeta{Preview: good}
	if checkPreview(f); f.Preview == nil {
		t.Error("a real thumbnail was dropped")
	}
}

// fixPNGChunkCRC recomputes the CRC of the PNG chunk at the start of b.
func fixPNGChunkCRC(b []byte) {
	n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	crc := crc32.ChecksumIEEE(b[4 : 8+n])
	b[8+n], b[9+n], b[10+n], b[11+n] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
}
