package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/term"

	"grove/node/api"
)

// Run runs the chat UI on a terminal (in and out) until the user quits or
// ctx ends. The terminal is restored on every exit, including a panic in
// the UI (bubbletea recovers it, restores the terminal and Run returns an
// error). opts.NoColor also strips colours at
// the output (bubbletea itself honours NO_COLOR in the environment).
func Run(parent context.Context, svc api.Service, opts Options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	events, err := svc.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("chat: subscribing to events: %w", err)
	}
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out)}
	if f, ok := out.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		// No terminal to ask for its size (tests, recordings): assume the
		// classic 80x24.
		popts = append(popts, tea.WithWindowSize(80, 24))
	}
	if opts.NoColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.Ascii))
	}
	p := tea.NewProgram(New(ctx, svc, opts), popts...)

	// The forwarder turns the event stream into messages and, with
	// opts.Redial, connects again when the stream ends; Run owns it and
	// waits for it before returning.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var dialed io.Closer // the connection this goroutine opened last
		defer func() {
			if dialed != nil {
				dialed.Close()
			}
		}()
		for {
			forward(ctx, p, events)
			if ctx.Err() != nil {
				return
			}
			p.Send(DisconnectedMsg{})
			if opts.Redial == nil {
				return
			}
			svc, evs, ok := redial(ctx, opts.Redial)
			if !ok {
				return
			}
			if dialed != nil {
				dialed.Close()
			}
			dialed, _ = svc.(io.Closer)
			events = evs
			p.Send(ReconnectedMsg{Svc: svc})
		}
	}()
	_, err = p.Run()
	cancel()
	wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, tea.ErrProgramPanic) && parent.Err() != nil {
		// The caller's context ended (SIGTERM, or SIGINT from outside).
		return parent.Err()
	}
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	return nil
}

// forward sends events to p until the stream ends or ctx does.
func forward(ctx context.Context, p *tea.Program, events <-chan api.Event) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			p.Send(EventMsg(ev))
		case <-ctx.Done():
			return
		}
	}
}

// redialEvery is how often Run tries to reach a daemon that went away.
const redialEvery = 500 * time.Millisecond

// redial connects again and subscribes, trying every redialEvery until it
// succeeds or ctx ends (ok false).
func redial(ctx context.Context, dial func(context.Context) (api.Service, error)) (api.Service, <-chan api.Event, bool) {
	t := time.NewTicker(redialEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-t.C:
		}
		svc, err := dial(ctx)
		if err != nil {
			continue
		}
		events, err := svc.Subscribe(ctx)
		if err != nil {
			if c, ok := svc.(io.Closer); ok {
				c.Close()
			}
			continue
		}
		return svc, events, true
	}
}
