package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"grove/node/api"
)

// DefaultAddr is where grove up serves the web client unless told
// otherwise: a fixed port, so that a bookmark keeps working, on loopback
// only. 7768 spells GROV on a phone keypad.
const DefaultAddr = "127.0.0.1:7768"

//go:embed assets
var assetFS embed.FS

// contentSecurityPolicy allows scripts, styles, images and fetches from
// this origin only, and nothing inline: an injected <script> or style
// attribute is inert even if some text ever reached the page as markup.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Server serves the web client for one device. Create it with New, run it
// with Serve; Login may be called concurrently at any time.
type Server struct {
	svc  api.Service
	lis  net.Listener
	log  *slog.Logger
	host string // what the Host header must say: the listener's address
	now  func() time.Time

	auth *auth
	mux  *http.ServeMux
}

// CheckAddr accepts host:port only for loopback IP addresses: the web
// client is for a person at this machine, never the network. "localhost"
// is refused too, because the session cookie is bound to the address the
// browser was sent to and a name could resolve elsewhere.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want 127.0.0.1:PORT: %v", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address (use 127.0.0.1:PORT)", addr)
	}
	return nil
}

// Listen opens the web client's listener on addr, a loopback address.
func Listen(addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return lis, nil
}

// New creates a server for svc on lis, which it owns from now on.
func New(svc api.Service, lis net.Listener, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, lis: lis, log: log, host: lis.Addr().String(), now: time.Now}
	s.auth = newAuth(s.host, func() time.Time { return s.now() })
	s.mux = http.NewServeMux()
	s.routes()
	return s
}

// URL is the web client's address, e.g. http://127.0.0.1:7768/.
func (s *Server) URL() string { return "http://" + s.host + "/" }

// Login returns a one-time link that signs a browser in, and when it
// stops working if unused.
func (s *Server) Login() (string, time.Time, error) {
	tok, exp, err := s.auth.newLoginToken()
	if err != nil {
		return "", time.Time{}, err
	}
	return s.URL() + "#login=" + tok, exp, nil
}

// Handler is the server's HTTP handler with every check in place (for
// tests that drive it without a listener).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve answers requests until ctx ends, then stops every request in
// flight (event streams included) and returns nil; it closes the listener.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Request contexts end with ctx, so event streams and a join
		// in progress stop when the daemon does.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	})
	err := srv.Serve(s.lis)
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	cancel()
	return fmt.Errorf("web: %w", err)
}

// serveHTTP applies the checks every response needs, then routes.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	// DNS rebinding: a page on evil.example that resolves to 127.0.0.1
	// reaches this port with its own name in Host. Only our address is
	// ours.
	if r.Host != s.host {
		http.Error(w, "wrong host: open "+s.URL(), http.StatusMisdirectedRequest)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// routes registers the static client and the JSON API (api.go).
func (s *Server) routes() {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	s.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// The files hold no secret; no-cache makes an upgraded daemon's
		// client load at once.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	s.apiRoutes()
}

// AssetSize is the total size in bytes of the embedded client files.
func AssetSize() (int64, error) {
	var n int64
	err := fs.WalkDir(assetFS, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}
