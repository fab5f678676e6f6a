package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/node/api"
	"grove/node/api/apitest"
)

// checkLeaks fails the test if goroutines running this package's code are
// still alive at the end. Call it first so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		var stacks string
		for range 200 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			stacks = ""
			for g := range strings.SplitSeq(string(buf), "\n\n") {
				if strings.Contains(g, "grove/node/api.") && !strings.Contains(g, "checkLeaks") {
					stacks += g + "\n\n"
				}
			}
			if stacks == "" {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leaked goroutines:\n%s", stacks)
	})
}

// socketPath returns a socket path short enough for sun_path (108 bytes),
// which t.TempDir under long test names may exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "home", "grove.sock")
}

// serve runs svc on a fresh socket until the test ends and returns the path.
func serve(t *testing.T, svc api.Service) string {
	t.Helper()
	path := socketPath(t)
	lis, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, lis, svc, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func dial(t *testing.T, path string) *api.Client {
	t.Helper()
	c, err := api.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func setup(t *testing.T, svc api.Service) *api.Client {
	checkLeaks(t)
	return dial(t, serve(t, svc))
}

// script runs the same sequence of calls on svc and returns their results
// as JSON-comparable values.
func script(ctx context.Context, svc api.Service) []any {
	var out []any
	rec := func(v any, err error) { out = append(out, v, fmt.Sprint(err)) }
	rec(svc.CreateGroup(ctx, "ops"))
	rec(svc.CreateGroup(ctx, "ops"))
	rec(svc.CreateGroup(ctx, "dev"))
	rec(svc.Groups(ctx))
	rec(svc.Invite(ctx, "ops"))
	rec(svc.Join(ctx, "nope"))
	rec(svc.Send(ctx, "ops", "deploy at noon"))
	rec(svc.Send(ctx, "ops", "ünïcödé ✓ \"quoted\"\nnewline"))
	rec(svc.Send(ctx, "missing", "x"))
	rec(svc.Log(ctx, "ops", 0))
	rec(svc.Log(ctx, "ops", 1))
	rec(svc.Search(ctx, api.SearchRequest{Query: "deploy", Group: "ops"}))
	rec(svc.Search(ctx, api.SearchRequest{Query: "nothing-matches"}))
	rec(svc.Members(ctx, "ops"))
	rec(nil, svc.Rotate(ctx, "ops"))
	rec(nil, svc.Remove(ctx, "ops", "nobody"))
	rec(nil, svc.Leave(ctx, "dev"))
	rec(svc.Groups(ctx))
	rec(svc.Peers(ctx))
	rec(svc.Status(ctx))
	var exported []api.Message
	rec(nil, svc.Export(ctx, "ops", time.Time{}, func(m api.Message) error {
		exported = append(exported, m)
		return nil
	}))
	out = append(out, exported)
	return out
}

// normalize maps nil and empty slices to the same JSON so that the
// comparison is about content.
func normalize(t *testing.T, v []any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "null", "[]")
}

func TestClientMatchesServiceForEveryMethod(t *testing.T) {
	ctx := context.Background()
	direct := apitest.New("alice")
	remote := apitest.New("alice")
	peers := []api.Peer{{ID: "12D3KooWpeer", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Name: "bob", Groups: []string{"ops"}}}
	direct.SetPeers(peers)
	remote.SetPeers(peers)
	c := setup(t, remote)

	want := script(ctx, direct)
	got := script(ctx, c)
	if normalize(t, got) != normalize(t, want) {
		t.Fatalf("through the socket:\n%s\ndirect:\n%s", normalize(t, got), normalize(t, want))
	}
	// Typed values, not just their JSON, must survive: times compare equal.
	m1, _ := direct.Log(ctx, "ops", 0)
	m2, err := c.Log(ctx, "ops", 0)
	if err != nil || !reflect.DeepEqual(m1, m2) {
		t.Fatalf("Log: %v\n%#v\n%#v", err, m2, m1)
	}
}

func TestCodedErrorsRoundTrip(t *testing.T) {
	f := apitest.New("alice")
	c := setup(t, f)
	ctx := context.Background()
	sentinels := map[api.Code]error{
		api.CodeInvalidArgument: api.ErrInvalidArgument,
		api.CodeNotFound:        api.ErrNotFound,
		api.CodeForbidden:       api.ErrForbidden,
		api.CodeConflict:        api.ErrConflict,
		api.CodeUnavailable:     api.ErrUnavailable,
		api.CodeTimeout:         api.ErrTimeout,
		api.CodeInternal:        api.ErrInternal,
	}
	for code, sentinel := range sentinels {
		f.SetError("Rotate", fmt.Errorf("node: rotating: %w", api.Errorf(code, "because %s", code)))
		err := c.Rotate(ctx, "x")
		if !errors.Is(err, sentinel) {
			t.Errorf("%s: got %v, which does not match its sentinel", code, err)
		}
		for other, s := range sentinels {
			if other != code && errors.Is(err, s) {
				t.Errorf("%s: error also matches %s", code, other)
			}
		}
		if want := "node: rotating: because " + string(code); err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	}
	// Plain errors and context errors get codes too.
	f.SetError("Rotate", errors.New("disk on fire"))
	if err := c.Rotate(ctx, "x"); !errors.Is(err, api.ErrInternal) || err.Error() != "disk on fire" {
		t.Errorf("plain error: %v", err)
	}
	f.SetError("Rotate", fmt.Errorf("waiting: %w", context.DeadlineExceeded))
	if err := c.Rotate(ctx, "x"); !errors.Is(err, api.ErrTimeout) {
		t.Errorf("deadline error: %v", err)
	}
	// Natural errors of the fake, e.g. removing without being an admin.
	f.SetError("Rotate", nil)
	c.CreateGroup(ctx, "ops")
	f.SetAdmin("ops", false)
	if err := c.Remove(ctx, "ops", "bob"); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("remove as non-admin: %v", err)
	}
}

// observed wraps a Service and reports when calls end on the server side.
type observed struct {
	*apitest.Fake
	ended chan string
}

func (o *observed) Join(ctx context.Context, code string) (api.Group, error) {
	defer func() { o.ended <- "join" }()
	return o.Fake.Join(ctx, code)
}

func (o *observed) Export(ctx context.Context, group string, since time.Time, fn func(api.Message) error) error {
	err := o.Fake.Export(ctx, group, since, fn)
	o.ended <- "export: " + fmt.Sprint(err)
	return err
}

func TestCancelStopsServerCall(t *testing.T) {
	o := &observed{Fake: apitest.New("alice"), ended: make(chan string, 10)}
	o.SetJoinBlocks(true)
	c := setup(t, o)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Join(ctx, "code")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join: %v", err)
	}
	select {
	case <-o.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("server-side Join still running after the client gave up")
	}
	// The connection is still usable.
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCallsAreMultiplexed(t *testing.T) {
	o := &observed{Fake: apitest.New("alice"), ended: make(chan string, 10)}
	o.SetJoinBlocks(true)
	c := setup(t, o)
	ctx := context.Background()
	if _, err := c.CreateGroup(ctx, "ops"); err != nil {
		t.Fatal(err)
	}

	// A call that blocks must not hold up the others on the connection.
	joinCtx, cancelJoin := context.WithCancel(ctx)
	joinDone := make(chan error)
	go func() {
		_, err := c.Join(joinCtx, "code")
		joinDone <- err
	}()

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			m, err := c.Send(ctx, "ops", fmt.Sprintf("msg %d", i))
			if err == nil && m.Text != fmt.Sprintf("msg %d", i) {
				err = fmt.Errorf("answer for another call: %q", m.Text)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := c.Log(ctx, "ops", 1000)
	if err != nil || len(ms) != n {
		t.Fatalf("log has %d messages, err %v", len(ms), err)
	}
	select {
	case err := <-joinDone:
		t.Fatalf("blocked Join returned early: %v", err)
	default:
	}
	cancelJoin()
	if err := <-joinDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Join: %v", err)
	}
	<-o.ended
}

func TestExportStreamsInOrderWithFlowControl(t *testing.T) {
	o := &observed{Fake: apitest.New("alice"), ended: make(chan string, 10)}
	c := setup(t, o)
	ctx := context.Background()
	c.CreateGroup(ctx, "ops")
	const n = 1000
	for i := range n {
		if err := o.Receive("ops", "bob", fmt.Sprintf("m%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	stalled := false
	err := c.Export(ctx, "ops", time.Time{}, func(m api.Message) error {
		got = append(got, m.Text)
		if len(got) == 10 && !stalled {
			// While this export's consumer is stalled, with far more
			// items pending than the window, other calls still work.
			stalled = true
			for range 3 {
				if _, err := c.Status(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("exported %d of %d", len(got), n)
	}
	for i, s := range got {
		if s != fmt.Sprintf("m%04d", i) {
			t.Fatalf("item %d is %q", i, s)
		}
	}
	if e := <-o.ended; e != "export: <nil>" {
		t.Fatal(e)
	}

	// since filters by time.
	all, _ := c.Log(ctx, "ops", 1000)
	var count int
	if err := c.Export(ctx, "ops", all[990].Time, func(api.Message) error { count++; return nil }); err != nil || count != 10 {
		t.Fatalf("export since: %d messages, %v", count, err)
	}
	<-o.ended
}

func TestExportCallbackErrorCancelsServer(t *testing.T) {
	o := &observed{Fake: apitest.New("alice"), ended: make(chan string, 10)}
	c := setup(t, o)
	ctx := context.Background()
	c.CreateGroup(ctx, "ops")
	for i := range 500 {
		o.Receive("ops", "bob", fmt.Sprint(i))
	}
	stop := errors.New("enough")
	calls := 0
	err := c.Export(ctx, "ops", time.Time{}, func(api.Message) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Export = %v after %d calls", err, calls)
	}
	select {
	case e := <-o.ended:
		if !strings.Contains(e, "context canceled") {
			t.Fatalf("server export ended with %q", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server-side export still running")
	}
	if err := c.Export(ctx, "missing", time.Time{}, func(api.Message) error { return nil }); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("export of missing group: %v", err)
	}
	<-o.ended
}

func TestSubscribe(t *testing.T) {
	f := apitest.New("alice")
	c := setup(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	// More events than the stream window, to exercise credit.
	const n = 200
	go func() {
		for i := range n {
			c.Send(ctx, "ops", fmt.Sprint(i))
		}
		c.Rotate(ctx, "ops")
	}()
	for i := range n {
		ev := <-events
		if ev.Kind != api.EventMessage || ev.Message == nil || ev.Message.Text != fmt.Sprint(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if ev := <-events; ev.Kind != api.EventEpoch || ev.Epoch != 1 {
		t.Fatalf("epoch event: %+v", ev)
	}
	if f.Subscribers() != 1 {
		t.Fatalf("%d subscribers", f.Subscribers())
	}
	cancel()
	for range events {
	}
	waitFor(t, func() bool { return f.Subscribers() == 0 }, "subscription to end on the server")
}

func TestSubscribeError(t *testing.T) {
	f := apitest.New("alice")
	c := setup(t, f)
	f.SetError("Subscribe", api.Errorf(api.CodeUnavailable, "shutting down"))
	if _, err := c.Subscribe(context.Background()); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Subscribe: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// rawConn is a test client that speaks bytes, not the protocol.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func rawDial(t *testing.T, path string) *rawConn {
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (r *rawConn) send(s string) {
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

type frame struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *api.Error      `json:"error"`
	Done   bool            `json:"done"`
}

func (r *rawConn) recv() (frame, error) {
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.r.ReadBytes('\n')
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(line, &f); err != nil {
		r.t.Fatalf("server sent invalid JSON %q: %v", line, err)
	}
	return f, nil
}

func TestMalformedRequests(t *testing.T) {
	checkLeaks(t)
	path := serve(t, apitest.New("alice"))
	r := rawDial(t, path)
	cases := []struct {
		in     string
		wantID uint64
	}{
		{"garbage\n", 0},
		{"{}\n", 0},
		{"[1,2,3]\n", 0},
		{`{"id":1}` + "\n", 1},
		{`{"id":2,"method":"nope"}` + "\n", 2},
		{`{"id":3,"method":"send","params":[]}` + "\n", 3},
		{`{"id":4,"method":"send","params":{"group":1}}` + "\n", 4},
		{`{"id":5,"method":"send","params":{"group":"a","text":"b","extra":1}}` + "\n", 5},
		{`{"id":6,"method":"send"}` + "\n", 6},
		{`{"id":7,"method":"status","cancel":true}` + "\n", 7},
		{`{"id":8,"credit":-1}` + "\n", 8},
		{`{"id":9,"method":"status"} {"id":10}` + "\n", 9},
		{`{"id":-1,"method":"status"}` + "\n", 0},
		{`{"id":11,"method":"status","unknown":true}` + "\n", 11},
		{"\n", 0},
		{"\x00\xff\xfe\n", 0},
	}
	for _, tc := range cases {
		r.send(tc.in)
		f, err := r.recv()
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if f.Error == nil || f.Error.Code != api.CodeInvalidArgument || !f.Done || f.ID != tc.wantID {
			t.Errorf("%q: got %+v (error %v)", tc.in, f, f.Error)
		}
	}
	// Control frames for calls that do not exist are ignored; the
	// connection still answers a valid call.
	r.send(`{"id":50,"cancel":true}` + "\n" + `{"id":51,"credit":5}` + "\n" + `{"id":52,"method":"status"}` + "\n")
	f, err := r.recv()
	if err != nil || f.ID != 52 || f.Error != nil || !f.Done {
		t.Fatalf("valid call after garbage: %+v %v", f, err)
	}
	var st api.Status
	if err := json.Unmarshal(f.Result, &st); err != nil || st.Name != "alice" {
		t.Fatalf("status %q: %v", f.Result, err)
	}
}

func TestOversizedRequestClosesConnection(t *testing.T) {
	checkLeaks(t)
	path := serve(t, apitest.New("alice"))
	r := rawDial(t, path)
	go r.conn.Write([]byte(`{"id":1,"method":"send","params":{"group":"a","text":"` + strings.Repeat("x", 2<<20) + "\"}}\n"))
	f, err := r.recv()
	if err != nil || f.Error == nil || f.Error.Code != api.CodeInvalidArgument {
		t.Fatalf("got %+v, %v", f, err)
	}
	if _, err := r.recv(); err == nil {
		t.Fatal("connection still open after an oversized frame")
	}
	// The server still serves new connections.
	c := dial(t, path)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTooManyCallsInFlight(t *testing.T) {
	checkLeaks(t)
	f := apitest.New("alice")
	f.SetJoinBlocks(true)
	path := serve(t, f)
	r := rawDial(t, path)
	var b strings.Builder
	for i := 1; i <= 129; i++ {
		fmt.Fprintf(&b, `{"id":%d,"method":"join","params":{"code":"c"}}`+"\n", i)
	}
	r.send(b.String())
	fr, err := r.recv()
	if err != nil || fr.ID != 129 || fr.Error == nil || fr.Error.Code != api.CodeUnavailable {
		t.Fatalf("got %+v %v", fr, err)
	}
	// A duplicate id of a call in flight is refused.
	r.send(`{"id":5,"method":"status"}` + "\n")
	fr, err = r.recv()
	if err != nil || fr.ID != 5 || fr.Error == nil || !strings.Contains(fr.Error.Message, "already in flight") {
		t.Fatalf("duplicate id: %+v %v", fr, err)
	}
	r.send(`{"id":5,"cancel":true}` + "\n")
	fr, err = r.recv()
	if err != nil || fr.ID != 5 || fr.Error == nil || fr.Error.Code != api.CodeTimeout {
		t.Fatalf("cancelled join: %+v %v", fr, err)
	}
}

func TestListen(t *testing.T) {
	checkLeaks(t)
	path := socketPath(t)
	lis, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, %v", di.Mode(), err)
	}
	// A live socket is not clobbered.
	if _, err := api.Listen(path); !errors.Is(err, api.ErrSocketInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	lis.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	// A stale one (its daemon died without unlinking it) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket not left behind by the test setup")
	}
	lis, err = api.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode after replacing a stale one: %v", err)
	}
	// It serves through the final path.
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("dial: %v", err)
	} else {
		c.Close()
	}
	// Closing removes only its own socket file: one that replaced it
	// (say, by hand) stays.
	os.Remove(path)
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Close removed a socket it did not create: %v", err)
	}
	other.Close()
	// No temporary directories are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".gs") {
			t.Errorf("left behind %s", e.Name())
		}
	}
	// A file that is not a socket is never removed.
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("regular file clobbered")
	}
}

func TestConcurrentListenOneWins(t *testing.T) {
	path := socketPath(t)
	const n = 8
	errs := make(chan error, n)
	liss := make(chan net.Listener, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			lis, err := api.Listen(path)
			if err == nil {
				liss <- lis
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	close(liss)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, api.ErrSocketInUse):
			t.Errorf("loser: %v", err)
		}
	}
	for lis := range liss {
		lis.Close()
	}
	if won != 1 {
		t.Fatalf("%d listeners won", won)
	}
}

func TestListenRejectsLongPath(t *testing.T) {
	dir := filepath.Dir(socketPath(t))
	long := filepath.Join(dir, strings.Repeat("d", 120), "grove.sock")
	if _, err := api.Listen(long); !errors.Is(err, api.ErrSocketPathTooLong) {
		t.Fatalf("Listen(%d bytes): %v", len(long), err)
	}
}

func TestDialWithoutDaemon(t *testing.T) {
	path := socketPath(t)
	if _, err := api.Dial(context.Background(), path); !errors.Is(err, api.ErrDaemonNotRunning) {
		t.Fatalf("Dial: %v", err)
	}
}

func TestServerStopFailsClientCalls(t *testing.T) {
	checkLeaks(t)
	f := apitest.New("alice")
	f.SetJoinBlocks(true)
	path := socketPath(t)
	lis, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, lis, f, nil) }()
	c := dial(t, path)
	sub, err := c.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	go func() {
		_, err := c.Join(context.Background(), "x")
		joined <- err
	}()
	waitFor(t, func() bool { return f.Subscribers() == 1 }, "subscription")
	time.Sleep(20 * time.Millisecond) // let the join reach the server
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The in-flight join either got the server's cancellation or the
	// connection drop; both are unavailable or timeout, never a hang.
	if err := <-joined; !errors.Is(err, api.ErrUnavailable) && !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("Join after server stop: %v", err)
	}
	for range sub {
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Status after server stop: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Serve returned: %v", err)
	}
}

func TestClientCloseEndsEverything(t *testing.T) {
	f := apitest.New("alice")
	f.SetJoinBlocks(true)
	c := setup(t, f)
	sub, err := c.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	go func() {
		_, err := c.Join(context.Background(), "x")
		joined <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-joined; !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Join after Close: %v", err)
	}
	for range sub {
	}
	waitFor(t, func() bool { return f.Subscribers() == 0 }, "server to drop the subscription")
}

// A server that ignores flow control cannot make the client buffer without
// bound: the client drops the connection.
func TestClientRejectsServerIgnoringCredit(t *testing.T) {
	checkLeaks(t)
	a, b := net.Pipe()
	c := api.NewClient(a)
	defer c.Close()
	serverSawClose := make(chan struct{})
	go func() {
		defer close(serverSawClose)
		r := bufio.NewReader(b)
		r.ReadBytes('\n') // the export request
		for range 1000 {
			if _, err := b.Write([]byte(`{"id":1,"result":{"text":"x"}}` + "\n")); err != nil {
				return
			}
		}
		t.Error("client accepted 1000 items without granting credit")
	}()
	defer b.Close()
	first := true
	err := c.Export(context.Background(), "g", time.Time{}, func(api.Message) error {
		if first {
			// Do not consume until the client has given up on the server.
			first = false
			select {
			case <-serverSawClose:
			case <-time.After(5 * time.Second):
				return errors.New("client kept reading")
			}
		}
		return nil
	})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "more stream items than granted") {
		t.Fatalf("Export: %v", err)
	}
}
