package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"grove/node/api"
	"grove/node/api/apitest"
)

// testServer serves a fake device's web client on 127.0.0.1 until the
// test ends.
type testServer struct {
	t    *testing.T
	srv  *Server
	fake *apitest.Fake
	base string // http://127.0.0.1:PORT
}

func newTestServer(t *testing.T, svc api.Service) *testServer {
	t.Helper()
	lis, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(svc, lis, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	ts := &testServer{t: t, srv: srv, base: strings.TrimSuffix(srv.URL(), "/")}
	ts.fake, _ = svc.(*apitest.Fake)
	return ts
}

// browser is an HTTP client that behaves like a signed-in page: it keeps
// cookies and sends the request token and a same-origin Origin.
type browser struct {
	ts     *testServer
	client *http.Client
	token  string
	origin string
}

func (ts *testServer) signIn() *browser {
	ts.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{ts: ts, client: &http.Client{Jar: jar}, origin: ts.base}
	link, _, err := ts.srv.Login()
	if err != nil {
		ts.t.Fatal(err)
	}
	tok := link[strings.Index(link, "#login=")+len("#login="):]
	var out struct{ Token string }
	if st := b.do("POST", "/api/login", map[string]string{"token": tok}, &out); st != 200 {
		ts.t.Fatalf("login: status %d", st)
	}
	b.token = out.Token
	return b
}

func (b *browser) request(method, path string, body any) *http.Request {
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(method, b.ts.base+path, r)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	if b.token != "" {
		req.Header.Set(tokenHeader, b.token)
	}
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	return req
}

func (b *browser) send(req *http.Request, out any) int {
	b.ts.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, out); err != nil {
			b.ts.t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, raw)
		}
	}
	return resp.StatusCode
}

func (b *browser) do(method, path string, body, out any) int {
	b.ts.t.Helper()
	return b.send(b.request(method, path, body), out)
}

func TestRefusals(t *testing.T) {
	fake := apitest.New("alice")
	ts := newTestServer(t, fake)
	b := ts.signIn()
	if st := b.do("GET", "/api/groups", nil, nil); st != 200 {
		t.Fatalf("signed-in request: status %d", st)
	}
	if st := b.do("POST", "/api/groups", map[string]string{"name": "ops"}, nil); st != 200 {
		t.Fatalf("create group: status %d", st)
	}
	cases := []struct {
		name   string
		mutate func(*http.Request)
		want   int
	}{
		{"no cookie", func(r *http.Request) { r.Header.Del("Cookie") }, 401},
		{"forged cookie", func(r *http.Request) {
			r.Header.Del("Cookie")
			r.AddCookie(&http.Cookie{Name: ts.srv.auth.cookie, Value: "guess"})
		}, 401},
		{"no token", func(r *http.Request) { r.Header.Del(tokenHeader) }, 403},
		{"wrong token", func(r *http.Request) { r.Header.Set(tokenHeader, otherFirst(b.token)) }, 403},
		{"other origin", func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:1") }, 403},
		{"null origin", func(r *http.Request) { r.Header.Set("Origin", "null") }, 403},
		{"cross-site fetch", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, 403},
		{"same-site other port", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, 403},
		{"rebound host", func(r *http.Request) { r.Host = "evil.example:" + strings.Split(ts.base, ":")[2] }, http.StatusMisdirectedRequest},
		{"localhost host", func(r *http.Request) { r.Host = "localhost:" + strings.Split(ts.base, ":")[2] }, http.StatusMisdirectedRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := b.request("POST", "/api/groups/ops/messages", map[string]string{"text": "should not be sent"})
			// The jar adds cookies in Do; put them on the request now so
			// that the mutation can take them away.
			for _, ck := range b.client.Jar.Cookies(req.URL) {
				req.AddCookie(ck)
			}
			c.mutate(req)
			plain := &http.Client{}
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
	ms, err := fake.Log(context.Background(), "ops", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 0 {
		t.Errorf("a refused request sent a message: %+v", ms)
	}
	// The same request with everything in place goes through.
	if st := b.do("POST", "/api/groups/ops/messages", map[string]string{"text": "hi"}, nil); st != 200 {
		t.Errorf("control send: status %d", st)
	}
}

// otherFirst returns s with its first character changed.
func otherFirst(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}

func TestLoginLinkIsOneTime(t *testing.T) {
	ts := newTestServer(t, apitest.New("alice"))
	now := time.Unix(1_800_000_000, 0)
	ts.srv.now = func() time.Time { return now }
	link, exp, err := ts.srv.Login()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, ts.base+"/#login=") || !exp.Equal(now.Add(loginTTL)) {
		t.Fatalf("link %q expires %v", link, exp)
	}
	tok := link[strings.Index(link, "=")+1:]
	jar, _ := cookiejar.New(nil)
	b := &browser{ts: ts, client: &http.Client{Jar: jar}, origin: ts.base}
	if st := b.do("POST", "/api/login", map[string]string{"token": tok}, nil); st != 200 {
		t.Fatalf("first use: %d", st)
	}
	u, _ := url.Parse(ts.base)
	cs := jar.Cookies(u)
	if len(cs) != 1 || cs[0].Name != ts.srv.auth.cookie {
		t.Fatalf("cookies after login: %v", cs)
	}
	if st := b.do("POST", "/api/login", map[string]string{"token": tok}, nil); st != 401 {
		t.Errorf("second use: %d, want 401", st)
	}
	// An unused link expires.
	link2, _, _ := ts.srv.Login()
	now = now.Add(loginTTL + time.Second)
	if st := b.do("POST", "/api/login", map[string]string{"token": link2[strings.Index(link2, "=")+1:]}, nil); st != 401 {
		t.Errorf("expired link: %d, want 401", st)
	}
	// A login from another origin is refused even with a good token.
	link3, _, _ := ts.srv.Login()
	b.origin = "http://127.0.0.1:9"
	if st := b.do("POST", "/api/login", map[string]string{"token": link3[strings.Index(link3, "=")+1:]}, nil); st != 403 {
		t.Errorf("cross-origin login: %d, want 403", st)
	}
}

func TestLogout(t *testing.T) {
	ts := newTestServer(t, apitest.New("alice"))
	b := ts.signIn()
	other := ts.signIn()
	if st := b.do("POST", "/api/logout", nil, nil); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	if st := b.do("GET", "/api/status", nil, nil); st != 401 {
		t.Errorf("after logout: %d, want 401", st)
	}
	if st := other.do("GET", "/api/status", nil, nil); st != 200 {
		t.Errorf("another session after logout: %d, want 200", st)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	ts := newTestServer(t, apitest.New("alice"))
	link, _, _ := ts.srv.Login()
	req, _ := http.NewRequest("POST", ts.base+"/api/login", strings.NewReader(fmt.Sprintf(`{"token":%q}`, link[strings.Index(link, "=")+1:])))
	req.Header.Set("Origin", ts.base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(strings.ToLower(sc), "domain=") {
		t.Errorf("Set-Cookie %q names a domain; it must be host-only", sc)
	}
}

func TestHeaders(t *testing.T) {
	ts := newTestServer(t, apitest.New("alice"))
	for _, path := range []string{"/", "/js/app.js", "/api/groups"} {
		resp, err := http.Get(ts.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		// Pictures: this origin, and the previews a message carries as
		// data: URLs; nothing else.
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			!strings.Contains(csp, "img-src 'self' data:;") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
	}
}

// TestAssetsRenderTextOnly guards the rule that text reaches the page only
// through text nodes: no HTML sink appears in the client's code, and the
// page has no inline script or handler for the CSP to allow.
func TestAssetsRenderTextOnly(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|javascript:`)
	inline := regexp.MustCompile(`(?i)<script>|<script [^>]*>[^<]|\son[a-z]+=|style=`)
	err := fs.WalkDir(assetFS, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".js") {
			if m := sinks.Find(b); m != nil {
				t.Errorf("%s uses %s", path, m)
			}
		}
		if strings.HasSuffix(path, ".html") {
			if m := inline.Find(b); m != nil {
				t.Errorf("%s has inline %q", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := AssetSize()
	if err != nil || n == 0 {
		t.Fatalf("AssetSize: %d, %v", n, err)
	}
	t.Logf("embedded assets: %d bytes", n)
}

func TestMessageWindows(t *testing.T) {
	fake := apitest.New("alice")
	ctx := context.Background()
	if _, err := fake.CreateGroup(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	const total = 700
	for i := range total {
		if _, err := fake.Send(ctx, "ops", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := fake.Log(ctx, "ops", total)
	if err != nil || len(all) != total {
		t.Fatalf("fake log: %d, %v", len(all), err)
	}
	ts := newTestServer(t, fake)
	b := ts.signIn()
	texts := func(p page) string {
		var s []string
		for _, m := range p.Messages {
			s = append(s, m.Text)
		}
		if len(s) > 4 {
			s = append(s[:2], "…", s[len(s)-1])
		}
		return fmt.Sprintf("%v older=%v newer=%v n=%d", s, p.Older, p.Newer, len(p.Messages))
	}
	get := func(q string) string {
		var p page
		if st := b.do("GET", "/api/groups/ops/messages"+q, nil, &p); st != 200 {
			return fmt.Sprint("status ", st)
		}
		return texts(p)
	}
	id := func(i int) string { return all[i].ID }
	for _, c := range []struct{ q, want string }{
		{"", "[m650 m651 … m699] older=true newer=false n=50"},
		{"?limit=3", "[m697 m698 m699] older=true newer=false n=3"},
		{"?before=" + id(650) + "&limit=100", "[m550 m551 … m649] older=true newer=true n=100"},
		// Far back: past the first Log page of 256.
		{"?before=" + id(100) + "&limit=100", "[m0 m1 … m99] older=false newer=true n=100"},
		{"?before=" + id(30) + "&limit=100", "[m0 m1 … m29] older=false newer=true n=30"},
		{"?before=" + id(0), "[] older=false newer=true n=0"},
		{"?after=" + id(10) + "&limit=2", "[m11 m12] older=true newer=true n=2"},
		{"?after=" + id(698), "[m699] older=true newer=false n=1"},
		{"?around=" + id(5) + "&limit=10", "[m0 m1 … m10] older=false newer=true n=11"},
		{"?around=" + id(400) + "&limit=4", "[m398 m399 … m402] older=true newer=true n=5"},
		{"?around=00", "status 404"},
		{"?before=" + id(1) + "&after=" + id(2), "status 400"},
		{"?limit=0", "status 400"},
		{"?limit=501", "status 400"},
	} {
		if got := get(c.q); got != c.want {
			t.Errorf("%s: got %s, want %s", c.q, got, c.want)
		}
	}
}

func TestEventsStream(t *testing.T) {
	fake := apitest.New("alice")
	ctx := context.Background()
	fake.CreateGroup(ctx, "ops")
	ts := newTestServer(t, fake)
	b := ts.signIn()
	resp, err := b.client.Do(b.request("GET", "/api/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), ": ready") {
		t.Fatalf("first bytes %q", buf[:n])
	}
	fake.Receive("ops", "bob", "<b>hello</b>")
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(got, "hello") && time.Now().Before(deadline) {
		n, err := resp.Body.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(got, "event: message\ndata: {") || !strings.Contains(got, `\u003cb\u003ehello`) {
		t.Errorf("stream: %q", got)
	}
	// Without the token the stream is refused.
	b.token = ""
	if st := b.do("GET", "/api/events", nil, nil); st != 403 {
		t.Errorf("events without token: %d", st)
	}
}

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7768": true, "[::1]:80": true, "127.0.0.2:1": true,
		"0.0.0.0:7768": false, "localhost:7768": false, "192.168.1.2:80": false, "127.0.0.1": false, "127.0.0.1:x": false,
	} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%q) = %v", addr, err)
		}
	}
	if _, err := Listen("0.0.0.0:0"); err == nil {
		t.Error("Listen on all interfaces accepted")
	}
}
