package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

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

	// The forwarder turns the event stream into messages; Run owns it and
	// waits for it before returning.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					if ctx.Err() == nil {
						p.Send(DisconnectedMsg{})
					}
					return
				}
				p.Send(EventMsg(ev))
			case <-ctx.Done():
				return
			}
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
