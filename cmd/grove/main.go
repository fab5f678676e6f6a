// Command grove is Grove's command-line interface: it runs a device's daemon
// (grove up) and talks to it over the local API. See `grove help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"grove/cmd/grove/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}
