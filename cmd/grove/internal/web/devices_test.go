package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"grove/node/api"
	"grove/node/api/apitest"
)

// devFake is the fake device with an account: two devices, this one
// (laptop) and a phone. It records calls like convFake.
type devFake struct {
	*convFake
	list []api.Device
}

func newDevFake() *devFake {
	seen := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return &devFake{convFake: &convFake{Fake: apitest.New("alice")}, list: []api.Device{
		{ID: "aaaa1111", Name: "laptop", Fingerprint: "12345 67890", PeerID: "12D3laptop", Self: true, Online: true, LastSeen: seen},
		{ID: "bbbb2222", Name: "<b>phone</b>", Fingerprint: "09876 54321", PeerID: "12D3phone", LastSeen: seen.Add(-time.Hour)},
	}}
}

func (d *devFake) DeviceLink(ctx context.Context) (api.LinkCode, error) {
	d.record("link")
	return api.LinkCode{Code: "grove-link-CODE", Expires: time.Date(2026, 3, 4, 5, 16, 7, 0, time.UTC)}, nil
}

func (d *devFake) DeviceList(ctx context.Context) ([]api.Device, error) {
	d.record("list")
	return d.list, nil
}

func (d *devFake) DeviceRevoke(ctx context.Context, device string) (api.Device, error) {
	d.record("revoke " + device)
	for _, x := range d.list {
		if x.ID != device {
			continue
		}
		if x.Self {
			return api.Device{}, api.Errorf(api.CodeInvalidArgument, "a device cannot revoke itself: revoke it from another device of the account")
		}
		x.Revoked = true
		return x, nil
	}
	return api.Device{}, api.Errorf(api.CodeNotFound, "no device %q in this account (see grove device list)", device)
}

func (d *devFake) BackupCreate(ctx context.Context, req api.BackupRequest) (api.BackupResult, error) {
	d.record("backup " + req.Path)
	return api.BackupResult{}, nil
}

var _ api.Devices = (*devFake)(nil)

func TestDeviceEndpoints(t *testing.T) {
	df := newDevFake()
	b := newTestServer(t, df).signIn()

	var ds []api.Device
	if st := b.do("GET", "/api/devices", nil, &ds); st != 200 {
		t.Fatalf("list: status %d", st)
	}
	if len(ds) != 2 || !ds[0].Self || ds[0].Fingerprint != "12345 67890" || ds[1].Name != "<b>phone</b>" || ds[1].LastSeen.IsZero() {
		t.Errorf("list: %+v", ds)
	}
	var lc api.LinkCode
	if st := b.do("POST", "/api/devices/link", nil, &lc); st != 200 || lc.Code != "grove-link-CODE" || lc.Expires.IsZero() {
		t.Errorf("link: status %d, %+v", st, lc)
	}
	var d api.Device
	if st := b.do("POST", "/api/devices/bbbb2222/revoke", nil, &d); st != 200 || d.ID != "bbbb2222" || !d.Revoked {
		t.Errorf("revoke: status %d, %+v", st, d)
	}
	// The daemon's refusals come through with their words.
	// In order: the calls the daemon got are compared in order below (a
	// map here failed half the runs).
	for _, c := range []struct {
		path string
		want int
	}{{"/api/devices/aaaa1111/revoke", 400}, {"/api/devices/nope/revoke", 404}} {
		path, want := c.path, c.want
		resp, err := b.client.Do(b.request("POST", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != want || e.Message == "" {
			t.Errorf("POST %s: status %d %+v, want %d with the daemon's reason", path, resp.StatusCode, e, want)
		}
	}
	var on struct{ On *bool }
	if st := b.do("POST", "/api/receipts", map[string]bool{"on": false}, &on); st != 200 || on.On == nil || *on.On {
		t.Errorf("receipts off: status %d, %+v", st, on)
	}
	if st := b.do("POST", "/api/receipts", map[string]bool{"on": true}, &on); st != 200 || on.On == nil || !*on.On {
		t.Errorf("receipts on: status %d, %+v", st, on)
	}
	want := []string{"list", "link", "revoke bbbb2222", "revoke aaaa1111", "revoke nope", "receipts false", "receipts true"}
	if got := df.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the daemon got %q, want %q", got, want)
	}

	// Refused before the daemon hears of them: a receipts body that does
	// not say on or off (an empty one must not mean off), unknown fields,
	// no token, another origin, no session.
	before := len(df.Calls())
	for _, body := range []any{map[string]any{}, map[string]any{"on": "yes"}, map[string]any{"on": false, "device": "x"}} {
		if st := b.do("POST", "/api/receipts", body, nil); st != 400 {
			t.Errorf("receipts with %v: status %d", body, st)
		}
	}
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/devices", nil},
		{"POST", "/api/devices/link", nil},
		{"POST", "/api/devices/bbbb2222/revoke", nil},
		{"POST", "/api/receipts", map[string]bool{"on": false}},
	}
	tok := b.token
	for _, e := range endpoints {
		b.token = ""
		if st := b.do(e.method, e.path, e.body, nil); st != 403 {
			t.Errorf("%s %s without the token: status %d", e.method, e.path, st)
		}
		b.token, b.origin = tok, "http://127.0.0.1:1"
		if st := b.do(e.method, e.path, e.body, nil); st != 403 {
			t.Errorf("%s %s from another origin: status %d", e.method, e.path, st)
		}
		b.origin = b.ts.base
		req := b.request(e.method, e.path, e.body)
		resp, err := http.DefaultClient.Do(req) // no cookie jar
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s %s without the session cookie: status %d", e.method, e.path, resp.StatusCode)
		}
	}
	if calls := df.Calls(); len(calls) != before {
		t.Errorf("refused requests reached the daemon: %q", calls[before:])
	}
}

func TestDevicesUnsupported(t *testing.T) {
	b := newTestServer(t, apitest.New("alice")).signIn()
	for _, e := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/devices", nil},
		{"POST", "/api/devices/link", nil},
		{"POST", "/api/devices/bbbb2222/revoke", nil},
		{"POST", "/api/receipts", map[string]bool{"on": false}},
	} {
		resp, err := b.client.Do(b.request(e.method, e.path, e.body))
		if err != nil {
			t.Fatal(err)
		}
		var ae api.Error
		json.NewDecoder(resp.Body).Decode(&ae)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.HasPrefix(ae.Message, "this daemon") {
			t.Errorf("%s %s on a daemon without accounts: status %d %+v", e.method, e.path, resp.StatusCode, ae)
		}
	}
}
