package cli

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
	"testing"

	"grove/node/api"
)

// writeTestPNG writes a w×h PNG with a pattern to path.
func writeTestPNG(t *testing.T, path string, w, h int) {
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
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConversationMarksImage: log shows a picture's size before its file
// mark.
func TestConversationMarksImage(t *testing.T) {
	m := api.Message{File: &api.File{ID: "0123456789abcdef", Name: "s.png", Size: 2048, Width: 1024, Height: 768}}
	if got := conversationMarks(m, "look"); !strings.HasPrefix(got, "[image 1024×768] [file s.png,") || !strings.HasSuffix(got, " look") {
		t.Fatalf("log line %q", got)
	}
}
