package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// playOK runs a scenario and asserts the invariants every scenario must
// keep: nothing lost, nothing shown twice, everyone on one epoch.
func playOK(t *testing.T, o Options) *Report {
	t.Helper()
	checkGoroutines(t)
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 20 * time.Second
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
	rep := playOK(t, Options{Scenario: "chat", Nodes: 5, Messages: 40, Floor: true})
	if rep.Expected != 40*4 {
		t.Errorf("expected %d deliveries, want %d", rep.Expected, 40*4)
	}
	if rep.LatencyMS.Samples == 0 {
		t.Error("no latency samples from the event streams")
	}
	// The floor carries the same traffic as the chat.
	if f := rep.FloorLatencyMS; f == nil || f.Samples != 40*4 {
		t.Errorf("floor samples %+v, want %d", f, 40*4)
	}
	if rep.ThroughputPerS <= 0 {
		t.Error("no throughput measured")
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

// TestOfflineResync also measures the resync's local floor (as
// BenchmarkResync does): the returning node's fetched log replayed on a
// copy of its store must hold every message and every Commit it missed.
// The scenario rotates in turn (rotateInTurn), so that log is exactly the
// messages and one Commit per rotation: no sibling Commit, which the
// floor, doing no commit ordering, would skip (or follow, if it came
// first, losing the winner's epoch: it flaked so, 1 run in 2 to 6).
func TestOfflineResync(t *testing.T) {
	rep := playOK(t, Options{Scenario: "offline", Nodes: 5, Messages: 100, Epochs: 5, Floor: true})
	if rep.Notes["resync"] == "" {
		t.Error("no resync note")
	}
	rs := rep.Resync
	if rs == nil || rs.WallS <= 0 || rs.FloorWallS <= 0 {
		t.Fatalf("resync not measured: %+v", rs)
	}
	if rs.FloorStored != 100 || rs.FloorMessages != 100+5 || rs.FloorSkipped != 0 {
		t.Errorf("floor replayed %d log entries, stored %d messages, skipped %d; want 100 messages and 5 Commits",
			rs.FloorMessages, rs.FloorStored, rs.FloorSkipped)
	}
}

func TestChurn(t *testing.T) {
	playOK(t, Options{Scenario: "churn", Nodes: 7, Messages: 40})
}

// TestDemo runs `make demo`'s walk-through; Demo fails if any narrated
// outcome does not happen.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out strings.Builder
	if err := Demo(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"[7] carol searches", "deploying the new irrigation timer", "0 lost, 0 shown twice"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// People have pronouns, and the gate code is explained before the
	// narration relies on it.
	if strings.Contains(out.String(), " its keys") {
		t.Errorf("the narration calls a person \"it\":\n%s", out.String())
	}
	if i, j := strings.Index(out.String(), "gate has a code lock"), strings.Index(out.String(), "never the new gate code"); i < 0 || j < i {
		t.Errorf("the gate code is not explained before it is used:\n%s", out.String())
	}
	if testing.Verbose() {
		t.Log("\n" + out.String())
	}
}

// TestBackFromOfflineFollowsCommits is the regression test for a bug the
// demo found: a member that joined at epoch k, went offline and came back
// was handed, on rejoining the topic, tips and commits seconds old (from
// before k). The old tips rolled the others' claims back and sent it
// fetching below its root; the old commits, on parents it never held,
// made commitorder believe its chain had diverged (evidence fed between
// timer ticks also carried stale times). It could then stop following the
// group (the others never adopted its commit). The
// node now drops stale and replayed tips, never feeds commitorder a commit
// from before its join, and ticks commitorder before every event
// (node/delivery_test.go has the unit-level tests).
func TestBackFromOfflineFollowsCommits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := ClusterConfig{Seed: 3}
	if os.Getenv("GROVE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Scenario: "back-from-offline", Seed: 3, SettleTimeout: 15 * time.Second},
		members: map[string]*Peer{}, notes: map[string]string{}}
	if err := r.formGroup(4, 1); err != nil {
		t.Fatal(err)
	}
	ps := r.memberList()
	away := ps[3] // joined last, at epoch 3
	if err := c.Stop(away); err != nil {
		t.Fatal(err)
	}
	delete(r.members, away.Name)
	if err := r.chat(5, ps[:3], 0); err != nil {
		t.Fatal(err)
	}
	if err := r.rotate(ps[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.settleOrFail("while away"); err != nil {
		t.Fatal(err)
	}
	r.members[away.Name] = away
	if err := c.Restart(ctx, away); err != nil {
		t.Fatal(err)
	}
	if err := r.settleOrFail("caught up"); err != nil {
		t.Fatal(err)
	}
	// The returning member must keep following the group...
	if err := r.rotate(ps[2]); err != nil {
		t.Fatal(err)
	}
	if err := r.chat(5, ps[:3], 0); err != nil {
		t.Fatal(err)
	}
	if err := r.settleOrFail("commit after return"); err != nil {
		t.Fatal(err)
	}
	// ...and be able to commit and send itself.
	if err := r.rotate(away); err != nil {
		t.Fatal(err)
	}
	if err := r.chat(3, []*Peer{away}, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.settleOrFail("returning member commits"); err != nil {
		t.Fatal(err)
	}
}

// TestRunJSON drives the command line: one JSON object with the report's
// fields, and usage errors typed for the CLI's exit status.
func TestRunJSON(t *testing.T) {
	checkGoroutines(t)
	var out, errOut strings.Builder
	err := Run(context.Background(), []string{"run", "--nodes", "3", "--scenario", "chat", "--messages", "9", "--seed", "5", "--json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"scenario", "nodes", "seed", "sent", "delivered", "expected", "lost", "duplicates_shown",
		"latency_ms", "epochs", "forks_resolved", "converged", "duration_s", "peak_rss_mb"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report lacks %q: %s", k, out.String())
		}
	}
	if rep["sent"] != 9.0 || rep["expected"] != 18.0 || rep["lost"] != 0.0 || rep["seed"] != 5.0 {
		t.Errorf("report %s", out.String())
	}
	for _, bad := range [][]string{{"run", "--nodes", "1"}, {"run", "--scenario", "nope"}, {"run", "extra"}, {"fly"}, {}} {
		if err := Run(context.Background(), bad, io.Discard, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
	if err := Run(context.Background(), []string{"run", "--scenario", "crash"}, io.Discard, io.Discard); !errors.Is(err, ErrNeedsProcesses) {
		t.Errorf("crash in one process: %v", err)
	}
}
