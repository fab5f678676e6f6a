package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"grove/node/api"
)

// Browser tests drive Debian's chromium (or another Chrome found on PATH)
// headless through the DevTools protocol. Under CI=true a missing browser
// fails the test; elsewhere it skips.

// findChromium returns the browser's path or skips (fails under CI).
func findChromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("GROVE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("no chromium on PATH: the browser tests need it under CI (apt-get install chromium)")
	}
	tb.Skip("no chromium on PATH: install Debian's chromium package (or set GROVE_CHROMIUM) to run the browser tests")
	return ""
}

// newBrowser starts one headless browser for the test and returns its
// context; tabs in it are opened with newTab.
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	exe := findChromium(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("no-proxy-server", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Start the browser now, so that its start-up is not billed to the
	// first step.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		tb.Fatalf("starting %s: %v", exe, err)
	}
	tb.Cleanup(func() {
		bcancel()
		acancel()
	})
	return bctx
}

// tab is one browser tab in its own browser context (separate cookies and
// storage: one person's browser).
type tab struct {
	tb   testing.TB
	name string
	ctx  context.Context
}

func newTab(tb testing.TB, browser context.Context, name string) *tab {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		tb.Fatalf("%s: new tab: %v", name, err)
	}
	t := &tab{tb: tb, name: name, ctx: ctx}
	tb.Cleanup(func() {
		if tb.Failed() {
			t.screenshot(filepath.Join(tb.ArtifactDir(), "failed-"+name+".png"))
		}
		cancel()
	})
	return t
}

// do runs steps with a deadline and fails the test on error.
func (t *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.tb.Fatalf("%s: %s: %v", t.name, what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into out.
func (t *tab) eval(js string, out any) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.tb.Fatalf("%s: eval %s: %v", t.name, js, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.tb.Fatalf("%s: eval %s: decoding %s: %v", t.name, js, raw, err)
		}
	}
}

func (t *tab) str(js string) string {
	t.tb.Helper()
	var s string
	t.eval(js, &s)
	return s
}

// wait polls a JavaScript condition until it holds. It polls from Go, so
// that a page reload while waiting (which destroys the page's JavaScript
// context) is only a failed poll.
func (t *tab) wait(what, cond string, timeout time.Duration) {
	t.tb.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.tb.Fatalf("%s: timed out after %v waiting for %s (%s); last error: %v", t.name, timeout, what, cond, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click clicks the element like a person.
//
// The page may draw a list again between finding the element and clicking
// it (the group list is redrawn on every daemon event), and the click
// then fails on a node that no longer exists (failed once in four runs on
// a loaded machine): it finds the element again, for up to 10 s.
func (t *tab) click(sel string) {
	t.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.ctx, 60*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Could not find node") || time.Now().After(deadline) {
			t.tb.Fatalf("%s: click %s: %v", t.name, sel, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// typeText types into the element like a person (key events).
func (t *tab) typeText(sel, text string) {
	t.tb.Helper()
	t.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// setValue fills a field at once (for long invite codes), as pasting
// would.
func (t *tab) setValue(sel, value string) {
	t.tb.Helper()
	var ok bool
	t.eval(`(() => { const e = document.querySelector(`+jsString(sel)+`); if (!e) return false;
		e.value = `+jsString(value)+`; e.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, &ok)
	if !ok {
		t.tb.Fatalf("%s: no %s to fill", t.name, sel)
	}
}

func (t *tab) screenshot(path string) {
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.tb.Logf("%s: screenshot: %v", t.name, err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.tb.Logf("%s: screenshot: %v", t.name, err)
		return
	}
	t.tb.Logf("%s: screenshot in %s", t.name, path)
}

func (t *tab) viewport(w, h int64) {
	t.tb.Helper()
	t.do("viewport", chromedp.EmulateViewport(w, h))
}

// signIn asks d's daemon for a one-time link (grove gui) and opens it.
func (t *tab) signIn(d *device) api.WebLogin {
	t.tb.Helper()
	var l api.WebLogin
	if err := json.Unmarshal([]byte(d.ok("gui", "--json", "--no-open")), &l); err != nil {
		t.tb.Fatal(err)
	}
	t.open(l)
	return l
}

// open follows a sign-in link.
func (t *tab) open(l api.WebLogin) {
	t.tb.Helper()
	t.do("open sign-in link", chromedp.Navigate(l.URL))
	// The page takes the secret out of the address bar as it signs in.
	t.wait("the app", `!document.getElementById("app").hidden && !location.href.includes("login=")`, 20*time.Second)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func msgCount(t *tab) int {
	var n int
	t.eval(`document.querySelectorAll("#messages li.msg").length`, &n)
	return n
}
