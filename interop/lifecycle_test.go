package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "grove/interop/proto"
)

// addrEnv names running clients (comma-separated host:port) to drive
// instead of in-process ones, e.g. two started with `go run . --port N`.
const addrEnv = "GROVE_INTEROP_ADDRS"

// startCommand starts the command's run on a free loopback port, as
// `go run . --port N` does, and returns its address.
func startCommand(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"--port", fmt.Sprint(port)}, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func dialAddr(t *testing.T, addr string) pb.MLSClientClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewMLSClientClient(conn)
}

// TestLifecycleOverGRPC drives a whole group lifecycle over gRPC against
// the command as started for the official harness: creation, joins by
// Welcome, application messages, an update, an external join, a PSK,
// removals and an empty commit, checking common state after each commit.
func TestLifecycleOverGRPC(t *testing.T) {
	var addrs []string
	if env := os.Getenv(addrEnv); env != "" {
		addrs = strings.Split(env, ",")
	} else {
		addrs = []string{startCommand(t), startCommand(t)}
	}
	var clients []pb.MLSClientClient
	for _, a := range addrs {
		clients = append(clients, dialAddr(t, a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Wait for the listeners (run binds asynchronously).
	for i, c := range clients {
		var err error
		for range 100 {
			var name *pb.NameResponse
			if name, err = c.Name(ctx, &pb.NameRequest{}, grpc.WaitForReady(true)); err == nil {
				if name.Name != "grove" {
					t.Fatalf("client %d is %q", i, name.Name)
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		suites, err := c.SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
		if err != nil || len(suites.Ciphersuites) != 7 {
			t.Fatalf("client %d suites %v, %v", i, suites, err)
		}
	}
	script := []stepJSON{
		{Action: "createGroup", Actor: "alice", Members: []string{"bob"}}, // 0
		{Action: "createKeyPackage", Actor: "carol"},                      // 1
		{Action: "addProposal", Actor: "bob", KeyPackage: 1},              // 2
		{Action: "fullCommit", Actor: "alice", ByReference: []int{2}, Members: []string{"bob"}, Joiners: []string{"carol"}},
		{Action: "protect", Actor: "carol", AuthenticatedData: "ad", Plaintext: "hi all"}, // 4
		{Action: "unprotect", Actor: "alice", Ciphertext: 4},
		{Action: "unprotect", Actor: "bob", Ciphertext: 4},
		{Action: "updateProposal", Actor: "bob"}, // 7
		{Action: "fullCommit", Actor: "carol", ByReference: []int{7}, Members: []string{"alice", "bob"}, ForcePath: true},
		{Action: "externalJoin", Actor: "bob", Joiner: "dave", Members: []string{"alice", "carol"}}, // 9
		{Action: "installExternalPSK", Clients: []string{"alice", "bob", "carol", "dave"}},          // 10
		{Action: "externalPSKProposal", Actor: "dave", PSKID: 10},                                   // 11
		{Action: "removeProposal", Actor: "alice", Removed: "bob"},                                  // 12
		{Action: "fullCommit", Actor: "dave", ByReference: []int{11, 12}, Members: []string{"alice", "carol"}},
		{Action: "fullCommit", Actor: "alice", ByValue: []descriptionJSON{{ProposalType: "remove", Removed: "carol"}}, Members: []string{"dave"}},
		{Action: "fullCommit", Actor: "dave", Members: []string{"alice"}},
	}
	for _, encrypt := range []bool{false, true} {
		r := newRunner(t, clients, 1, encrypt)
		r.ctx = ctx
		if err := r.play(script); err != nil {
			t.Fatalf("encrypt=%v: %v", encrypt, err)
		}
		r.free()
	}
}
