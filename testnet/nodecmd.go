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
	if err == nil {
		err = n.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("testnet: node start: %w", err)
	}
	defer n.Close()
	lis, err := api.Listen(filepath.Join(*home, SocketName))
	if err != nil {
		return fmt.Errorf("testnet: node api: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
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
	stdinDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			m, err := decodePartition(sc.Text())
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
	wg.Wait()
	if err := n.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("testnet: node close: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
