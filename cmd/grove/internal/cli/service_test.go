package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceUnit(t *testing.T) {
	h := newHarness(t)
	// A home with a space and a percent sign exercises the quoting.
	h.home = filepath.Join(shortTempDir(t), "my grove 100%")
	cfg := shortTempDir(t)
	h.env["HOME"] = cfg
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	h.runner.testingOnlyExecutable = exe
	path := filepath.Join(cfg, ".config", "systemd", "user", "grove.service")

	out := h.ok("service", "install")
	if !strings.HasPrefix(out, "wrote "+path+"\n") || !strings.Contains(out, "systemctl --user enable --now grove") {
		t.Errorf("install: %q", out)
	}
	unit, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantExec := `ExecStart="` + exe + `" --home "` + strings.ReplaceAll(h.home, "%", "%%") + `" up` + "\n"
	if !strings.Contains(string(unit), wantExec) || !strings.HasPrefix(string(unit), serviceMarker) {
		t.Errorf("unit file lacks %q:\n%s", wantExec, unit)
	}
	if show := h.ok("service", "show"); show != string(unit) {
		t.Errorf("show differs from the file:\n%s", show)
	}
	verifyUnit(t, path)

	h.ok("service", "install") // its own file is replaced
	if out := h.ok("service", "uninstall"); !strings.HasPrefix(out, "removed "+path+"\n") {
		t.Errorf("uninstall: %q", out)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unit file after uninstall: %v", err)
	}
	if out := h.ok("service", "uninstall"); out != "no unit file at "+path+"\n" {
		t.Errorf("second uninstall: %q", out)
	}
	// A unit file grove did not write is left alone.
	if err := os.WriteFile(path, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fails("grove: service: "+path+" exists and was not written by grove; move it away first\n", 1, "service", "install")
	h.fails("grove: service: "+path+" was not written by grove; leaving it alone\n", 1, "service", "uninstall")
	h.fails("grove: service: unknown action \"start\" (want install, uninstall or show)\n", 2, "service", "start")

	// $XDG_CONFIG_HOME wins over ~/.config.
	xdg := shortTempDir(t)
	h.env["XDG_CONFIG_HOME"] = xdg
	if out := h.ok("service", "install"); !strings.HasPrefix(out, "wrote "+filepath.Join(xdg, "systemd", "user", "grove.service")+"\n") {
		t.Errorf("install with XDG_CONFIG_HOME: %q", out)
	}
}

// verifyUnit runs systemd-analyze verify on the unit file when the machine
// has it: it must pass without a single warning.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit file is not verified")
		return
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

func TestUnitFileRefusesUnquotablePaths(t *testing.T) {
	if _, err := unitFile("/usr/bin/grove", "/home/a\"b"); err == nil {
		t.Error("a home with a quote was accepted")
	}
	if _, err := unitFile("/usr/bin/gro\\ve", "/home/a"); err == nil {
		t.Error("an executable with a backslash was accepted")
	}
}
