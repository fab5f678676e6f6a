package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ErrTimeout wraps stream errors caused by a deadline.
var ErrTimeout = errors.New("p2p: stream timeout")

// Serve installs h for proto. Each inbound stream runs h in its own
// goroutine, which Close waits for.
func (n *Host) Serve(proto protocol.ID, h StreamHandler) {
	n.h.SetStreamHandler(proto, func(s network.Stream) {
		if !n.track() {
			s.Reset()
			return
		}
		defer n.handlers.Done()
		fs := newFrameStream(s, n.cfg.MaxFrameSize, n.cfg.StreamTimeout)
		defer fs.Close()
		h(n.ctx, fs)
	})
}

// track registers a handler goroutine with Close, unless closed already.
func (n *Host) track() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.handlers.Add(1)
	return true
}

// OpenStream opens a framed stream. Limited (relayed) connections are
// allowed: a peer behind NAT may be reachable only through a relay, and the
// protocols' small exchanges fit within relay v2's limits.
func (n *Host) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	ctx = network.WithAllowLimitedConn(ctx, "grove")
	s, err := n.h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s to %s: %w", proto, p, err)
	}
	return newFrameStream(s, n.cfg.MaxFrameSize, n.cfg.StreamTimeout), nil
}

// Request opens a stream, sends req, and returns the single reply frame.
// The whole exchange is bounded by ctx and by Config.StreamTimeout.
func (n *Host) Request(ctx context.Context, p peer.ID, proto protocol.ID, req []byte) ([]byte, error) {
	return request(ctx, n.cfg.StreamTimeout, proto, req, func(ctx context.Context) (Stream, error) {
		return n.OpenStream(ctx, p, proto)
	})
}

// frameStream frames a libp2p stream. Each Send and Recv has its own
// deadline, so a stalled peer cannot hold a goroutine forever.
type frameStream struct {
	s       network.Stream
	r       *bufio.Reader
	max     int
	timeout time.Duration

	sendMu sync.Mutex // frames must not interleave
	recvMu sync.Mutex
}

var _ Stream = (*frameStream)(nil)

func newFrameStream(s network.Stream, maxFrame int, timeout time.Duration) *frameStream {
	return &frameStream{s: s, r: bufio.NewReader(s), max: maxFrame, timeout: timeout}
}

func (f *frameStream) Send(frame []byte) error {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	if err := f.s.SetWriteDeadline(time.Now().Add(f.timeout)); err != nil {
		return fmt.Errorf("p2p: set write deadline: %w", err)
	}
	return streamErr("send", WriteFrame(f.s, frame, f.max))
}

func (f *frameStream) Recv() ([]byte, error) {
	f.recvMu.Lock()
	defer f.recvMu.Unlock()
	if err := f.s.SetReadDeadline(time.Now().Add(f.timeout)); err != nil {
		return nil, fmt.Errorf("p2p: set read deadline: %w", err)
	}
	b, err := ReadFrame(f.r, f.max)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrFrameLength) {
			// The peer broke framing; nothing after this can be trusted.
			f.s.Reset()
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, streamErr("recv", err)
	}
	return b, nil
}

func streamErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s: %v", ErrTimeout, op, err)
	}
	if errors.Is(err, network.ErrReset) {
		return fmt.Errorf("%w: %s: stream reset: %v", ErrRemote, op, err)
	}
	return fmt.Errorf("p2p: %s: %w", op, err)
}

func (f *frameStream) CloseWrite() error     { return f.s.CloseWrite() }
func (f *frameStream) Close() error          { return f.s.Close() }
func (f *frameStream) Reset() error          { return f.s.Reset() }
func (f *frameStream) RemotePeer() peer.ID   { return f.s.Conn().RemotePeer() }
func (f *frameStream) Protocol() protocol.ID { return f.s.Protocol() }
