package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"grove/node/api"
	"grove/node/api/apitest"
)

func benchSocket(b *testing.B) string {
	dir, err := os.MkdirTemp("", "gbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func benchClient(b *testing.B, svc api.Service) *api.Client {
	path := benchSocket(b)
	lis, err := api.Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, lis, svc, nil) }()
	c, err := api.Dial(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		cancel()
		<-done
	})
	return c
}

// BenchmarkFloorEcho is the floor for a round trip: one line written to a
// Unix socket and echoed back by a goroutine, no JSON, no dispatch.
func BenchmarkFloorEcho(b *testing.B) {
	path := benchSocket(b)
	lis, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			conn.Write(line)
		}
	}()
	conn, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	line := []byte(`{"id":1,"method":"status"}` + "\n")
	for b.Loop() {
		conn.Write(line)
		if _, err := r.ReadBytes('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatus is one unary call through client, socket and server.
func BenchmarkStatus(b *testing.B) {
	c := benchClient(b, apitest.New("alice"))
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusParallel is unary calls from several goroutines
// multiplexed on one connection.
func BenchmarkStatusParallel(b *testing.B) {
	c := benchClient(b, apitest.New("alice"))
	ctx := context.Background()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkExport streams 1000 messages per op with flow control; the
// reported time per op divided by 1000 is the cost per message.
func BenchmarkExport(b *testing.B) {
	f := apitest.New("alice")
	c := benchClient(b, f)
	ctx := context.Background()
	f.CreateGroup(ctx, "ops")
	for i := range 1000 {
		f.Receive("ops", "bob", fmt.Sprintf("message number %d with some typical text in it", i))
	}
	for b.Loop() {
		n := 0
		if err := c.Export(ctx, "ops", time.Time{}, func(api.Message) error { n++; return nil }); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}
