package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary act as `grove testnet`: the node
// processes of --processes runs are this binary re-executed, so they run
// exactly the code under test without building the grove command first.
const childEnv = "GROVE_TESTNET_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testProcesses runs node processes as this test binary.
func testProcesses() *Processes {
	return &Processes{Command: []string{os.Args[0]}, Env: []string{childEnv + "=1"}}
}

func TestChatProcesses(t *testing.T) {
	rep := playOK(t, Options{Scenario: "chat", Nodes: 5, Messages: 40, Processes: testProcesses(), Floor: true})
	if rep.Expected != 40*4 || rep.Mode != "processes" {
		t.Errorf("expected %d deliveries in mode %q, want %d in processes", rep.Expected, rep.Mode, 40*4)
	}
	if f := rep.FloorLatencyMS; f == nil || f.Samples != 40*4 {
		t.Errorf("floor over the node processes' hosts: %+v, want %d samples", f, 40*4)
	}
	if rep.LatencyMS.Samples == 0 {
		t.Error("no latency samples from the daemons' event streams")
	}
	if rep.PeakRSSMB < 5*10 || rep.PeakRSSMB > 5*1000 {
		t.Errorf("peak RSS %.0f MB is not the sum of five node processes' peaks", rep.PeakRSSMB)
	}
}

// TestCrash kills nodes with SIGKILL while members chat and restarts them:
// no acknowledged message may be lost or shown twice.
func TestCrash(t *testing.T) {
	rep := playOK(t, Options{Scenario: "crash", Nodes: 5, Messages: 60, Processes: testProcesses()})
	if rep.Notes["crash"] == "" {
		t.Error("no crash note: were nodes killed?")
	}
}

// TestAckedSendSurvivesSenderCrash replays, deterministically, the
// sequence behind a loss the crash scenario showed (seed 11, 80 messages;
// about 2 runs in 30): a member restarted after a SIGKILL sends at once
// while another member rotates, the daemon acknowledges, and the sender is
// killed again 20 ms later. In the failing run the message was in the
// sender's history, not pending, two members had it and the two that
// stayed online never got it. This sequence has not reproduced it so far;
// it stays as a check that an acknowledged send survives its sender.
func TestAckedSendSurvivesSenderCrash(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := NewCluster(ClusterConfig{Seed: 11, Processes: testProcesses()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Scenario: "acked-send-crash", Seed: 11, SettleTimeout: 15 * time.Second},
		members: map[string]*Peer{}, notes: map[string]string{}}
	if err := r.formGroup(5, 1); err != nil {
		t.Fatal(err)
	}
	ps := r.memberList()
	for round := range 6 {
		victim := ps[1+round%4]
		if err := c.Kill(victim); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(ctx, victim); err != nil {
			t.Fatal(err)
		}
		rotated := make(chan error, 1)
		go func() { rotated <- r.rotate(ps[0]) }()
		if ok, err := r.sendUnlessKilled(victim); err != nil || !ok {
			t.Fatalf("send after restart: acknowledged %v, %v", ok, err)
		}
		time.Sleep(20 * time.Millisecond)
		if err := <-rotated; err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(victim); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(ctx, victim); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.settleOrFail("after the crashes"); err != nil {
		t.Fatal(err)
	}
}

// TestRunFlagsProcesses: the process and namespace flags' usage errors.
func TestRunFlagsProcesses(t *testing.T) {
	for _, bad := range [][]string{
		{"run", "--delay", "10ms"},
		{"run", "--loss", "5"},
		{"run", "--netns", "--loss", "150"},
		{"run", "--netns", "--delay", "-1ms"},
		{"node"},
		{"node", "--home", t.TempDir()},
		{"node", "--home", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--peer", "not-an-address"},
		{"node", "--home", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "extra"},
	} {
		if err := Run(context.Background(), bad, io.Discard, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}

// TestAckedSendWhileIsolatedSurvivesCrash: a member cut off from everyone
// sends (the daemon acknowledges: the message is durably in its outbox),
// is killed, and comes back once the network is whole again. The message
// must reach every member: the restarted node's outbox replay is all that
// carries it.
func TestAckedSendWhileIsolatedSurvivesCrash(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := NewCluster(ClusterConfig{Seed: 5, Processes: testProcesses()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Scenario: "isolated-send-crash", Seed: 5, SettleTimeout: 15 * time.Second},
		members: map[string]*Peer{}, notes: map[string]string{}}
	if err := r.formGroup(4, 1); err != nil {
		t.Fatal(err)
	}
	ps := r.memberList()
	victim := ps[2]
	c.Partition([]*Peer{victim}, []*Peer{ps[0], ps[1], ps[3]})
	if ok, err := r.sendUnlessKilled(victim); err != nil || !ok {
		t.Fatalf("isolated send: acknowledged %v, %v", ok, err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	c.Heal()
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := r.settleOrFail("after the sender's return"); err != nil {
		t.Fatal(err)
	}
}
