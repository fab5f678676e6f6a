// Command interop serves the official MLS interop harness's MLSClient gRPC
// service (mlswg/mls-implementations) backed by Grove's mls package, so that
// Grove's MLS can be tested live against other implementations.
//
//	go run . --port 50051
//
// It listens on the loopback interface only. Every RPC of the service is
// served by the mls package; inputs it rejects, and any RPC added to the
// service later, answer a gRPC error saying why, never a fake success. It is
// not a Grove node: no networking beyond the harness, no persistence.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	pb "grove/interop/proto"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("interop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 50051, "loopback TCP port to serve MLSClient on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("serving MLSClient", "addr", lis.Addr().String())
	return serve(ctx, lis)
}

// serve answers MLSClient on lis until ctx is done.
func serve(ctx context.Context, lis net.Listener) error {
	srv := grpc.NewServer()
	impl := newServer()
	defer impl.close()
	pb.RegisterMLSClientServer(srv, impl)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		srv.GracefulStop()
	}()
	err := srv.Serve(lis)
	<-done
	return err
}
