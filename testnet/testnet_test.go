package testnet

import (
	"context"
	"os"
	"testing"
	"time"
)

// playOK runs a scenario and asserts the invariants every scenario must
// keep: nothing lost, nothing shown twice, everyone on one epoch.
func playOK(t *testing.T, o Options) *Report {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if testing.Verbose() {
		o.Narrate = os.Stderr
	}
	rep, err := RunScenario(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		rep.WriteSummary(os.Stderr)
	}
	if rep.Lost != 0 || !rep.Converged || rep.DuplicatesShown != 0 {
		t.Errorf("%s: lost %d, converged %v, duplicates shown %d; problems: %v",
			o.Scenario, rep.Lost, rep.Converged, rep.DuplicatesShown, rep.Problems)
	}
	if rep.Sent == 0 || rep.Expected == 0 || rep.Delivered != rep.Expected {
		t.Errorf("%s: sent %d, expected %d, delivered %d", o.Scenario, rep.Sent, rep.Expected, rep.Delivered)
	}
	return rep
}

func TestChat(t *testing.T) {
	rep := playOK(t, Options{Scenario: "chat", Nodes: 5, Messages: 40})
	if rep.Expected != 40*4 {
		t.Errorf("expected %d deliveries, want %d", rep.Expected, 40*4)
	}
	if rep.LatencyMS.Samples == 0 {
		t.Error("no latency samples from the event streams")
	}
}

func TestConcurrentCommits(t *testing.T) {
	rep := playOK(t, Options{Scenario: "concurrent", Nodes: 5, Messages: 40})
	if rep.Epochs < 4+4 {
		t.Errorf("epoch %d: the rounds' commits did not advance the group", rep.Epochs)
	}
}

func TestPartitionHeal(t *testing.T) {
	playOK(t, Options{Scenario: "partition", Nodes: 6, Messages: 40})
}

func TestOfflineResync(t *testing.T) {
	rep := playOK(t, Options{Scenario: "offline", Nodes: 5, Messages: 100, Epochs: 5})
	if rep.Notes["resync"] == "" {
		t.Error("no resync note")
	}
}

func TestChurn(t *testing.T) {
	playOK(t, Options{Scenario: "churn", Nodes: 7, Messages: 40})
}
