package cli

import (
	"context"
	"errors"
	"os"

	"github.com/charmbracelet/x/term"

	"grove/cmd/grove/internal/chat"
	"grove/node/api"
)

// cmdChat runs the full-screen chat client (package chat) on the terminal.
func (e *env) cmdChat(args []string) error {
	pos, err := e.flags("chat").parse(args, 0, 1)
	if err != nil {
		return err
	}
	out, ok := e.stdout.(*os.File)
	if !ok || !term.IsTerminal(out.Fd()) {
		return errors.New("chat needs a terminal (use send, log and search in scripts)")
	}
	opts := chat.Options{Location: e.r.loc(), NoColor: e.r.getenv("NO_COLOR") != ""}
	// A daemon restart (grove down and up, a crash, an upgrade) does not
	// end the chat: it connects again and sends what was typed meanwhile.
	opts.Redial = func(ctx context.Context) (api.Service, error) {
		home, err := e.homeDir()
		if err != nil {
			return nil, err
		}
		return api.Dial(ctx, e.socketPath(home))
	}
	if len(pos) == 1 {
		opts.Group = pos[0]
	}
	return e.withClient(func(c *api.Client) error {
		return chat.Run(e.ctx, c, opts, e.stdin, e.stdout)
	})
}
