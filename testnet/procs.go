package testnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/node/api"
)

// Processes runs every node of a cluster as its own process: the command
// `grove testnet node` (see nodeCmd), which is `grove up` with the
// testnet's timing, a loopback or namespace address, explicit peers to
// dial and control lines on stdin (injected partitions, the GossipSub
// floor measurement). The cluster
// drives each process through its local API socket with an api.Client,
// exactly as the grove CLI drives a daemon.
//
// `grove up` itself is not used because it has no way to shorten the
// protocol timers (finality of minutes, tips every 5 s would make a run
// take minutes) nor to inject a partition.
type Processes struct {
	// Command is the argv that runs `grove testnet` in a child; "node" and
	// its flags are appended. The CLI uses its own executable; tests
	// re-execute the test binary (see TestMain).
	Command []string
	// Env is added to the child's environment.
	Env []string
	// Netns, if set, puts every node in its own network namespace.
	Netns *Netns
}

// SocketName is a node process's local API socket in its home directory,
// the name `grove up` uses, so that `grove --home HOME ...` talks to it.
const SocketName = "grove.sock"

// readyPrefix starts the line a node process prints once its API serves:
// "ready PEER_ID MULTIADDR...".
const readyPrefix = "ready "

// startTimeout bounds a node process's start (exec, store open, host up).
const startTimeout = 30 * time.Second

// ErrNodeProcess is returned when a node process fails to start or dies.
var ErrNodeProcess = errors.New("testnet: node process")

// nodeProc is one running node process.
type nodeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	client *api.Client
	id     peer.ID
	addrs  []string
	logf   *os.File
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, valid after exited

	ctlMu sync.Mutex

	floorMu  sync.Mutex
	floorLat []time.Duration // reported by the process's floor subscription
}

// floorLatencies returns the floor latencies the process reported so far.
func (p *nodeProc) floorLatencies() []time.Duration {
	p.floorMu.Lock()
	defer p.floorMu.Unlock()
	return append([]time.Duration(nil), p.floorLat...)
}

// floorLatPrefix starts a node process's line reporting one floor
// message's latency in nanoseconds: "floor-lat NS".
const floorLatPrefix = "floor-lat "

func (c *Cluster) startProcess(ctx context.Context, p *Peer) error {
	pc := c.cfg.Processes
	t := c.cfg.Timing
	args := []string{"node", "--home", p.Home, "--name", p.Name,
		"--commit-delta", t.CommitDelta.String(), "--finality-age", t.FinalityAge.String(),
		"--finality-grace", t.FinalityGrace.String(), "--tip-interval", t.TipInterval.String(),
		"--persist-every", t.PersistEvery.String(), "--heartbeat", t.Heartbeat.String()}
	argv := append([]string(nil), pc.Command...)
	if c.lab != nil {
		host, err := c.lab.host(p.Name)
		if err != nil {
			return err
		}
		// mDNS only: no peer is given an address to dial.
		args = append(args, "--listen", "/ip4/"+host.ip+"/tcp/0", "--mdns", c.lab.service)
		argv = append([]string{"ip", "netns", "exec", host.ns}, argv...)
	} else {
		args = append(args, "--listen", "/ip4/127.0.0.1/tcp/0")
		for _, q := range c.dialTargets(p) {
			q.mu.Lock()
			addrs := q.addrs
			q.mu.Unlock()
			for _, a := range addrs {
				args = append(args, "--peer", a)
			}
		}
	}
	proc, err := launch(ctx, argv, args, pc.Env, p.Home)
	if err != nil {
		return fmt.Errorf("testnet: start %s: %w", p.Name, err)
	}
	if line := c.part.encode(); line != "heal" {
		if err := proc.control(line); err != nil {
			proc.kill()
			return fmt.Errorf("testnet: start %s: %w", p.Name, err)
		}
	}
	if err := c.subscribe(p, proc.client); err != nil {
		proc.kill()
		return err
	}
	p.mu.Lock()
	p.ID, p.dev, p.proc, p.addrs = proc.id, proc.client, proc, proc.addrs
	p.starts++
	p.mu.Unlock()
	return nil
}

// launch starts argv+args, waits for its ready line and dials its API
// socket. The child's diagnostics go to node.log in its home.
func launch(ctx context.Context, argv, args, env []string, home string) (*nodeProc, error) {
	logf, err := os.OpenFile(filepath.Join(home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: log: %v", ErrNodeProcess, err)
	}
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	// If this process dies without stopping its nodes, they die too.
	// (Linux sends it when the forking thread exits; Go keeps its threads
	// unless a goroutine locked to one exits, which nothing here does.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err == nil {
		var stdout io.ReadCloser
		stdout, err = cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err == nil {
			return awaitReady(ctx, cmd, stdin, stdout, logf, home)
		}
	}
	logf.Close()
	return nil, fmt.Errorf("%w: %v", ErrNodeProcess, err)
}

func awaitReady(ctx context.Context, cmd *exec.Cmd, stdin io.WriteCloser, stdout io.Reader, logf *os.File, home string) (*nodeProc, error) {
	p := &nodeProc{cmd: cmd, stdin: stdin, logf: logf, exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		// Owned by the process: ends at its stdout's EOF, i.e. its exit.
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case !sent && strings.HasPrefix(line, readyPrefix):
				ready <- line
				sent = true
			case strings.HasPrefix(line, floorLatPrefix):
				ns, err := strconv.ParseInt(strings.TrimPrefix(line, floorLatPrefix), 10, 64)
				if err == nil && ns >= 0 {
					p.floorMu.Lock()
					p.floorLat = append(p.floorLat, time.Duration(ns))
					p.floorMu.Unlock()
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	var line string
	select {
	case line = <-ready:
	case <-p.exited:
		return nil, fmt.Errorf("%w: exited before it was ready (%v); see %s", ErrNodeProcess, p.err, filepath.Join(home, "node.log"))
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-time.After(startTimeout):
		p.kill()
		return nil, fmt.Errorf("%w: not ready after %v; see %s", ErrNodeProcess, startTimeout, filepath.Join(home, "node.log"))
	}
	id, addrs, err := parseReady(line)
	if err != nil {
		p.kill()
		return nil, err
	}
	p.id, p.addrs = id, addrs
	dctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	p.client, err = api.Dial(dctx, filepath.Join(home, SocketName))
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%w: %v", ErrNodeProcess, err)
	}
	return p, nil
}

// parseReady parses a node process's "ready PEER_ID MULTIADDR..." line;
// every address must be a /p2p multiaddr of that peer.
func parseReady(line string) (peer.ID, []string, error) {
	rest, ok := strings.CutPrefix(line, readyPrefix)
	f := strings.Fields(rest)
	if !ok || len(f) == 0 {
		return "", nil, fmt.Errorf("%w: bad ready line %.80q", ErrNodeProcess, line)
	}
	id, err := peer.Decode(f[0])
	if err != nil {
		return "", nil, fmt.Errorf("%w: bad ready line: peer: %v", ErrNodeProcess, err)
	}
	for _, a := range f[1:] {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return "", nil, fmt.Errorf("%w: bad ready line: address: %v", ErrNodeProcess, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil || ai.ID != id {
			return "", nil, fmt.Errorf("%w: bad ready line: %.80q is not an address of %s", ErrNodeProcess, a, id)
		}
	}
	return id, f[1:], nil
}

// control sends one control line (a partition) to the process.
func (p *nodeProc) control(line string) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%w: control: %v", ErrNodeProcess, err)
	}
	return nil
}

// stopGrace is how long a node process may take to shut down cleanly
// before it is killed.
const stopGrace = 20 * time.Second

// stop shuts the process down cleanly: stdin closes (the node's signal to
// stop) and SIGTERM follows; SIGKILL only if it hangs.
func (p *nodeProc) stop() error {
	p.ctlMu.Lock()
	p.stdin.Close()
	p.ctlMu.Unlock()
	p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.exited:
		err = p.err
	case <-time.After(stopGrace):
		p.cmd.Process.Kill()
		<-p.exited
		err = fmt.Errorf("%w: did not stop within %v, killed", ErrNodeProcess, stopGrace)
	}
	if p.client != nil {
		p.client.Close()
	}
	if err != nil {
		return fmt.Errorf("testnet: stop: %w", err)
	}
	return nil
}

// kill ends the process with SIGKILL and waits for it.
func (p *nodeProc) kill() error {
	p.cmd.Process.Kill()
	<-p.exited
	p.ctlMu.Lock()
	p.stdin.Close()
	p.ctlMu.Unlock()
	if p.client != nil {
		p.client.Close()
	}
	return nil
}

// peakRSSMB is the process's peak resident set so far (0 once it exited).
func (p *nodeProc) peakRSSMB() float64 {
	return statusPeakMB(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
}
