// Image previews (issue 21): when a file is a PNG, JPEG or GIF (by its
// content, not its name), the sender puts a thumbnail of at most
// maxPreviewSide pixels a side in the post's file description, with the
// picture's size. The sender reads the picture's header first and decodes
// nothing larger than maxPreviewPixels (a small file can claim a huge
// picture: a decompression bomb). Receivers keep a preview only if it is
// small, a JPEG or PNG of at most maxPreviewSide pixels a side, and
// decodes.

package node

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // decoded for previews
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
)

// maxPreviewPixels bounds the pictures the sender decodes for a preview:
// 40 megapixels, about 160 MiB decoded.
const maxPreviewPixels = 40 << 20

// isPreviewable reports whether sniffed content is a picture a preview is
// made of.
func isPreviewable(sniffed string) bool {
	switch sniffed {
	case "image/png", "image/jpeg", "image/gif":
		return true
	}
	return false
}

// makePreview reads a picture from r and returns its size and a JPEG
// thumbnail (nil when the picture is too large to decode or the
// thumbnail too large to carry). ok is false when r is no picture.
func makePreview(r io.ReadSeeker) (width, height uint32, preview []byte, ok bool) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > 1<<20 || cfg.Height > 1<<20 {
		return 0, 0, nil, false
	}
	width, height = uint32(cfg.Width), uint32(cfg.Height)
	if int64(cfg.Width)*int64(cfg.Height) > maxPreviewPixels {
		return width, height, nil, true
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return width, height, nil, true
	}
	img, _, err := image.Decode(r)
	if err != nil {
		return width, height, nil, true
	}
	thumb := shrink(img, maxPreviewSide)
	for _, q := range []int{75, 50, 30} {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: q}); err == nil && buf.Len() <= maxPreview {
			return width, height, buf.Bytes(), true
		}
	}
	return width, height, nil, true
}

// shrink scales img to fit side×side, averaging a few samples of the
// source under each target pixel, over white (a JPEG has no alpha).
func shrink(img image.Image, side int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if w > side || h > side {
		if w >= h {
			tw, th = side, max(1, h*side/w)
		} else {
			tw, th = max(1, w*side/h), side
		}
	}
	out := image.NewRGBA(image.Rect(0, 0, tw, th))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	const samples = 4 // per axis, under each target pixel
	for y := range th {
		for x := range tw {
			var r, g, bl, a uint32
			for sy := range samples {
				for sx := range samples {
					px := b.Min.X + (x*samples+sx)*w/(tw*samples)
					py := b.Min.Y + (y*samples+sy)*h/(th*samples)
					cr, cg, cb, ca := img.At(px, py).RGBA()
					r, g, bl, a = r+cr, g+cg, bl+cb, a+ca
				}
			}
			const n = samples * samples
			// Premultiplied colour over white: c + (1-a)*white.
			inv := 0xffff - a/n
			out.SetRGBA(x, y, color.RGBA{
				R: uint8((r/n + inv) >> 8), G: uint8((g/n + inv) >> 8), B: uint8((bl/n + inv) >> 8), A: 0xff,
			})
		}
	}
	return out
}

// validPreview reports whether a received preview is one to show: small,
// a JPEG or PNG of at most maxPreviewSide pixels a side, that decodes.
func validPreview(p []byte) bool {
	if len(p) == 0 || len(p) > maxPreview {
		return false
	}
	typ := http.DetectContentType(p)
	if typ != "image/jpeg" && typ != "image/png" {
		return false
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(p))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxPreviewSide || cfg.Height > maxPreviewSide {
		return false
	}
	if typ == "image/png" {
		_, err = png.Decode(bytes.NewReader(p))
	} else {
		_, err = jpeg.Decode(bytes.NewReader(p))
	}
	return err == nil
}

// checkPreview drops a received preview that is not one to show (the
// file itself is kept).
func checkPreview(f *fileMeta) {
	if f != nil && f.Preview != nil && !validPreview(f.Preview) {
		f.Preview = nil
	}
}

// previewURL is a preview as a data: URL, for the API.
func previewURL(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return "data:" + http.DetectContentType(p) + ";base64," + base64.StdEncoding.EncodeToString(p)
}
