package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrSocketInUse is returned by Listen when a live daemon already serves the
// socket path.
var ErrSocketInUse = errors.New("api: socket in use by a running daemon")

// ErrSocketPathTooLong is returned by Listen for a path that does not fit a
// Unix socket address.
var ErrSocketPathTooLong = errors.New("api: socket path too long")

// maxSocketPath is the longest path sun_path holds with its terminating NUL
// on Linux (108 bytes in all).
const maxSocketPath = 107

// Listen creates the Unix socket at path for Serve: its directory is created
// with mode 0700 if missing, the socket gets mode 0600. A socket file left by
// a dead daemon is removed; a live one is left alone and ErrSocketInUse
// returned, so two daemons never share one home.
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("%w: %d bytes, at most %d (choose a shorter home directory)", ErrSocketPathTooLong, len(path), maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("api: %s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("api: probing %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("api: removing stale socket: %w", err)
		}
	}
	// Bind in a fresh private directory, set the mode, then hard-link the
	// socket into place: nobody can connect before the mode is 0600 (the
	// private directory guards the window), and link, unlike rename, fails
	// if another daemon claimed the path meanwhile. This avoids changing the
	// process-wide umask under the daemon's other goroutines.
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".gs")
	if err != nil {
		return nil, fmt.Errorf("api: socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("%w: %d bytes while binding, at most %d (choose a shorter home directory)", ErrSocketPathTooLong, len(tmp), maxSocketPath)
	}
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api: listen: %w", err)
	}
	lis.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("api: socket mode: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		lis.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
		return nil, fmt.Errorf("api: socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("api: socket: %w", err)
	}
	return &socketListener{UnixListener: lis, path: path, file: fi}, nil
}

// socketListener removes its socket file on Close, if the file is still
// the one it created.
type socketListener struct {
	*net.UnixListener
	path string
	file os.FileInfo
	once sync.Once
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			os.Remove(l.path)
		}
	})
	return err
}

// Serve answers API requests on lis with svc until ctx ends or lis fails. It
// closes lis and every connection when it returns, and waits for every call
// it started; a Service method that ignores its context delays the return.
// It returns nil when ctx ended.
func Serve(ctx context.Context, lis net.Listener, svc Service, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()

	wg.Go(func() {
		<-ctx.Done()
		lis.Close()
	})
	for {
		conn, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			cancel()
			return fmt.Errorf("api: accept: %w", err)
		}
		s := &serverConn{conn: conn, svc: svc, log: log, calls: make(map[uint64]*serverCall)}
		wg.Go(func() { s.serve(ctx) })
	}
}

// serverConn is one client connection. Its read loop is the owner of calls;
// each call runs in its own goroutine, tracked by wg.
type serverConn struct {
	conn net.Conn
	svc  Service
	log  *slog.Logger

	writeMu sync.Mutex
	enc     *json.Encoder // guarded by writeMu

	mu    sync.Mutex
	calls map[uint64]*serverCall // guarded by mu
}

// serverCall is one call in flight.
type serverCall struct {
	cancel context.CancelFunc
	credit chan int // stream credit grants; nil for unary calls
}

func (s *serverConn) serve(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		s.conn.Close()
		wg.Wait()
	}()
	// Closing the connection when ctx ends unblocks the read below.
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()

	s.enc = json.NewEncoder(s.conn)
	r := bufio.NewReaderSize(s.conn, 64<<10)
	for {
		line, err := readFrame(r, maxRequestFrame)
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				s.write(response{ID: 0, Done: true, Error: Errorf(CodeInvalidArgument, "request frame larger than %d bytes", maxRequestFrame)})
				s.log.Warn("api: closing connection", "err", err)
			} else if !errors.Is(err, io.EOF) && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("api: connection read", "err", err)
			}
			return
		}
		req, err := decodeRequest(line)
		if err != nil {
			s.write(response{ID: req.ID, Done: true, Error: Errorf(CodeInvalidArgument, "%v", err)})
			continue
		}
		switch {
		case req.Cancel:
			s.mu.Lock()
			if c := s.calls[req.ID]; c != nil {
				c.cancel()
			}
			s.mu.Unlock()
		case req.Credit > 0:
			s.mu.Lock()
			if c := s.calls[req.ID]; c != nil && c.credit != nil {
				select {
				case c.credit <- req.Credit:
				default:
					// A client that grants more than it was asked to is
					// broken; it keeps the credit it already has.
				}
			}
			s.mu.Unlock()
		default:
			s.start(ctx, &wg, req)
		}
	}
}

// start registers and runs one call.
func (s *serverConn) start(ctx context.Context, wg *sync.WaitGroup, req request) {
	h, ok := handlers[req.Method]
	if !ok {
		s.write(response{ID: req.ID, Done: true, Error: Errorf(CodeInvalidArgument, "unknown method %q", req.Method)})
		return
	}
	s.mu.Lock()
	if _, dup := s.calls[req.ID]; dup {
		s.mu.Unlock()
		s.write(response{ID: req.ID, Done: true, Error: Errorf(CodeInvalidArgument, "call id %d already in flight", req.ID)})
		return
	}
	if len(s.calls) >= maxCallsPerConn {
		s.mu.Unlock()
		s.write(response{ID: req.ID, Done: true, Error: Errorf(CodeUnavailable, "too many calls in flight")})
		return
	}
	callCtx, cancel := context.WithCancel(ctx)
	c := &serverCall{cancel: cancel}
	if h.stream {
		// Room for every grant a well-behaved client can have outstanding.
		c.credit = make(chan int, streamWindow)
	}
	s.calls[req.ID] = c
	s.mu.Unlock()

	wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.calls, req.ID)
			s.mu.Unlock()
			cancel()
		}()
		st := &stream{s: s, id: req.ID, credit: c.credit, window: streamWindow}
		result, err := h.fn(callCtx, s.svc, req.Params, st)
		final := response{ID: req.ID, Done: true}
		if err != nil {
			final.Error = toWireError(err)
		} else if result != nil {
			raw, err := json.Marshal(result)
			if err != nil {
				final.Error = Errorf(CodeInternal, "encoding result: %v", err)
			} else {
				final.Result = raw
			}
		}
		s.write(final)
	})
}

// write sends one frame; errors mean the connection is gone, which the read
// loop notices.
func (s *serverConn) write(resp response) error {
	if resp.Error != nil && resp.Error.Message == "" {
		resp.Error = &Error{Code: resp.Error.Code, Message: string(resp.Error.Code)}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.enc.Encode(resp); err != nil {
		return fmt.Errorf("api: write: %w", err)
	}
	return nil
}

// stream sends the items of one streaming call within its credit.
type stream struct {
	s      *serverConn
	id     uint64
	credit chan int
	window int // items that may still be sent without a new grant
}

func (st *stream) send(ctx context.Context, v any) error {
	for st.window == 0 {
		select {
		case n := <-st.credit:
			st.window += n
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return Errorf(CodeInternal, "encoding stream item: %v", err)
	}
	st.window--
	return st.s.write(response{ID: st.id, Result: raw})
}

// handler adapts one Service method to the wire.
type handler struct {
	stream bool
	fn     func(ctx context.Context, svc Service, params json.RawMessage, st *stream) (any, error)
}

var handlers = map[string]handler{
	methodStatus: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		return svc.Status(ctx)
	}},
	methodCreateGroup: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p nameParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.CreateGroup(ctx, p.Name)
	}},
	methodGroups: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		gs, err := svc.Groups(ctx)
		return nonNil(gs), err
	}},
	methodInvite: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.Invite(ctx, p.Group)
	}},
	methodJoin: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p codeParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.Join(ctx, p.Code)
	}},
	methodSend: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p sendParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.Send(ctx, p.Group, p.Text)
	}},
	methodLog: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p logParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		ms, err := svc.Log(ctx, p.Group, p.Limit)
		return nonNil(ms), err
	}},
	methodSearch: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p SearchRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		res, err := svc.Search(ctx, p)
		res.Hits = nonNil(res.Hits)
		return res, err
	}},
	methodMembers: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		ms, err := svc.Members(ctx, p.Group)
		return nonNil(ms), err
	}},
	methodRemove: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p memberParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.Remove(ctx, p.Group, p.Member)
	}},
	methodRotate: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.Rotate(ctx, p.Group)
	}},
	methodRequest: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p ChangeRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.RequestChange(ctx, p)
	}},
	methodAwait: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p awaitParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		if p.Timeout < 0 || p.Timeout > MaxAwait {
			return nil, Errorf(CodeInvalidArgument, "timeout must be 0..%v", MaxAwait)
		}
		return svc.AwaitChange(ctx, p.Group, p.ID, p.Timeout)
	}},
	methodMarkRead: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.MarkRead(ctx, p.Group)
	}},
	methodLeave: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.Leave(ctx, p.Group)
	}},
	methodPeers: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		ps, err := svc.Peers(ctx)
		return nonNil(ps), err
	}},
	methodInviteWith: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p InviteRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		if p.Expires < 0 || p.Expires > MaxInviteExpiry {
			return nil, Errorf(CodeInvalidArgument, "an invite code may be valid for at most %v", MaxInviteExpiry)
		}
		return svc.InviteWith(ctx, p)
	}},
	methodInvites: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		out, err := svc.Invites(ctx)
		return nonNil(out), err
	}},
	methodRevoke: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p idParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.RevokeInvite(ctx, p.ID)
	}},
	methodShutdown: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		s, ok := svc.(Stopper)
		if !ok {
			return nil, Errorf(CodeUnavailable, "this daemon cannot be stopped through its API")
		}
		return nil, s.Shutdown(ctx)
	}},
	methodWebLogin: {fn: func(ctx context.Context, svc Service, _ json.RawMessage, _ *stream) (any, error) {
		w, ok := svc.(WebLinker)
		if !ok {
			return nil, Errorf(CodeUnavailable, "this daemon does not serve the web client")
		}
		return w.WebLogin(ctx)
	}},
	methodConnect: {fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
		var p addrParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return svc.ConnectPeer(ctx, p.Addr)
	}},
	methodExport: {stream: true, fn: func(ctx context.Context, svc Service, raw json.RawMessage, st *stream) (any, error) {
		var p exportParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, svc.Export(ctx, p.Group, p.Since, func(m Message) error { return st.send(ctx, m) })
	}},
	methodSubscribe: {stream: true, fn: func(ctx context.Context, svc Service, _ json.RawMessage, st *stream) (any, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		events, err := svc.Subscribe(ctx)
		if err != nil {
			return nil, err
		}
		// The first item acknowledges the subscription, so the client's
		// Subscribe can return errors synchronously.
		err = st.send(ctx, struct{}{})
		for err == nil {
			ev, ok := <-events
			if !ok {
				return nil, nil
			}
			err = st.send(ctx, ev)
		}
		// Stop the subscription and wait for the service to close the
		// channel, so none of its goroutines is left blocked on a send.
		cancel()
		for range events {
		}
		return nil, err
	}},
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
