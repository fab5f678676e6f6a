package cli

import (
	"os"
	"strings"
	"testing"
)

// TestInitRestrictsExistingHome: init on a home that already exists with
// mode 0755 warns and leaves it 0700.
func TestInitRestrictsExistingHome(t *testing.T) {
	h := newHarness(t)
	if err := os.Mkdir(h.home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.home, 0o755); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := h.run("", "init", "--name", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "warning: "+h.home+" was open to other users (mode 0755), restricting it to 0700") {
		t.Errorf("stderr %q", errOut)
	}
	info, err := os.Stat(h.home)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("home mode %#o after init, want 0700", perm)
	}
}
