package testnet

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/node"
	"grove/node/api"
	"grove/p2p"
)

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// nodeCmd is `grove testnet node`: one testnet node as a process, the
// other end of Processes. It runs a node like `grove up` does (a libp2p
// host, Pebble in --home, the local API on --home/grove.sock) with the
// testnet's timing, dials the --peer addresses, prints
// "ready PEER_ID MULTIADDR..." on stdout once the API serves, and applies
// partition control lines read from stdin. It stops when ctx ends (SIGTERM)
// or stdin closes, so a node never outlives the run that started it.
func nodeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testnet node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", "", "")
	name := fs.String("name", "", "")
	mdns := fs.String("mdns", "", "")
	var listen, peers stringsFlag
	fs.Var(&listen, "listen", "")
	fs.Var(&peers, "peer", "")
	t := FastTiming
	fs.DurationVar(&t.CommitDelta, "commit-delta", t.CommitDelta, "")
	fs.DurationVar(&t.FinalityAge, "finality-age", t.FinalityAge, "")
	fs.DurationVar(&t.FinalityGrace, "finality-grace", t.FinalityGrace, "")
	fs.DurationVar(&t.TipInterval, "tip-interval", t.TipInterval, "")
	fs.DurationVar(&t.PersistEvery, "persist-every", t.PersistEvery, "")
	fs.DurationVar(&t.Heartbeat, "heartbeat", t.Heartbeat, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: node: %v", ErrUsage, err)
	}
	if *home == "" || len(listen) == 0 || fs.NArg() > 0 {
		return fmt.Errorf("%w: node needs --home and --listen, and no arguments", ErrUsage)
	}
	var dial []peer.AddrInfo
	for _, a := range peers {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("%w: node: --peer %q: %v", ErrUsage, a, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return fmt.Errorf("%w: node: --peer %q: %v", ErrUsage, a, err)
		}
		dial = append(dial, *ai)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", *name)

	h, err := p2p.New(p2p.Config{
		IdentityFile:      filepath.Join(*home, "peer.key"),
		Listen:            listen,
		HeartbeatInterval: t.Heartbeat,
		PeerMessageRate:   1000, PeerMessageBurst: 5000,
		EnableMDNS: *mdns != "", MDNSServiceName: *mdns,
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("testnet: node host: %w", err)
	}
	defer h.Close()
	part := &partition{}
	n, err := node.New(nodeConfig(*home, *name, &faultNet{Network: h, part: part}, log, t))
	if err != nil {
		return fmt.Errorf("testnet: node: %w", err)
	}
	defer n.Close()
	if err := n.Start(ctx); err != nil {
		return fmt.Errorf("testnet: node start: %w", err)
	}
	lis, err := api.Listen(filepath.Join(*home, SocketName))
	if err != nil {
		return fmt.Errorf("testnet: node api: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		// The API server ends with ctx: cancel before waiting for it.
		cancel()
		wg.Wait()
	}()
	served := make(chan error, 1)
	wg.Go(func() { served <- api.Serve(ctx, lis, n, log) })

	for _, ai := range dial {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.Connect(dctx, ai); err != nil {
			log.Warn("connect failed", "peer", ai.ID, "err", err)
		}
		dcancel()
	}
	addrs, err := peer.AddrInfoToP2pAddrs(ptr(n.AddrInfo()))
	if err != nil {
		return fmt.Errorf("testnet: node addrs: %w", err)
	}
	line := readyPrefix + n.AddrInfo().ID.String()
	for _, a := range addrs {
		line += " " + a.String()
	}
	log.Info("ready", "addrs", addrs)
	if _, err := fmt.Fprintln(stdout, line); err != nil {
		return fmt.Errorf("testnet: node ready: %w", err)
	}

	// stdin is read in a goroutine that may stay blocked in Read after we
	// return; it ends with the process (stdin is the run's pipe).
	fl := &floorNode{h: h, out: stdout, log: log, ctx: ctx, subs: map[string]p2p.Subscription{}}
	defer fl.close()
	stdinDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "floor-") {
				if err := fl.control(line); err != nil {
					log.Warn("control", "err", err)
				}
				continue
			}
			m, err := decodePartition(line)
			if err != nil {
				log.Warn("control", "err", err)
				continue
			}
			part.set(m)
			log.Info("partition set", "peers", len(m))
		}
		stdinDone <- sc.Err()
	}()
	select {
	case <-ctx.Done():
		log.Info("stopping: signal")
	case err := <-stdinDone:
		log.Info("stopping: stdin closed", "err", err)
	case err := <-served:
		if err != nil {
			return fmt.Errorf("testnet: node api: %w", err)
		}
	}
	cancel()
	fl.close()
	wg.Wait()
	if err := n.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("testnet: node close: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// floorNode serves the floor measurement in a node process: control
// lines "floor-sub TOPIC", "floor-pub TOPIC SEQ" and "floor-unsub TOPIC"
// act on the host's GossipSub directly (no MLS, no store), and every floor
// message received from another peer is reported as "floor-lat NS".
type floorNode struct {
	h   *p2p.Host
	out io.Writer
	log *slog.Logger
	ctx context.Context

	mu     sync.Mutex // guards subs, closed, wg.Add and writes to out
	subs   map[string]p2p.Subscription
	closed bool
	wg     sync.WaitGroup
}

func (f *floorNode) control(line string) error {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return fmt.Errorf("%w: %.40q", ErrBadControl, line)
	}
	topic := fields[1]
	switch {
	case fields[0] == "floor-sub" && len(fields) == 2:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed {
			return fmt.Errorf("testnet: floor: node stopping")
		}
		s, err := f.h.Subscribe(p2p.GroupID(topic), func(context.Context, peer.ID, []byte) p2p.ValidationResult { return p2p.Accept })
		if err != nil {
			return fmt.Errorf("testnet: floor subscribe: %w", err)
		}
		f.subs[topic] = s
		self := f.h.ID()
		f.wg.Go(func() {
			for {
				msg, err := s.Next(f.ctx)
				if err != nil {
					return
				}
				sentAt, from, ok := parseFloor(msg.Data)
				if !ok || from == self {
					continue
				}
				lat := time.Since(sentAt)
				f.mu.Lock()
				fmt.Fprintf(f.out, "%s%d\n", floorLatPrefix, lat.Nanoseconds())
				f.mu.Unlock()
			}
		})
		return nil
	case fields[0] == "floor-pub" && len(fields) == 3:
		seq, err := strconv.Atoi(fields[2])
		if err != nil {
			return fmt.Errorf("%w: %.40q", ErrBadControl, line)
		}
		if err := f.h.Publish(f.ctx, p2p.GroupID(topic), floorMessage(f.h.ID(), seq)); err != nil {
			return fmt.Errorf("testnet: floor publish: %w", err)
		}
		return nil
	case fields[0] == "floor-unsub" && len(fields) == 2:
		f.mu.Lock()
		s := f.subs[topic]
		delete(f.subs, topic)
		f.mu.Unlock()
		if s != nil {
			return s.Close()
		}
		return nil
	}
	return fmt.Errorf("%w: %.40q", ErrBadControl, line)
}

// close ends every floor subscription and waits for their readers.
func (f *floorNode) close() {
	f.mu.Lock()
	f.closed = true
	for t, s := range f.subs {
		s.Close()
		delete(f.subs, t)
	}
	f.mu.Unlock()
	f.wg.Wait()
}
