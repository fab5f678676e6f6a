package testnet

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
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
	rep := playOK(t, Options{Scenario: "chat", Nodes: 5, Messages: 40, Processes: testProcesses()})
	if rep.Expected != 40*4 {
		t.Errorf("expected %d deliveries, want %d", rep.Expected, 40*4)
	}
	if rep.LatencyMS.Samples == 0 {
		t.Error("no latency samples from the daemons' event streams")
	}
	if rep.PeakRSSMB <= peakRSSMB() {
		t.Errorf("peak RSS %.0f MB does not include the node processes (this process alone %.0f MB)", rep.PeakRSSMB, peakRSSMB())
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
