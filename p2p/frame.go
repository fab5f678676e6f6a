package p2p

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Frames on every Grove stream are a uvarint length followed by that many
// bytes. The length uses the minimal encoding only, so each frame has exactly
// one encoding and decode-then-encode is byte-exact.

// MaxFrameSizeLimit is the largest MaxFrameSize a Config may set.
const MaxFrameSizeLimit = 16 << 20

// maxVarintLen bounds the length prefix; 4 bytes cover MaxFrameSizeLimit.
const maxVarintLen = 4

var (
	// ErrFrameTooLarge means a frame's length exceeds the limit. Nothing of
	// the frame body has been read or allocated.
	ErrFrameTooLarge = errors.New("p2p: frame too large")
	// ErrFrameTruncated means the stream ended inside a frame.
	ErrFrameTruncated = errors.New("p2p: truncated frame")
	// ErrFrameLength means the length prefix is malformed (non-minimal or
	// longer than maxVarintLen bytes).
	ErrFrameLength = errors.New("p2p: malformed frame length")
)

// AppendFrame appends the framed encoding of payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	n := uint64(len(payload))
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	dst = append(dst, byte(n))
	return append(dst, payload...)
}

// DecodeFrame parses one frame from the front of b, returning its payload
// (aliasing b) and the remaining bytes.
func DecodeFrame(b []byte, maxSize int) (payload, rest []byte, err error) {
	n, used, err := decodeLength(func(i int) (byte, error) {
		if i >= len(b) {
			return 0, ErrFrameTruncated
		}
		return b[i], nil
	})
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(maxSize) {
		return nil, nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, maxSize)
	}
	b = b[used:]
	if uint64(len(b)) < n {
		return nil, nil, ErrFrameTruncated
	}
	return b[:n], b[n:], nil
}

// decodeLength reads a minimal uvarint of at most maxVarintLen bytes; next
// returns the i-th byte.
func decodeLength(next func(i int) (byte, error)) (n uint64, used int, err error) {
	for i := 0; i < maxVarintLen; i++ {
		c, err := next(i)
		if err != nil {
			return 0, 0, err
		}
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, 0, ErrFrameLength // non-minimal: trailing zero group
			}
			return n, i + 1, nil
		}
	}
	return 0, 0, ErrFrameLength
}

// WriteFrame writes payload as one frame.
func WriteFrame(w io.Writer, payload []byte, maxSize int) error {
	if len(payload) > maxSize {
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, len(payload), maxSize)
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, maxVarintLen+len(payload)), payload))
	return err
}

// ReadFrame reads one frame. It returns io.EOF only when the stream ends
// cleanly before the first byte of a frame.
func ReadFrame(r *bufio.Reader, maxSize int) ([]byte, error) {
	n, _, err := decodeLength(func(i int) (byte, error) {
		c, err := r.ReadByte()
		if err == io.EOF && i > 0 {
			return 0, ErrFrameTruncated
		}
		return c, err
	})
	if err != nil {
		return nil, err
	}
	if n > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, maxSize)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrFrameTruncated
		}
		return nil, err
	}
	return buf, nil
}
