package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"grove/cmd/grove/internal/web"
	"grove/node/api"
)

// errNoDaemonSupport is returned by init and up when the Runner has no
// DaemonFactory.
var errNoDaemonSupport = errors.New("this build of grove cannot run a daemon")

func (e *env) cmdInit(args []string) error {
	f := e.flags("init")
	name := f.String("name", "", "")
	device := f.String("device", "", "")
	link := f.String("link", "", "")
	kc := e.keyFlags(f, true)
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" && *link == "" {
		return usagef("init: --name is required")
	}
	if kc.keyFile && (kc.passphrase || kc.passphraseFile != "") {
		return usagef("init: --key-file and a passphrase exclude each other")
	}
	if e.r.NewDaemon == nil {
		return errNoDaemonSupport
	}
	home, err := e.homeDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := restrictHome(home, e.stderr); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if live(e.socketPath(home)) {
		return fmt.Errorf("init: a daemon is running in %s; stop it first", home)
	}
	key, created, err := e.openStore(home, kc)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// Starting the device once creates its keys and stores its name; it
	// listens on loopback only, for a moment.
	d, err := e.r.NewDaemon(DaemonConfig{Home: home, Name: *name, Logger: e.logger(slog.LevelWarn), StoreKey: key, DeviceName: *device, Link: *link, LinkProgress: e.linkProgress()})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := d.Start(e.ctx); err != nil {
		d.Close()
		return fmt.Errorf("init: %w", err)
	}
	st, err := d.Status(e.ctx)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.stdout, "initialised %s in %s\n", sanitize(st.Name), home)
	e.printLinked(d)
	t := &table{}
	t.row("peer id", st.PeerID)
	t.row("fingerprint", st.Fingerprint)
	if created != nil {
		t.row("database", describeKey(home, created))
	}
	t.write(e.stdout)
	fmt.Fprintf(e.stdout, "start the daemon with: grove up --home %s\n", home)
	return nil
}

// live reports whether a daemon answers on the socket at path.
func live(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (e *env) logger(level slog.Level) *slog.Logger {
	return slog.New(newDedupHandler(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})))
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (e *env) cmdUp(args []string) error {
	f := e.flags("up")
	var listen, bootstrap multiFlag
	f.Var(&listen, "listen", "")
	f.Var(&bootstrap, "bootstrap", "")
	mdns := f.Bool("mdns", false, "")
	metricsAddr := f.String("metrics", "", "")
	kc := e.keyFlags(f, false)
	detach := f.Bool("detach", false, "")
	guiDefault := web.DefaultAddr
	if e.r.testingOnlyDefaultGUI != "" {
		guiDefault = e.r.testingOnlyDefaultGUI
	}
	guiAddr := f.String("gui", guiDefault, "")
	notify := f.Bool("notify", true, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	guiExplicit := false
	f.Visit(func(fl *flag.Flag) { guiExplicit = guiExplicit || fl.Name == "gui" })
	if err := checkGUIFlag(*guiAddr); err != nil {
		return err
	}
	for _, a := range listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return usagef("up: bad --listen %q: %v", a, err)
		}
	}
	for _, a := range bootstrap {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return usagef("up: bad --bootstrap %q: %v", a, err)
		}
		if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
			return usagef("up: --bootstrap %q has no /p2p/PEER_ID", a)
		}
	}
	if *metricsAddr != "" {
		if err := checkLoopback(*metricsAddr); err != nil {
			return usagef("up: --metrics: %v", err)
		}
	}
	level := slog.LevelInfo
	if v := e.r.getenv("GROVE_LOG"); v != "" {
		// GROVE_LOG=debug|info|warn|error sets the daemon's log level.
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return usagef("up: GROVE_LOG=%q: want debug, info, warn or error", v)
		}
	}
	if e.r.NewDaemon == nil {
		return errNoDaemonSupport
	}
	home, err := e.homeDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(home); errors.Is(err, os.ErrNotExist) {
		return errNoHome(home)
	}
	if err := restrictHome(home, e.stderr); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if *detach {
		return e.detach(home, args, kc)
	}
	sock := e.socketPath(home)
	lis, err := api.Listen(sock)
	if err != nil {
		if errors.Is(err, api.ErrSocketInUse) {
			return fmt.Errorf("a daemon is already running in %s", home)
		}
		return fmt.Errorf("up: %w", err)
	}
	log := e.logger(level)
	// The web client's port is claimed before the store opens (which may
	// ask for a passphrase), so that a taken port fails at once.
	guiLis, err := e.listenGUI(*guiAddr, guiExplicit, log)
	if err != nil {
		lis.Close()
		return err
	}
	closeGUI := func() {
		if guiLis != nil {
			guiLis.Close()
		}
	}
	key, created, err := e.openStore(home, kc)
	if err != nil {
		lis.Close()
		closeGUI()
		return fmt.Errorf("up: %w", err)
	}
	if created != nil {
		log.Info("new store key for a home from before encryption at rest", "database", describeKey(home, created))
	}
	// Without --listen, the ports chosen the first time are kept across
	// restarts (ListenFile); --listen is used as given and not remembered.
	remember := len(listen) == 0
	if remember {
		defaults := DefaultListen
		if e.r.testingOnlyDefaultListen != nil {
			defaults = e.r.testingOnlyDefaultListen
		}
		listen = rememberedListen(home, defaults, log)
	}
	d, err := e.r.NewDaemon(DaemonConfig{Home: home, Listen: listen, Bootstrap: bootstrap, MDNS: *mdns, Logger: log, StoreKey: key})
	if err != nil {
		lis.Close()
		closeGUI()
		return fmt.Errorf("up: %w", err)
	}
	if err := d.Start(e.ctx); err != nil {
		lis.Close()
		closeGUI()
		d.Close()
		return fmt.Errorf("up: %w", err)
	}
	if remember {
		st, err := d.Status(e.ctx)
		if err == nil {
			err = rememberListen(home, listen, st.Addrs)
		}
		if err != nil {
			log.Warn("listen addresses not remembered; the next start may use other ports", "err", err)
		}
	}
	var nt Notifier
	if *notify && !notifyOff(e.r.getenv("GROVE_NOTIFY")) {
		if nt = e.systemNotifier(); nt == nil {
			log.Info("desktop notifications off: " + errNoNotifier.Error())
		}
	}
	return e.serveDaemon(d, lis, sock, *metricsAddr, guiLis, log, nt)
}

// serveDaemon serves the local API (and metrics) until the context ends,
// then stops everything in order: first the API, so that no call reaches a
// closing daemon, then the daemon.
func (e *env) serveDaemon(d Daemon, lis net.Listener, sock, metricsAddr string, guiLis net.Listener, log *slog.Logger, nt Notifier) (err error) {
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		if c, ok := nt.(io.Closer); ok {
			c.Close()
		}
		if cerr := d.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("up: closing: %w", cerr)
		}
	}()

	var metricsURL string
	if metricsAddr != "" {
		mlis, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			lis.Close()
			if guiLis != nil {
				guiLis.Close()
			}
			return fmt.Errorf("up: metrics: %w", err)
		}
		metricsURL = "http://" + mlis.Addr().String() + "/metrics"
		srv := &http.Server{Handler: metricsHandler(d), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { srv.Serve(mlis) })
		wg.Go(func() {
			<-ctx.Done()
			srv.Close()
		})
	}

	if nt != nil {
		wg.Go(func() { notifyLoop(ctx, d, nt, log, e.r.now) })
	}

	served := make(chan error, 1)
	sd := newServedDaemon(d)
	wg.Go(func() { served <- api.Serve(ctx, lis, sd, log) })
	serveGUI(ctx, &wg, sd, guiLis, log)

	st, err := d.Status(ctx)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	attrs := []any{"name", st.Name, "peer", st.PeerID, "api", sock}
	if metricsURL != "" {
		attrs = append(attrs, "metrics", metricsURL)
	}
	log.Info("grove up", attrs...)
	for _, a := range st.Addrs {
		log.Info("listening", "addr", a)
	}
	if e.r.Ready != nil {
		e.r.Ready(sock)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case <-sd.stop:
		log.Info("shutting down (grove down)")
		return nil
	case err := <-served:
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
		return nil
	}
}

// checkLoopback accepts host:port only for loopback hosts: metrics are for
// the operator of this machine, not the network.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT on a loopback address: %v", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address (use 127.0.0.1 or [::1])", addr)
	}
	return nil
}

// metricsHandler serves the daemon's counters in the Prometheus text
// exposition format. It exposes counts only.
func metricsHandler(d Daemon) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, d.Metrics())
	})
	return mux
}

func writeMetrics(w io.Writer, ms []Metric) {
	for _, m := range ms {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", m.Name, m.Help, m.Name, m.Type, m.Name,
			strconv.FormatFloat(m.Value, 'g', -1, 64))
	}
}
