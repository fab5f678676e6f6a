package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// ErrUsage marks a mistake on the command line (the CLI exits 2).
var ErrUsage = errors.New("testnet: usage")

// ErrRunFailed is returned when a scenario lost messages or did not
// converge (the CLI exits 1), after the report was printed.
var ErrRunFailed = errors.New("testnet: run failed")

const usage = `usage:
  grove testnet run --nodes N --scenario NAME [--seed S] [--messages M] [--epochs E] [--json] [--dir DIR]
                  [--processes] [--netns [--delay DURATION] [--loss PERCENT]]
                  [--duration D] [--faults K,...] [--new-port] [--converge-timeout D] [--max-hold D]
                  [--floor] [--gap DURATION] [--join-parallel K] [--log FILE] [--settle-timeout DURATION] [-v]
  grove testnet demo
  grove testnet node --home DIR --listen MULTIADDR ...   (internal: one node of a --processes run)

scenarios: chat, concurrent, partition, offline, churn, scale, crash (needs --processes),
chaos (needs --netns: real grove up daemons under seeded faults; --duration D,
--faults KIND,... of link_down,partition,loss,throttle,delay,kill, --new-port,
--converge-timeout D, --max-hold D: the longest a fault lasts, default 10s).
Nodes listen on 127.0.0.1 only and are wired to each other directly; their homes live
in a temporary directory unless --dir is given. --processes runs each node as its own
process ("grove testnet node", a grove up with testnet timing) driven through its local
API socket; its log is node.log in its home. --netns (root; implies --processes) puts
each node in its own network namespace on a virtual LAN the run creates and deletes,
where the nodes find each other by mDNS only; --delay and --loss add tc netem to
every node's link.
--floor (chat, scale) also sends the same traffic as raw payloads over the same
hosts' GossipSub (in the node processes with --processes), for comparison; with
offline it replays the ciphertexts the returning node fetched on a copy of its
store, decrypting and storing them locally, the floor of its resync time.
Exit status 1 when a message was lost or the nodes did not converge.
`

// Run is `grove testnet ARGS...`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return fmt.Errorf("%w: want run or demo", ErrUsage)
		}
		return nil
	}
	switch args[0] {
	case "demo":
		if len(args) > 1 {
			return fmt.Errorf("%w: demo takes no arguments", ErrUsage)
		}
		return Demo(ctx, stdout)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "node":
		// Internal: one node process of a --processes run. Its stdin is
		// the run's control pipe.
		return nodeCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	return fmt.Errorf("%w: unknown testnet command %q (want run or demo)", ErrUsage, args[0])
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testnet run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o Options
	fs.IntVar(&o.Nodes, "nodes", 5, "")
	fs.StringVar(&o.Scenario, "scenario", "chat", "")
	fs.Uint64Var(&o.Seed, "seed", 0, "")
	fs.IntVar(&o.Messages, "messages", 0, "")
	fs.IntVar(&o.Epochs, "epochs", 0, "")
	fs.StringVar(&o.Dir, "dir", "", "")
	asJSON := fs.Bool("json", false, "")
	processes := fs.Bool("processes", false, "")
	netns := fs.Bool("netns", false, "")
	delay := fs.Duration("delay", 0, "")
	loss := fs.Float64("loss", 0, "")
	verbose := fs.Bool("v", false, "")
	fs.BoolVar(&o.Floor, "floor", false, "")
	logFile := fs.String("log", "", "")
	fs.IntVar(&o.JoinParallel, "join-parallel", 0, "")
	fs.DurationVar(&o.Gap, "gap", 0, "")
	timeout := fs.Duration("settle-timeout", 60*time.Second, "")
	var co ChaosOptions
	fs.DurationVar(&co.Duration, "duration", 2*time.Minute, "")
	fs.BoolVar(&co.NewPort, "new-port", false, "")
	fs.DurationVar(&co.MaxHold, "max-hold", 10*time.Second, "")
	faults := fs.String("faults", "", "")
	fs.DurationVar(&co.ConvergeTimeout, "converge-timeout", 3*time.Minute, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, strings.Join(fs.Args(), " "))
	}
	if o.Scenario == "chaos" {
		if !*netns {
			return fmt.Errorf("%w: the chaos scenario needs --netns", ErrUsage)
		}
		if *faults != "" {
			co.Faults = strings.Split(*faults, ",")
		}
		co.Nodes, co.Seed, co.Dir = o.Nodes, o.Seed, o.Dir
		if *verbose {
			// On stderr, so that it goes with --json too.
			co.Narrate = stderr
		}
		return chaosCmd(ctx, co, *asJSON, stdout)
	}
	if *netns {
		*processes = true
	} else if *delay != 0 || *loss != 0 {
		return fmt.Errorf("%w: --delay and --loss need --netns", ErrUsage)
	}
	if *delay < 0 || *loss < 0 || *loss > 100 {
		return fmt.Errorf("%w: --delay must be >= 0 and --loss a percentage", ErrUsage)
	}
	if *processes {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("testnet: --processes: own executable: %w", err)
		}
		o.Processes = &Processes{Command: []string{exe, "testnet"}}
		if *netns {
			o.Processes.Netns = &Netns{Delay: *delay, Loss: *loss}
		}
	}
	if o.Nodes < 2 || o.Nodes > 500 {
		return fmt.Errorf("%w: --nodes must be 2..500", ErrUsage)
	}
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return fmt.Errorf("testnet: --log: %w", err)
		}
		defer f.Close()
		o.Logger = slog.New(quietGossip{Handler: slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})})
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	o.SettleTimeout = *timeout
	if *verbose && !*asJSON {
		o.Narrate = stderr
	}
	rep, err := RunScenario(ctx, o)
	if err != nil {
		if errors.Is(err, ErrUnknownScenario) {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("testnet: write report: %w", err)
		}
	} else {
		rep.WriteSummary(stdout)
	}
	if rep.Failed() {
		return fmt.Errorf("%w: %d of %d deliveries lost, converged %v", ErrRunFailed, rep.Lost, rep.Expected, rep.Converged)
	}
	return nil
}

// quietGossip passes node debug records but keeps GossipSub's own logger at
// info: at debug it writes a line per RPC, over a gigabyte for a 12-node
// partition run, which slowed the run enough to change what it measured.
type quietGossip struct {
	slog.Handler
	gossip bool // this handler carries component=gossipsub
}

func (h quietGossip) Enabled(ctx context.Context, l slog.Level) bool {
	if h.gossip && l < slog.LevelInfo {
		return false
	}
	return h.Handler.Enabled(ctx, l)
}

func (h quietGossip) WithAttrs(as []slog.Attr) slog.Handler {
	gossip := h.gossip
	for _, a := range as {
		if a.Key == "component" && a.Value.String() == "gossipsub" {
			gossip = true
		}
	}
	return quietGossip{Handler: h.Handler.WithAttrs(as), gossip: gossip}
}

func (h quietGossip) WithGroup(name string) slog.Handler {
	return quietGossip{Handler: h.Handler.WithGroup(name), gossip: h.gossip}
}
