package main

import (
	"bytes"
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

// Hostile or wrong inputs are typed gRPC errors that leave the state as it
// was.
func TestBadInputsAreErrorsWithoutStateChange(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	g, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: g.StateId})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["garbage commit"] = c.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: g.StateId, Commit: []byte{0, 1, 0, 1, 0xff}})
	_, checks["garbage proposal"] = c.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: g.StateId, Proposal: [][]byte{{1, 2, 3}}, Commit: []byte{1}})
	_, checks["garbage key package"] = c.AddProposal(ctx, &pb.AddProposalRequest{StateId: g.StateId, KeyPackage: []byte("nope")})
	_, checks["garbage ciphertext"] = c.Unprotect(ctx, &pb.UnprotectRequest{StateId: g.StateId, Ciphertext: []byte{0, 1, 0, 2}})
	_, checks["unknown member"] = c.RemoveProposal(ctx, &pb.RemoveProposalRequest{StateId: g.StateId, RemovedId: []byte("mallory")})
	_, checks["unknown proposal type"] = c.Commit(ctx, &pb.CommitRequest{StateId: g.StateId, ByValue: []*pb.ProposalDescription{{ProposalType: []byte("bogus")}}})
	_, checks["bad suite"] = c.CreateGroup(ctx, &pb.CreateGroupRequest{CipherSuite: 0x1234})
	_, checks["huge export"] = c.Export(ctx, &pb.ExportRequest{StateId: g.StateId, KeyLength: 1 << 30})
	_, checks["garbage group info"] = c.ExternalJoin(ctx, &pb.ExternalJoinRequest{GroupInfo: []byte{0, 1, 0, 4}})
	_, checks["no pending commit"] = c.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.StateId})
	for what, err := range checks {
		if code := status.Code(err); code != codes.InvalidArgument && code != codes.FailedPrecondition {
			t.Errorf("%s: got %v, want InvalidArgument or FailedPrecondition", what, err)
		}
	}
	after, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: g.StateId})
	if err != nil || !bytes.Equal(before.StateAuthSecret, after.StateAuthSecret) {
		t.Fatalf("state changed by bad inputs: %v", err)
	}
	if _, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: 999}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown state: got %v, want NotFound", err)
	}
	if _, err := c.Free(ctx, &pb.FreeRequest{StateId: g.StateId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: g.StateId}); status.Code(err) != codes.NotFound {
		t.Fatalf("freed state: got %v, want NotFound", err)
	}
}
