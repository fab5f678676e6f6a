package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"grove/node/api"
)

// chaosDaemon is one real `grove up` process of a chaos run, in its own
// network namespace and GROVE_HOME, driven only through its local API
// socket. It is restarted in place after a SIGKILL.
type chaosDaemon struct {
	name  string
	home  string
	host  labHost
	grove []string // argv of the grove command
	env   []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	client  *api.Client
	exited  chan struct{} // closed once the current process's Wait returned
	waitErr error         // valid after exited
	killed  bool          // the current process was ended on purpose
	port    int
	starts  int
	crashes []string // unexpected exits, with the end of the log
}

// daemonLog is a daemon's stderr in its home.
const daemonLog = "daemon.log"

// groveEnv is the environment of a grove command run for d.
func (d *chaosDaemon) groveEnv() []string {
	env := append(os.Environ(), d.env...)
	env = append(env, "GROVE_HOME="+d.home)
	if os.Getenv("GROVE_LOG") == "" {
		// Info unless the run's caller asked for more (GROVE_LOG=debug
		// to see redials and syncs when a run is slow to converge).
		env = append(env, "GROVE_LOG=info")
	}
	return env
}

// nsCommand runs the grove command with args inside d's namespace.
func (d *chaosDaemon) nsCommand(ctx context.Context, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", d.host.ns}, d.grove...)
	cmd := exec.CommandContext(ctx, "ip", append(argv, args...)...)
	cmd.Env = d.groveEnv()
	// If the run dies without stopping its daemons, they die too (ip
	// netns exec execs the command, so the grove process gets it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// initHome runs `grove init --name NAME` for d.
func (d *chaosDaemon) initHome(ctx context.Context) error {
	if err := os.MkdirAll(d.home, 0o700); err != nil {
		return fmt.Errorf("testnet: chaos: %s home: %w", d.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	out, err := d.nsCommand(ctx, "init", "--name", d.name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testnet: chaos: grove init %s: %v: %s", d.name, err, bytes.TrimSpace(out))
	}
	return nil
}

// start runs `grove up` listening on the host's address and port, with
// mDNS, and dials its API socket once it serves.
func (d *chaosDaemon) start(ctx context.Context, port int) error {
	logf, err := os.OpenFile(filepath.Join(d.home, daemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("testnet: chaos: %s log: %w", d.name, err)
	}
	// The process outlives ctx: it is ended by kill or stop only.
	cmd := d.nsCommand(context.WithoutCancel(ctx), "up", "--mdns",
		"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", d.host.ip, port))
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("testnet: chaos: start %s: %w", d.name, err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited, d.killed, d.port, d.client = cmd, exited, false, port, nil
	d.starts++
	d.mu.Unlock()
	go func() {
		// Owned by the process: ends when it exits.
		err := cmd.Wait()
		logf.Close()
		d.mu.Lock()
		d.waitErr = err
		if !d.killed {
			d.crashes = append(d.crashes, fmt.Sprintf("%v; log: %s", err, d.logTail(600)))
		}
		d.mu.Unlock()
		close(exited)
	}()
	sock := filepath.Join(d.home, SocketName)
	deadline := time.Now().Add(startTimeout)
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := api.Dial(dctx, sock)
		if err == nil {
			_, err = c.Status(dctx)
			if err != nil {
				c.Close()
			}
		}
		cancel()
		if err == nil {
			d.mu.Lock()
			d.client = c
			d.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w: %s exited before its API served; see %s", ErrNodeProcess, d.name, filepath.Join(d.home, daemonLog))
		case <-ctx.Done():
			d.kill()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("%w: %s: API not serving after %v", ErrNodeProcess, d.name, startTimeout)
		}
	}
}

// api returns the client of the running daemon, or nil while it is down.
func (d *chaosDaemon) api() *api.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	return d.client
}

// up reports whether the daemon process is running.
func (d *chaosDaemon) up() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// kill ends the daemon with SIGKILL (a crash the run caused) and waits.
func (d *chaosDaemon) kill() {
	d.end(syscall.SIGKILL)
}

// stop ends the daemon with SIGTERM, SIGKILL if it hangs.
func (d *chaosDaemon) stop() {
	d.end(syscall.SIGTERM)
}

func (d *chaosDaemon) end(sig syscall.Signal) {
	d.mu.Lock()
	cmd, exited, c := d.cmd, d.exited, d.client
	d.killed = true
	d.client = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	if c != nil {
		c.Close()
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		cmd.Process.Kill()
		<-exited
	}
}

// crashList returns the daemon's unexpected exits so far.
func (d *chaosDaemon) crashList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.crashes...)
}

// logTail returns the last n bytes of the daemon's log, on one line.
func (d *chaosDaemon) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(d.home, daemonLog))
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// errDaemonDown is returned by operations on a daemon that is not running.
var errDaemonDown = errors.New("testnet: chaos: daemon down")
