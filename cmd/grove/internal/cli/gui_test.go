package cli

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"grove/node/api"
)

func TestGUICommand(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	h.up("--gui", "127.0.0.1:0")
	var opened []string
	h.runner.testingOnlyOpenURL = func(url string) error {
		opened = append(opened, url)
		return nil
	}
	out := h.ok("gui")
	link := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(link, "http://127.0.0.1:") || !strings.Contains(link, "/#login=") {
		t.Fatalf("gui printed %q", out)
	}
	if len(opened) != 1 || opened[0] != link {
		t.Errorf("opened %q, want the printed link", opened)
	}
	if !strings.Contains(out, "one-time sign-in link") {
		t.Errorf("gui output lacks the explanation: %q", out)
	}
	// The page is served there, and each link is new.
	base := link[:strings.Index(link, "#")]
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script type="module" src="/js/app.js">`) {
		t.Errorf("GET %s: %d %.200s", base, resp.StatusCode, page)
	}
	var l api.WebLogin
	if err := json.Unmarshal([]byte(h.ok("gui", "--json", "--no-open")), &l); err != nil {
		t.Fatal(err)
	}
	if l.URL == link || !strings.HasPrefix(l.URL, base) || l.Expires.IsZero() {
		t.Errorf("second link %+v (first %s)", l, link)
	}
	if len(opened) != 1 {
		t.Errorf("--no-open opened a browser")
	}
}

func TestGUIOff(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	h.up("--gui", "off")
	h.fails("grove: the web client is off (start the daemon with --gui 127.0.0.1:PORT)\n", 1, "gui", "--no-open")
}

func TestGUIFlagErrors(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	h.fails("grove: up: --gui: 0.0.0.0:7768 is not a loopback address (use 127.0.0.1:PORT)\n", 2, "up", "--gui", "0.0.0.0:7768")
	h.fails("grove: up: --gui: localhost:7768 is not a loopback address (use 127.0.0.1:PORT)\n", 2, "up", "--gui", "localhost:7768")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	h.fails("grove: up: --gui "+addr+": the port is in use (choose another, or --gui off)\n", 1, "up", "--gui", addr)
}

// TestGUIDefaultPortTaken: a taken default port does not stop the daemon;
// it runs without the web client and says so.
func TestGUIDefaultPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	h := newHarness(t)
	h.runner.testingOnlyDefaultGUI = taken.Addr().String()
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	h.up()
	if log := h.log.String(); !strings.Contains(log, "web client off: its default address is in use") {
		t.Errorf("no warning in the log:\n%s", log)
	}
	h.fails("grove: the web client is off (start the daemon with --gui 127.0.0.1:PORT)\n", 1, "gui", "--no-open")
	// The default, when free, is used without a flag.
	e := &env{r: h.runner}
	lis, err := e.listenGUI("127.0.0.1:0", false, slog.New(slog.DiscardHandler))
	if err != nil || lis == nil {
		t.Fatalf("free default: %v, %v", lis, err)
	}
	lis.Close()
}
