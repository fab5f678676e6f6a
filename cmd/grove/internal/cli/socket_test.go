package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSocketInRuntimeDir: with a private $XDG_RUNTIME_DIR the daemon's
// socket is there, named after the home, not in the home, and the CLI
// finds it; two homes get two sockets; a runtime directory other users
// may enter is not used.
func TestSocketInRuntimeDir(t *testing.T) {
	h := newHarness(t)
	runtime := filepath.Join(shortTempDir(t), "run")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	h.env["XDG_RUNTIME_DIR"] = runtime
	h.up()
	ents, err := os.ReadDir(runtime)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "grove-") || !strings.HasSuffix(ents[0].Name(), ".sock") {
		t.Fatalf("runtime dir holds %v, want one grove-*.sock", ents)
	}
	if fi, err := os.Stat(filepath.Join(runtime, ents[0].Name())); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(h.home, SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a socket in the home too: %v", err)
	}
	if out := h.ok("status"); !strings.Contains(out, "alice") {
		t.Errorf("status through the runtime-dir socket: %q", out)
	}
	e := &env{r: h.runner}
	if a, b := e.socketPath(h.home), e.socketPath(h.home+"-other"); a == b {
		t.Errorf("two homes share the socket %s", a)
	}
	h.stopUp()
	if ents, _ := os.ReadDir(runtime); len(ents) != 0 {
		t.Errorf("after the daemon stopped the runtime dir holds %v", ents)
	}

	if err := os.Chmod(runtime, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := e.socketPath(h.home), filepath.Join(h.home, SocketName); got != want {
		t.Errorf("with a runtime dir others may enter the socket is %s, want %s", got, want)
	}
}
