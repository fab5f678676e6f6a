package web

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"grove/node/api"
	"grove/node/api/apitest"
)

// convFake is the fake device with the conversation API: it records what
// each call was asked, and SaveFile writes content.
type convFake struct {
	*apitest.Fake
	mu      sync.Mutex
	calls   []string
	saved   string // the path SaveFile last wrote
	content string
	name    string
}

func (c *convFake) record(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, s)
}

func (c *convFake) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *convFake) Post(ctx context.Context, req api.PostRequest) (api.Message, error) {
	c.record("post " + req.Group + " " + req.Text + " reply=" + req.ReplyTo)
	return api.Message{Group: req.Group, ID: "p1", Text: req.Text, ReplyTo: req.ReplyTo, Own: true}, nil
}

func (c *convFake) React(ctx context.Context, req api.ReactRequest) (api.Message, error) {
	rm := ""
	if req.Remove {
		rm = " remove"
	}
	c.record("react " + req.Group + " " + req.ID + " " + req.Emoji + rm)
	return api.Message{ID: req.ID, Reactions: []api.Reaction{{Emoji: req.Emoji, Count: 1, Own: true}}}, nil
}

func (c *convFake) Edit(ctx context.Context, group, id, text string) (api.Message, error) {
	c.record("edit " + group + " " + id + " " + text)
	return api.Message{ID: id, Text: text, Edited: true}, nil
}

func (c *convFake) Delete(ctx context.Context, group, id string) (api.Message, error) {
	c.record("delete " + group + " " + id)
	return api.Message{ID: id, Kind: api.KindDeleted, Deleted: true}, nil
}

func (c *convFake) Typing(ctx context.Context, group string) error {
	c.record("typing " + group)
	return nil
}

func (c *convFake) SetReceipts(ctx context.Context, on bool) error {
	c.record(fmt.Sprint("receipts ", on))
	return nil
}

func (c *convFake) Files(ctx context.Context, group string) ([]api.File, error) {
	c.record("files " + group)
	return nil, nil
}

func (c *convFake) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	c.record("save " + req.Group + " " + req.File)
	if req.File == "missing" {
		return api.File{}, api.Errorf(api.CodeNotFound, "message missing carries no file")
	}
	if !filepath.IsAbs(req.Path) {
		return api.File{}, api.Errorf(api.CodeInvalidArgument, "give an absolute path to save to")
	}
	if err := os.WriteFile(req.Path, []byte(c.content), 0o600); err != nil {
		return api.File{}, err
	}
	c.mu.Lock()
	c.saved = req.Path
	c.mu.Unlock()
	return api.File{ID: req.File, Name: c.name, Size: int64(len(c.content)), Type: "text/html", Saved: req.Path}, nil
}

var _ api.Conversations = (*convFake)(nil)

func TestConversationEndpoints(t *testing.T) {
	cf := &convFake{Fake: apitest.New("alice")}
	if _, err := cf.CreateGroup(context.Background(), "ops"); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, cf)
	b := ts.signIn()
	var m api.Message
	for _, c := range []struct {
		method, path string
		body         any
		want         string // the call the daemon got
	}{
		{"POST", "/api/groups/ops/messages", map[string]string{"text": "hi", "reply_to": "ab12"}, "post ops hi reply=ab12"},
		{"POST", "/api/groups/ops/messages", map[string]string{"text": "hi @bob"}, "post ops hi @bob reply="},
		{"POST", "/api/groups/ops/messages/ab12/react", map[string]any{"emoji": "👍"}, "react ops ab12 👍"},
		{"POST", "/api/groups/ops/messages/ab12/react", map[string]any{"emoji": "👍", "remove": true}, "react ops ab12 👍 remove"},
		{"POST", "/api/groups/ops/messages/ab12/edit", map[string]string{"text": "<b>new</b>"}, "edit ops ab12 <b>new</b>"},
		{"DELETE", "/api/groups/ops/messages/ab12", nil, "delete ops ab12"},
		{"POST", "/api/groups/ops/typing", nil, "typing ops"},
		{"GET", "/api/groups/ops/files", nil, "files ops"},
	} {
		before := len(cf.Calls())
		var out any
		if st := b.do(c.method, c.path, c.body, &out); st != 200 {
			t.Errorf("%s %s: status %d", c.method, c.path, st)
			continue
		}
		calls := cf.Calls()
		if len(calls) != before+1 || calls[before] != c.want {
			t.Errorf("%s %s: daemon got %q, want %q", c.method, c.path, calls[before:], c.want)
		}
	}
	// A plain message goes through Send, which says whether it waits.
	before := len(cf.Calls())
	if st := b.do("POST", "/api/groups/ops/messages", map[string]string{"text": "plain"}, &m); st != 200 || m.Text != "plain" {
		t.Errorf("plain send: status %d, %+v", st, m)
	}
	if calls := cf.Calls(); len(calls) != before {
		t.Errorf("a plain message went through the conversation API: %q", calls[before:])
	}
	// Unknown fields and a missing token are refused before the daemon
	// hears of them.
	before = len(cf.Calls())
	if st := b.do("POST", "/api/groups/ops/messages/ab12/edit", map[string]string{"text": "x", "id": "other"}, nil); st != 400 {
		t.Errorf("edit with an unknown field: status %d", st)
	}
	tok := b.token
	b.token = ""
	for _, p := range []struct{ method, path string }{
		{"POST", "/api/groups/ops/messages/ab12/react"}, {"POST", "/api/groups/ops/messages/ab12/edit"},
		{"DELETE", "/api/groups/ops/messages/ab12"}, {"POST", "/api/groups/ops/typing"}, {"GET", "/api/groups/ops/files/ab12"},
	} {
		if st := b.do(p.method, p.path, map[string]string{"emoji": "x"}, nil); st != 403 {
			t.Errorf("%s %s without the token: status %d", p.method, p.path, st)
		}
	}
	b.token = tok
	if calls := cf.Calls(); len(calls) != before {
		t.Errorf("refused requests reached the daemon: %q", calls[before:])
	}
}

func TestConversationUnsupported(t *testing.T) {
	fake := apitest.New("alice")
	fake.CreateGroup(context.Background(), "ops")
	b := newTestServer(t, fake).signIn()
	for _, p := range []struct{ method, path string }{
		{"POST", "/api/groups/ops/messages/ab12/react"}, {"DELETE", "/api/groups/ops/messages/ab12"},
		{"GET", "/api/groups/ops/files/ab12"},
	} {
		var body any
		if p.method == "POST" {
			body = map[string]string{"emoji": "👍"}
		}
		if st := b.do(p.method, p.path, body, nil); st != 503 {
			t.Errorf("%s %s on a daemon without the conversation API: status %d", p.method, p.path, st)
		}
	}
	// A reply cannot fall back to a plain message; an @name can.
	if st := b.do("POST", "/api/groups/ops/messages", map[string]string{"text": "hi", "reply_to": "ab"}, nil); st != 503 {
		t.Errorf("a reply without the conversation API: status %d", st)
	}
	if st := b.do("POST", "/api/groups/ops/messages", map[string]string{"text": "hi @bob"}, nil); st != 200 {
		t.Errorf("an @name without the conversation API: status %d", st)
	}
}

func TestDownload(t *testing.T) {
	cf := &convFake{Fake: apitest.New("alice"), content: "<script>alert(1)</script>", name: "../../evil\n.html"}
	cf.CreateGroup(context.Background(), "ops")
	ts := newTestServer(t, cf)
	b := ts.signIn()
	resp, err := b.client.Do(b.request("GET", "/api/groups/ops/files/ab12", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != cf.content {
		t.Fatalf("download: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("content type %q: a member's file must not render", ct)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}
	disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || strings.ContainsAny(params["filename"], "/\\\n") {
		t.Errorf("Content-Disposition %q: %v %v", resp.Header.Get("Content-Disposition"), params, err)
	}
	// The copy made for the download is gone.
	cf.mu.Lock()
	saved := cf.saved
	cf.mu.Unlock()
	if saved == "" {
		t.Fatal("SaveFile was not called")
	}
	if _, err := os.Stat(filepath.Dir(saved)); !os.IsNotExist(err) {
		t.Errorf("the download's temporary copy %s is still there: %v", saved, err)
	}
	// A message without a file is the daemon's error, as JSON.
	if st := b.do("GET", "/api/groups/ops/files/missing", nil, nil); st != 404 {
		t.Errorf("download of a message without a file: status %d", st)
	}
	// Without the session cookie: refused, and nothing fetched.
	before := len(cf.Calls())
	req := b.request("GET", "/api/groups/ops/files/ab12", nil)
	resp, err = http.DefaultClient.Do(req) // no cookie jar
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("download without the session cookie: status %d", resp.StatusCode)
	}
	if calls := cf.Calls(); len(calls) != before {
		t.Errorf("a download without the session reached the daemon: %q", calls[before:])
	}
}

func TestAttachmentName(t *testing.T) {
	for name, want := range map[string]string{
		"report.pdf":    "report.pdf",
		"../etc/passwd": ".._etc_passwd",
		"a\r\nb":        "a__b",
		"":              "file",
		"..":            "file",
		"café \"x\"":    "café \"x\"",
	} {
		_, params, err := mime.ParseMediaType(attachment(name))
		if err != nil || params["filename"] != want {
			t.Errorf("attachment(%q) = %q: %v, %v", name, attachment(name), params, err)
		}
	}
}
