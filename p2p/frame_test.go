package p2p

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 127, 128, 300, 16383, 16384, 100000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		var buf bytes.Buffer
		if err := WriteFrame(&buf, payload, 1<<20); err != nil {
			t.Fatal(err)
		}
		if got := AppendFrame(nil, payload); !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("size %d: WriteFrame and AppendFrame differ", size)
		}
		got, err := ReadFrame(bufio.NewReader(&buf), 1<<20)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("size %d: got %d bytes, err %v", size, len(got), err)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty stream is EOF", nil, 10, io.EOF},
		{"too large", AppendFrame(nil, make([]byte, 11)), 10, ErrFrameTooLarge},
		{"huge length rejected before allocation", []byte{0xff, 0xff, 0xff, 0x7f}, 1 << 20, ErrFrameTooLarge},
		{"length longer than 4 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x01}, 1 << 20, ErrFrameLength},
		{"non-minimal length", []byte{0x81, 0x00, 'x'}, 10, ErrFrameLength},
		{"truncated length", []byte{0x80}, 10, ErrFrameTruncated},
		{"truncated body", []byte{0x05, 'a', 'b'}, 10, ErrFrameTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tt.in)), tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame: got %v, want %v", err, tt.want)
			}
			if tt.want == io.EOF {
				return
			}
			if _, _, err := DecodeFrame(tt.in, tt.max); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeFrame: got %v, want %v", err, tt.want)
			}
		})
	}
	if err := WriteFrame(io.Discard, make([]byte, 11), 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame oversize: %v", err)
	}
}

// FuzzDecodeFrame checks that hostile input never panics, that the stream
// and slice decoders agree, and that decode-then-encode is byte-exact.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("hello")))
	f.Add(AppendFrame(AppendFrame(nil, make([]byte, 200)), []byte{1}))
	f.Add([]byte{0x81, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	const maxSize = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		payload, rest, err := DecodeFrame(in, maxSize)
		sp, serr := ReadFrame(bufio.NewReader(bytes.NewReader(in)), maxSize)
		if err != nil {
			if serr == nil {
				t.Fatalf("DecodeFrame failed (%v) but ReadFrame succeeded", err)
			}
			return
		}
		if serr != nil || !bytes.Equal(sp, payload) {
			t.Fatalf("ReadFrame disagrees: %v", serr)
		}
		if len(payload) > maxSize {
			t.Fatalf("payload of %d bytes exceeds limit", len(payload))
		}
		enc := AppendFrame(nil, payload)
		if !bytes.Equal(enc, in[:len(in)-len(rest)]) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, in[:len(in)-len(rest)])
		}
	})
}
