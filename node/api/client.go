package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrDaemonNotRunning is returned by Dial when nothing listens on the socket.
var ErrDaemonNotRunning = errors.New("api: daemon not running")

// Client is a connection to a daemon's local API. It implements Service; its
// methods may be called concurrently and share one connection.
type Client struct {
	conn net.Conn

	writeMu sync.Mutex
	enc     *json.Encoder // guarded by writeMu

	mu     sync.Mutex
	nextID uint64                   // guarded by mu
	calls  map[uint64]chan response // guarded by mu; closed by the reader
	err    error                    // guarded by mu; why the connection ended

	closing    chan struct{} // closed by Close
	closeOnce  sync.Once
	readerDone chan struct{}
	wg         sync.WaitGroup // subscription forwarders
}

var (
	_ Service   = (*Client)(nil)
	_ Stopper   = (*Client)(nil)
	_ WebLinker = (*Client)(nil)
)

// Dial connects to the daemon listening on the Unix socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: no socket at %s", ErrDaemonNotRunning, path)
		}
		return nil, fmt.Errorf("api: connecting to %s: %w", path, err)
	}
	return NewClient(conn), nil
}

// NewClient runs the client protocol over conn, which it owns from now on.
func NewClient(conn net.Conn) *Client {
	c := &Client{
		conn:       conn,
		enc:        json.NewEncoder(conn),
		calls:      make(map[uint64]chan response),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	go c.read()
	return c
}

// Close closes the connection; calls in flight fail with ErrUnavailable.
// It waits for every goroutine the client started.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closing)
		err = c.conn.Close()
		<-c.readerDone
		c.wg.Wait()
	})
	return err
}

// read is the only goroutine that reads the connection; it dispatches
// frames to their calls and, when the connection ends, fails all of them.
func (c *Client) read() {
	defer close(c.readerDone)
	r := bufio.NewReaderSize(c.conn, 64<<10)
	var err error
	for {
		var line []byte
		line, err = readFrame(r, maxResponseFrame)
		if err != nil {
			break
		}
		var resp response
		resp, err = decodeResponse(line)
		if err != nil {
			break
		}
		if !c.dispatch(resp) {
			err = fmt.Errorf("api: server sent more stream items than granted for call %d", resp.ID)
			break
		}
	}
	// Record why before closing, so that a write failing on the closed
	// connection reports the cause, not just "closed pipe".
	c.mu.Lock()
	c.err = Errorf(CodeUnavailable, "api: connection to daemon closed: %v", err)
	select {
	case <-c.closing:
		c.err = Errorf(CodeUnavailable, "api: client closed")
	default:
	}
	for id, ch := range c.calls {
		close(ch)
		delete(c.calls, id)
	}
	c.mu.Unlock()
	c.conn.Close()
}

// dispatch hands resp to its call. Frames for calls no longer registered
// (cancelled ones) are dropped. It reports false when a call's buffer is
// full, which only a server ignoring flow control can cause.
func (c *Client) dispatch(resp response) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.calls[resp.ID]
	if !ok {
		return true
	}
	select {
	case ch <- resp:
	default:
		return false
	}
	if resp.Done {
		delete(c.calls, resp.ID)
		close(ch)
	}
	return true
}

// start registers a call and sends its request.
func (c *Client) start(method string, params any, stream bool) (uint64, chan response, error) {
	var raw json.RawMessage
	if params != nil {
		var err error
		if raw, err = json.Marshal(params); err != nil {
			return 0, nil, fmt.Errorf("api: encoding %s params: %w", method, err)
		}
	}
	size := 1
	if stream {
		size = streamWindow + 1
	}
	ch := make(chan response, size)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, nil, err
	}
	c.nextID++
	id := c.nextID
	c.calls[id] = ch
	c.mu.Unlock()
	if err := c.write(request{ID: id, Method: method, Params: raw}); err != nil {
		c.forget(id)
		return 0, nil, err
	}
	return id, ch, nil
}

// forget unregisters a call, e.g. after its context ended.
func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// abandon stops a call whose caller gave up: the server is told to cancel
// it, and whatever it still sends is dropped.
func (c *Client) abandon(id uint64) {
	c.forget(id)
	c.write(request{ID: id, Cancel: true})
}

func (c *Client) write(req request) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := c.enc.Encode(req); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.err != nil {
			return c.err
		}
		return Errorf(CodeUnavailable, "api: sending to daemon: %v", err)
	}
	return nil
}

// connErr is the error for a call whose channel was closed without a final
// frame.
func (c *Client) connErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return Errorf(CodeUnavailable, "api: connection to daemon closed")
}

// call performs a unary call and decodes its result into result (if non-nil).
func (c *Client) call(ctx context.Context, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, ch, err := c.start(method, params, false)
	if err != nil {
		return err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return c.connErr()
		}
		return decodeResult(method, resp, result)
	case <-ctx.Done():
		c.abandon(id)
		return ctx.Err()
	}
}

func decodeResult(method string, resp response, result any) error {
	if resp.Error != nil {
		return resp.Error
	}
	if result == nil {
		return nil
	}
	if len(resp.Result) == 0 {
		return Errorf(CodeInternal, "api: %s: empty result", method)
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return Errorf(CodeInternal, "api: %s: decoding result: %v", method, err)
	}
	return nil
}

// streamReader consumes the items of one streaming call and returns credit
// to the server as it goes.
type streamReader struct {
	c        *Client
	id       uint64
	ch       chan response
	consumed int
}

// next returns the next item, or done with the call's final error.
func (s *streamReader) next(ctx context.Context) (item json.RawMessage, done bool, err error) {
	select {
	case resp, ok := <-s.ch:
		if !ok {
			return nil, true, s.c.connErr()
		}
		if resp.Done {
			if resp.Error != nil {
				return nil, true, resp.Error
			}
			return nil, true, nil
		}
		s.consumed++
		if s.consumed == streamWindow/2 {
			if err := s.c.write(request{ID: s.id, Credit: s.consumed}); err != nil {
				s.c.forget(s.id)
				return nil, true, err
			}
			s.consumed = 0
		}
		return resp.Result, false, nil
	case <-ctx.Done():
		s.c.abandon(s.id)
		return nil, true, ctx.Err()
	}
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, methodStatus, nil, &st)
	return st, err
}

func (c *Client) CreateGroup(ctx context.Context, name string) (Group, error) {
	var g Group
	err := c.call(ctx, methodCreateGroup, nameParams{Name: name}, &g)
	return g, err
}

func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var gs []Group
	err := c.call(ctx, methodGroups, nil, &gs)
	return gs, err
}

func (c *Client) Invite(ctx context.Context, group string) (Invite, error) {
	var inv Invite
	err := c.call(ctx, methodInvite, groupParams{Group: group}, &inv)
	return inv, err
}

func (c *Client) Join(ctx context.Context, code string) (Group, error) {
	var g Group
	err := c.call(ctx, methodJoin, codeParams{Code: code}, &g)
	return g, err
}

func (c *Client) Send(ctx context.Context, group, text string) (Message, error) {
	var m Message
	err := c.call(ctx, methodSend, sendParams{Group: group, Text: text}, &m)
	return m, err
}

func (c *Client) Log(ctx context.Context, group string, limit int) ([]Message, error) {
	var ms []Message
	err := c.call(ctx, methodLog, logParams{Group: group, Limit: limit}, &ms)
	return ms, err
}

func (c *Client) Search(ctx context.Context, req SearchRequest) (SearchResult, error) {
	var res SearchResult
	err := c.call(ctx, methodSearch, req, &res)
	return res, err
}

func (c *Client) Members(ctx context.Context, group string) ([]Member, error) {
	var ms []Member
	err := c.call(ctx, methodMembers, groupParams{Group: group}, &ms)
	return ms, err
}

func (c *Client) Remove(ctx context.Context, group, member string) error {
	return c.call(ctx, methodRemove, memberParams{Group: group, Member: member}, nil)
}

func (c *Client) Rotate(ctx context.Context, group string) error {
	return c.call(ctx, methodRotate, groupParams{Group: group}, nil)
}

// RequestChange implements Service.
func (c *Client) RequestChange(ctx context.Context, req ChangeRequest) (Change, error) {
	var ch Change
	err := c.call(ctx, methodRequest, req, &ch)
	return ch, err
}

// AwaitChange implements Service.
func (c *Client) AwaitChange(ctx context.Context, group, id string, timeout time.Duration) (Change, error) {
	var ch Change
	err := c.call(ctx, methodAwait, awaitParams{Group: group, ID: id, Timeout: timeout}, &ch)
	return ch, err
}

// MarkRead implements Service.
func (c *Client) MarkRead(ctx context.Context, group string) error {
	return c.call(ctx, methodMarkRead, groupParams{Group: group}, nil)
}

func (c *Client) Leave(ctx context.Context, group string) error {
	return c.call(ctx, methodLeave, groupParams{Group: group}, nil)
}

func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	err := c.call(ctx, methodPeers, nil, &ps)
	return ps, err
}

func (c *Client) InviteWith(ctx context.Context, req InviteRequest) (Invite, error) {
	var inv Invite
	err := c.call(ctx, methodInviteWith, req, &inv)
	return inv, err
}

func (c *Client) Invites(ctx context.Context) ([]InviteInfo, error) {
	var out []InviteInfo
	err := c.call(ctx, methodInvites, nil, &out)
	return out, err
}

func (c *Client) RevokeInvite(ctx context.Context, id string) error {
	return c.call(ctx, methodRevoke, idParams{ID: id}, nil)
}

// Shutdown asks the daemon to stop (see Stopper). The daemon may close the
// connection before its answer arrives; callers that must know it stopped
// wait for its socket to go.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.call(ctx, methodShutdown, nil, nil)
}

// WebLogin asks the daemon for a sign-in link to its web client (see
// WebLinker).
func (c *Client) WebLogin(ctx context.Context) (WebLogin, error) {
	var w WebLogin
	err := c.call(ctx, methodWebLogin, nil, &w)
	return w, err
}

func (c *Client) ConnectPeer(ctx context.Context, addr string) (Peer, error) {
	var p Peer
	err := c.call(ctx, methodConnect, addrParams{Addr: addr}, &p)
	return p, err
}

// Export streams group's history to fn. If fn fails, the export is
// cancelled on the daemon and fn's error returned.
func (c *Client) Export(ctx context.Context, group string, since time.Time, fn func(Message) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, ch, err := c.start(methodExport, exportParams{Group: group, Since: since}, true)
	if err != nil {
		return err
	}
	sr := &streamReader{c: c, id: id, ch: ch}
	for {
		item, done, err := sr.next(ctx)
		if done {
			return err
		}
		var m Message
		if err := json.Unmarshal(item, &m); err != nil {
			c.abandon(id)
			return Errorf(CodeInternal, "api: export: decoding message: %v", err)
		}
		if err := fn(m); err != nil {
			c.abandon(id)
			return err
		}
	}
}

// Subscribe streams events until ctx ends or the connection closes; the
// channel is then closed.
func (c *Client) Subscribe(ctx context.Context) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, ch, err := c.start(methodSubscribe, nil, true)
	if err != nil {
		return nil, err
	}
	sr := &streamReader{c: c, id: id, ch: ch}
	// The first item is the daemon's acknowledgement.
	if _, done, err := sr.next(ctx); done {
		if err == nil {
			err = Errorf(CodeInternal, "api: subscription ended before it started")
		}
		return nil, err
	}
	out := make(chan Event)
	// Registering the forwarder under mu, after checking that the reader has
	// not yet ended, keeps Close's wg.Wait from racing with this Add.
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(out)
		for {
			item, done, _ := sr.next(ctx)
			if done {
				return
			}
			var ev Event
			if err := json.Unmarshal(item, &ev); err != nil {
				c.abandon(id)
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				c.abandon(id)
				return
			case <-c.closing:
				return
			}
		}
	}()
	return out, nil
}
