package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"grove/cmd/grove/internal/web"
	"grove/node/api"
)

// guiFlagOff is the --gui value that turns the web client off.
const guiFlagOff = "off"

// listenGUI opens the web client's listener for up: addr as --gui gave it
// (explicit true) or the default. A taken default port is not worth
// refusing to start over: the daemon runs without its web client and says
// so. It returns a nil listener when the web client is off.
func (e *env) listenGUI(addr string, explicit bool, log *slog.Logger) (net.Listener, error) {
	if addr == guiFlagOff {
		return nil, nil
	}
	lis, err := web.Listen(addr)
	if err == nil {
		return lis, nil
	}
	if explicit {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("up: --gui %s: the port is in use (choose another, or --gui off)", addr)
		}
		return nil, fmt.Errorf("up: --gui: %w", err)
	}
	log.Warn("web client off: its default address is in use (another daemon?); choose one with --gui 127.0.0.1:PORT", "addr", addr, "err", err)
	return nil, nil
}

// checkGUIFlag validates --gui before anything starts.
func checkGUIFlag(addr string) error {
	if addr == guiFlagOff {
		return nil
	}
	if err := web.CheckAddr(addr); err != nil {
		return usagef("up: --gui: %v", err)
	}
	return nil
}

// serveGUI runs the web client on lis for sd until ctx ends; wg owns it.
func serveGUI(ctx context.Context, wg *sync.WaitGroup, sd *servedDaemon, lis net.Listener, log *slog.Logger) {
	if lis == nil {
		return
	}
	srv := web.New(sd, lis, log)
	sd.setWeb(srv)
	log.Info("web client (sign in with grove gui)", "url", srv.URL())
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			log.Warn("web client stopped", "err", err)
		}
	})
}

// webLinker is the part of servedDaemon that answers grove gui.
type webLinker struct {
	mu  sync.Mutex
	srv *web.Server // guarded by mu; nil while the web client is off
}

func (w *webLinker) setWeb(s *web.Server) {
	w.mu.Lock()
	w.srv = s
	w.mu.Unlock()
}

// WebLogin implements api.WebLinker.
func (w *webLinker) WebLogin(ctx context.Context) (api.WebLogin, error) {
	w.mu.Lock()
	s := w.srv
	w.mu.Unlock()
	if s == nil {
		return api.WebLogin{}, api.Errorf(api.CodeUnavailable, "the web client is off (start the daemon with --gui 127.0.0.1:PORT)")
	}
	url, exp, err := s.Login()
	if err != nil {
		return api.WebLogin{}, api.Errorf(api.CodeInternal, "%v", err)
	}
	return api.WebLogin{URL: url, Expires: exp}, nil
}

// cmdGUI prints a one-time sign-in link to the web client and opens it in
// the browser when there is a display.
func (e *env) cmdGUI(args []string) error {
	f := e.flags("gui")
	noOpen := f.Bool("no-open", false, "")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		l, err := c.WebLogin(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(l)
		}
		fmt.Fprintln(e.stdout, l.URL)
		fmt.Fprintf(e.stdout, "a one-time sign-in link for a browser on this machine; it stops working at %s or once used\n", e.time(l.Expires))
		if *noOpen {
			return nil
		}
		if err := e.openBrowser(l.URL); err != nil {
			fmt.Fprintf(e.stdout, "open it in your browser (%v)\n", err)
		}
		return nil
	})
}

// openBrowser hands url to the desktop's opener; on a machine without a
// display it says so instead.
func (e *env) openBrowser(url string) error {
	if e.r.testingOnlyOpenURL != nil {
		return e.r.testingOnlyOpenURL(url)
	}
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		if e.r.getenv("DISPLAY") == "" && e.r.getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no display found")
		}
		name = "xdg-open"
	}
	cmd := exec.Command(name, append(args, url)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// grove gui exits right away; the opener (which may stay up as the
	// browser) is the OS's to reap then.
	return cmd.Process.Release()
}
