package main

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "grove/interop/proto"
)

func dial(t *testing.T) pb.MLSClientClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return pb.NewMLSClientClient(conn)
}

func TestNameAndSuites(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	name, err := c.Name(ctx, &pb.NameRequest{})
	if err != nil || name.Name != "grove" {
		t.Fatalf("Name = %v, %v", name, err)
	}
	suites, err := c.SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{1, 2, 3, 4, 5, 6, 7}
	if len(suites.Ciphersuites) != len(want) {
		t.Fatalf("suites = %v, want %v", suites.Ciphersuites, want)
	}
	for i := range want {
		if suites.Ciphersuites[i] != want[i] {
			t.Fatalf("suites = %v, want %v", suites.Ciphersuites, want)
		}
	}
}

func TestUnservedRPCIsAnErrorNotAFakeSuccess(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	g, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := c.GroupInfo(ctx, &pb.GroupInfoRequest{StateId: g.StateId})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ExternalJoin(ctx, &pb.ExternalJoinRequest{GroupInfo: gi.GroupInfo, Identity: []byte("bob"),
		Psks: []*pb.PreSharedKey{{PskId: []byte("id"), PskSecret: []byte("secret")}}})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ExternalJoin with PSKs: got %v, want Unimplemented", err)
	}
	if _, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: 999}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown state: got %v, want NotFound", err)
	}
}
