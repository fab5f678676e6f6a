package cli

import (
	"context"
	"io"
)

// Run runs one grove command line (without the program name) with the
// process environment and the real daemon.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	r := &Runner{NewDaemon: NodeDaemon}
	return r.Run(ctx, args, stdin, stdout, stderr)
}
