package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chaosFullEnv switches on the convergence assertion for every fault kind
// (link down and partitions heal only once dropped connections are
// redialed).
const chaosFullEnv = "GROVE_CHAOS_FULL"

// groveBinary builds the grove command once per test binary: the chaos
// scenario runs real `grove up` daemons.
var groveBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "grovechaos-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "grove")
	out, err := exec.Command("go", "build", "-o", bin, "grove/cmd/grove").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build grove: %v: %s", err, out)
	}
	return bin, nil
})

func requireChaos(t *testing.T) string {
	t.Helper()
	requireNetns(t)
	if testing.Short() {
		t.Skip("skipping: a chaos run takes minutes")
	}
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but the go command is not on PATH: the chaos test builds grove with it")
		}
		t.Skip("skipping: the go command is not on PATH (needed to build grove)")
	}
	bin, err := groveBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func runChaos(t *testing.T, o ChaosOptions) *ChaosReport {
	t.Helper()
	o.Grove = []string{requireChaos(t)}
	if testing.Verbose() {
		o.Narrate = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := RunChaos(ctx, o)
	if err != nil {
		t.Fatalf("seed %d: %v", o.Seed, err)
	}
	t.Logf("seed %d: sent %d acknowledged %d expected %d lost %d (sender removed %d) dups %d converged %v in %.1fs reconnects %d restarts %d faults %v skipped %v ops %v rejoins failed %d",
		rep.Seed, rep.Sent, rep.Acknowledged, rep.Expected, rep.Lost, rep.LostSenderRemoved, rep.DuplicatesShown,
		rep.Converged, rep.TimeToConvergeS, rep.Reconnects, rep.Restarts, rep.FaultsApplied, rep.FaultsSkipped, opsString(rep.Ops), rep.RejoinsFailed)
	for _, s := range rep.NotConverged {
		t.Logf("not converged: %s", s)
	}
	for _, s := range rep.LostSample {
		t.Logf("lost: %s", s)
	}
	// What must hold whatever the network did.
	if len(rep.DaemonCrashes) > 0 {
		t.Errorf("daemons crashed: %v", rep.DaemonCrashes)
	}
	if !rep.CleanupOK || len(rep.Leftovers) > 0 {
		t.Errorf("cleanup incomplete: leftovers %v", rep.Leftovers)
	}
	// Checked here too, not only by the run: the other chaos test may be
	// running beside this one under the same process id.
	if !strings.HasPrefix(rep.NetnsPrefix, fmt.Sprintf("%s-%d-", chaosPrefix, os.Getpid())) {
		t.Errorf("netns prefix %q does not carry this process's id", rep.NetnsPrefix)
	} else if left := listNamespaces(rep.NetnsPrefix + "-"); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	if rep.Sent == 0 || rep.Acknowledged == 0 || rep.Acknowledged > rep.Sent {
		t.Errorf("sent %d, acknowledged %d: want some sends, acknowledged <= sent", rep.Sent, rep.Acknowledged)
	}
	if rep.Expected == 0 || rep.Lost > rep.Expected || rep.LostSenderRemoved > rep.Lost {
		t.Errorf("expected %d, lost %d, lost from removed senders %d: not sane", rep.Expected, rep.Lost, rep.LostSenderRemoved)
	}
	for _, k := range o.Faults {
		if _, skipped := rep.FaultsSkipped[k]; !skipped && rep.FaultsApplied[k] == 0 {
			t.Errorf("fault %s never applied: %+v", k, rep.Faults)
		}
	}
	for _, f := range rep.Faults {
		if f.ApplyErr != "" {
			t.Errorf("fault %s on %v: %s", f.Kind, f.Nodes, f.ApplyErr)
		}
		if f.HealedS < f.AtS {
			t.Errorf("fault %s healed at %.1fs before it was applied at %.1fs", f.Kind, f.HealedS, f.AtS)
		}
	}
	if rep.Ops["rotate"] == nil || rep.Ops["remove"] == nil {
		t.Errorf("no rotate or remove was tried: %v", opsString(rep.Ops))
	}
	return rep
}

func opsString(ops map[string]*OpCount) string {
	var s []string
	for k, c := range ops {
		s = append(s, fmt.Sprintf("%s=%d/%d", k, c.OK, c.OK+c.Failed))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// TestChaosHealable runs real daemons through the faults that heal
// without redialing (SIGKILL and restart on the same port, random loss,
// throttling) with send, rotate, remove and re-invite churn: the group
// must converge and lose no acknowledged message.
func TestChaosHealable(t *testing.T) {
	// The two chaos runs are minutes of mostly waiting (a rejoin waits for
	// finality by age): they run side by side, each in its own namespaces.
	t.Parallel()
	rep := runChaos(t, ChaosOptions{Nodes: 4, Duration: 40 * time.Second, Seed: 11,
		Faults: []string{FaultKill, FaultLoss, FaultThrottle}, ConvergeTimeout: 3 * time.Minute})
	if rep.Restarts == 0 {
		t.Error("no daemon was killed and restarted")
	}
	if !rep.Converged {
		t.Errorf("not converged %.1fs after the last heal: %v", rep.TimeToConvergeS, rep.NotConverged)
	}
	if rep.Lost > 0 || rep.DuplicatesShown > 0 {
		t.Errorf("lost %d of %d acknowledged deliveries, %d duplicates shown", rep.Lost, rep.Expected, rep.DuplicatesShown)
	}
}

// TestChaosAllFaults applies one of each fault kind, link down and
// partitions included. Until dropped connections are redialed those may
// leave the group split, so convergence is asserted only with
// GROVE_CHAOS_FULL=1; no crash, a complete cleanup and a sane report are
// asserted always.
func TestChaosAllFaults(t *testing.T) {
	t.Parallel()
	rep := runChaos(t, ChaosOptions{Nodes: 4, Duration: 40 * time.Second, Seed: 5,
		Faults: AllFaults, ConvergeTimeout: 2 * time.Minute})
	if _, ok := rep.FaultsSkipped[FaultLoss]; ok && os.Getenv("CI") == "true" {
		t.Errorf("CI=true but loss faults were skipped: %s", rep.FaultsSkipped[FaultLoss])
	}
	if os.Getenv(chaosFullEnv) != "1" {
		t.Logf("convergence not asserted (set %s=1 once dropped connections are redialed)", chaosFullEnv)
		return
	}
	if !rep.Converged || rep.Lost > 0 {
		t.Errorf("converged %v, lost %d of %d: %v", rep.Converged, rep.Lost, rep.Expected, rep.NotConverged)
	}
}

// TestChaosInterrupted stops a chaos run (the grove command) with SIGINT
// in the middle: every namespace it made must be gone when it exits.
func TestChaosInterrupted(t *testing.T) {
	bin := requireChaos(t)
	cmd := exec.Command(bin, "testnet", "run", "--netns", "--scenario", "chaos", "--nodes", "3", "--duration", "2m", "--seed", "3")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%s-%d-", chaosPrefix, cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for len(listNamespaces(prefix)) < 4 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(listNamespaces(prefix)); n < 4 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the run made %d namespaces in a minute, want 4: %s", n, out)
	}
	time.Sleep(3 * time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the run did not stop within 2 minutes of SIGINT: %s", out)
	}
	if left := listNamespaces(prefix); len(left) > 0 {
		t.Errorf("namespaces left after SIGINT: %v (output: %s)", left, out)
	}
}

// TestChaosStaleNamespaces: a run killed before its cleanup leaves
// namespaces behind; the next run deletes those of dead processes and
// keeps those of live ones.
func TestChaosStaleNamespaces(t *testing.T) {
	requireNetns(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s-%d-test-1", chaosPrefix, dead.Process.Pid)
	live := fmt.Sprintf("%s-%d-test-1", chaosPrefix, os.Getpid())
	for _, ns := range []string{stale, live} {
		if err := ipCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	removed, err := removeStaleNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) || slices.Contains(removed, live) {
		t.Errorf("removed %v; want %s removed and %s kept", removed, stale, live)
	}
	if left := listNamespaces(chaosPrefix + "-"); slices.Contains(left, stale) || !slices.Contains(left, live) {
		t.Errorf("namespaces now %v", left)
	}
}

// TestChaosUsage: the chaos scenario's command-line mistakes are usage
// errors, caught before anything is created.
func TestChaosUsage(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--scenario", "chaos"}, // no --netns
		{"run", "--netns", "--scenario", "chaos", "--faults", "link_down,meteor"},
		{"run", "--netns", "--scenario", "chaos", "--duration", "0s"},
		{"run", "--netns", "--scenario", "chaos", "--nodes", "1"},
	} {
		err := Run(context.Background(), args, io.Discard, io.Discard)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
