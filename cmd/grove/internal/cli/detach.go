package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/charmbracelet/x/term"

	"grove/node/api"
	"grove/store"
)

// LogName is the daemon's log file in the home directory when it runs
// detached (up --detach).
const LogName = "grove.log"

// detachReadyTimeout bounds how long up --detach waits for the daemon to
// serve its API.
const detachReadyTimeout = time.Minute

// detachFlag matches --detach in any of the spellings the flag package
// accepts.
var detachFlag = regexp.MustCompile(`^--?detach(=.*)?$`)

// detach starts `grove up` with the same arguments, minus --detach, as a
// process of its own session (so that closing the terminal does not stop
// it) with its output appended to LogName, waits until it serves the API and
// prints its pid.
func (e *env) detach(home string, args []string, kc *keyChoice) error {
	sock := e.socketPath(home)
	if live(sock) {
		return fmt.Errorf("a daemon is already running in %s", home)
	}
	pass, err := e.detachPassphrase(home, kc)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	defer clear(pass)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("up: finding the grove executable: %w", err)
	}
	childArgs := []string{"--home", home, "up"}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !detachFlag.MatchString(a) {
			childArgs = append(childArgs, a)
		}
	}
	logPath := filepath.Join(home, LogName)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("up: log file: %w", err)
	}
	defer logFile.Close()
	var passR *os.File
	if pass != nil {
		// Asked here, on the terminal: handed to the daemon through a
		// pipe (its file descriptor 3), never through a file or argv.
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
		_, err = w.Write(pass) // far below the pipe's buffer
		w.Close()
		if err != nil {
			r.Close()
			return fmt.Errorf("up: %w", err)
		}
		passR = r
		childArgs = append(childArgs, "--passphrase-file", "/dev/fd/3")
	}
	cmd := exec.Command(exe, childArgs...)
	cmd.Env = append(os.Environ(), e.r.testingOnlyDetachEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if passR != nil {
		cmd.ExtraFiles = []*os.File{passR}
	}
	err = cmd.Start()
	if passR != nil {
		passR.Close()
	}
	if err != nil {
		return fmt.Errorf("up: starting the daemon: %w", err)
	}
	pid := cmd.Process.Pid
	ready, err := waitReady(e.ctx, sock, pid)
	if !ready {
		cmd.Process.Kill()
		cmd.Wait()
		if err == nil {
			err = fmt.Errorf("the daemon did not serve within %v", detachReadyTimeout)
		}
		if tail := lastLine(logPath); tail != "" {
			return fmt.Errorf("%w; its log %s ends: %s", err, logPath, tail)
		}
		return err
	}
	// The daemon lives on alone; nothing here waits for it.
	cmd.Process.Release()
	fmt.Fprintf(e.stdout, "grove daemon running (pid %d), logging to %s\nstop it with: grove down --home %s\n", pid, logPath, home)
	return nil
}

// detachPassphrase checks, before a detached start, that the daemon will
// be able to unlock a passphrase-sealed store key: it has no terminal to
// ask on. With --passphrase-file (or GROVE_PASSPHRASE_FILE) the file is
// passed on and checked here, so that a wrong one fails now, in the
// user's terms; without it, the passphrase is asked on this terminal and
// returned, for the daemon to read from a pipe. Any other key needs
// nothing (nil).
func (e *env) detachPassphrase(home string, kc *keyChoice) ([]byte, error) {
	kf, err := store.ReadKeyFile(filepath.Join(home, StoreKeyFile))
	if err != nil || kf.Mode != store.KeyByPassphrase {
		return nil, nil // the daemon itself reports a missing or damaged key file
	}
	if file := kc.file(e); file != "" {
		key, err := e.unlock(home, kf, file, "passphrase")
		clear(key)
		return nil, err
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(in.Fd()) {
		return nil, errors.New("the database key of this home is sealed by a passphrase, and a detached daemon has no terminal to ask for it: give --passphrase-file FILE (or set GROVE_PASSPHRASE_FILE), or run up --detach in a terminal")
	}
	pass, err := e.readPassphrase("passphrase for "+home+": ", "", false)
	if err != nil {
		return nil, err
	}
	key, err := kf.Unseal(pass)
	clear(key)
	if errors.Is(err, store.ErrWrongPassphrase) {
		clear(pass)
		return nil, errors.New("wrong passphrase")
	}
	if err != nil {
		clear(pass)
		return nil, err
	}
	return pass, nil
}

// waitReady polls until the daemon answers a status call (true), the
// process exits, ctx ends or detachReadyTimeout passes. (The socket accepts
// connections before the daemon has finished starting.)
func waitReady(ctx context.Context, sock string, pid int) (bool, error) {
	deadline := time.Now().Add(detachReadyTimeout)
	for time.Now().Before(deadline) {
		if serves(ctx, sock, pid) {
			return true, nil
		}
		var ws syscall.WaitStatus
		if wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && wpid == pid {
			return false, fmt.Errorf("the daemon exited during start (exit status %d)", ws.ExitStatus())
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false, nil
}

// serves reports whether the daemon of process pid answers on sock.
func serves(ctx context.Context, sock string, pid int) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := api.Dial(ctx, sock)
	if err != nil {
		return false
	}
	defer c.Close()
	st, err := c.Status(ctx)
	return err == nil && st.PID == pid
}

// lastLine returns the last non-empty line of the file at path, or "".
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// DefaultDownTimeout is how long down waits for the daemon to exit.
const DefaultDownTimeout = 30 * time.Second

func (e *env) cmdDown(args []string) error {
	f := e.flags("down")
	timeout := f.Duration("timeout", DefaultDownTimeout, "")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("down: --timeout must be positive")
	}
	home, err := e.homeDir()
	if err != nil {
		return err
	}
	sock := e.socketPath(home)
	c, err := e.dial()
	if err != nil {
		if errors.As(err, new(*errNoDaemon)) {
			// Stopping what is stopped succeeds, as systemctl stop does.
			if *asJSON {
				return e.json(downResult{})
			}
			fmt.Fprintln(e.stdout, "no daemon running")
			return nil
		}
		return err
	}
	defer c.Close()
	st, err := c.Status(e.ctx)
	if err != nil {
		return err
	}
	// The daemon may close the connection before its answer arrives:
	// only a refusal counts; whether it stopped shows below.
	if err := c.Shutdown(e.ctx); err != nil && !isConnClosed(err) {
		return err
	}
	c.Close()
	deadline := time.Now().Add(*timeout)
	for !gone(sock, st.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon (pid %d) did not stop within %v", st.PID, *timeout)
		}
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if *asJSON {
		return e.json(downResult{Stopped: true, PID: st.PID})
	}
	if st.PID != 0 && st.PID != os.Getpid() {
		fmt.Fprintf(e.stdout, "stopped (pid %d)\n", st.PID)
	} else {
		fmt.Fprintln(e.stdout, "stopped")
	}
	return nil
}

// downResult is what down --json prints.
type downResult struct {
	Stopped bool `json:"stopped"` // false: no daemon was running
	PID     int  `json:"pid,omitempty"`
}

// isConnClosed reports the errors a client sees when the daemon closes the
// connection under a call.
func isConnClosed(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "connection closed") || strings.Contains(err.Error(), "EOF")
}

// gone reports whether the daemon has exited: its socket is removed and,
// when it runs in another process, that process is gone.
func gone(sock string, pid int) bool {
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	if pid == 0 || pid == os.Getpid() {
		return true
	}
	return processGone(pid)
}

// processGone reports whether pid no longer runs. A zombie (exited, not
// yet reaped by its parent) counts as gone.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name, which may itself
	// hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// servedDaemon is the daemon as up serves it: Shutdown asks up to stop,
// Status reports the process id, and WebLogin signs in to the web client.
type servedDaemon struct {
	Daemon
	webLinker
	stop     chan struct{}
	stopOnce sync.Once
}

var (
	_ api.Stopper   = (*servedDaemon)(nil)
	_ api.WebLinker = (*servedDaemon)(nil)
)

func newServedDaemon(d Daemon) *servedDaemon {
	return &servedDaemon{Daemon: d, stop: make(chan struct{})}
}

func (s *servedDaemon) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}

func (s *servedDaemon) Status(ctx context.Context) (api.Status, error) {
	st, err := s.Daemon.Status(ctx)
	st.PID = os.Getpid()
	return st, err
}
