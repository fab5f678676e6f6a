package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// serviceMarker starts every unit file grove writes, so that uninstall and
// a repeated install touch only grove's own file.
const serviceMarker = "# Written by grove service install; grove service uninstall removes it."

// unitFile is a systemd user unit that runs `grove up` for home: started
// with the user's session (or at boot with lingering enabled), restarted
// after a crash, stopped with SIGTERM, which up handles like Ctrl-C.
func unitFile(exe, home string) (string, error) {
	q := func(s string) (string, error) {
		// systemd unquotes "…" with C-style escapes and expands %
		// specifiers; a path with a quote, backslash or control
		// character is not worth the escaping.
		if strings.ContainsAny(s, "\"\\\n\r\t") {
			return "", fmt.Errorf("path %q has characters a unit file cannot carry simply (quote, backslash, control)", s)
		}
		return `"` + strings.ReplaceAll(s, "%", "%%") + `"`, nil
	}
	qexe, err := q(exe)
	if err != nil {
		return "", err
	}
	qhome, err := q(home)
	if err != nil {
		return "", err
	}
	return serviceMarker + `
[Unit]
Description=Grove daemon for ` + strings.ReplaceAll(home, "%", "%%") + `

[Service]
Type=simple
ExecStart=` + qexe + ` --home ` + qhome + ` up
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
UMask=0077
NoNewPrivileges=yes

[Install]
WantedBy=default.target
`, nil
}

// unitPath is where systemd looks for the user's own units.
func (e *env) unitPath() (string, error) {
	if x := e.r.getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "systemd", "user", "grove.service"), nil
	}
	if h := e.r.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "systemd", "user", "grove.service"), nil
	}
	return "", errors.New("no configuration directory: set $HOME or $XDG_CONFIG_HOME")
}

func (e *env) cmdService(args []string) error {
	f := e.flags("service")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	path, err := e.unitPath()
	if err != nil {
		return err
	}
	switch pos[0] {
	case "install", "show":
		home, err := e.homeDir()
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("service: finding the grove executable: %w", err)
		}
		if e.r.testingOnlyExecutable != "" {
			exe = e.r.testingOnlyExecutable
		}
		unit, err := unitFile(exe, home)
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if pos[0] == "show" {
			fmt.Fprint(e.stdout, unit)
			return nil
		}
		if old, err := os.ReadFile(path); err == nil && !bytes.HasPrefix(old, []byte(serviceMarker)) {
			return fmt.Errorf("service: %s exists and was not written by grove; move it away first", path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			return fmt.Errorf("service: %w", err)
		}
		fmt.Fprintf(e.stdout, "wrote %s\nstart it now and at every login with:\n  systemctl --user daemon-reload\n  systemctl --user enable --now grove\n(to run without a login session: loginctl enable-linger)\n", path)
		return nil
	case "uninstall":
		old, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(e.stdout, "no unit file at %s\n", path)
			return nil
		}
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if !bytes.HasPrefix(old, []byte(serviceMarker)) {
			return fmt.Errorf("service: %s was not written by grove; leaving it alone", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("service: %w", err)
		}
		fmt.Fprintf(e.stdout, "removed %s\nif the service was enabled, stop it with:\n  systemctl --user disable --now grove\n  systemctl --user daemon-reload\n", path)
		return nil
	}
	return usagef("service: unknown action %q (want install, uninstall or show)", pos[0])
}
