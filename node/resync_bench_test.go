package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"grove/mls"
	"grove/store"
)

// resyncMessages and resyncEpochs size BenchmarkResync: what a member
// misses while offline (testnet's BenchmarkResync plays 10,000 and 20 on
// real hosts; this one isolates the node and store).
const (
	resyncMessages = 2000
	resyncEpochs   = 4
	// floorPage is how many messages the floor stores per synced batch,
	// about one /grove/sync/1 response frame of short messages.
	floorPage = 1000
)

// cpuTime is the user+system CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkResync: bob misses resyncMessages messages and resyncEpochs key
// rotations, restarts and catches up over /grove/sync/1 (real libp2p on
// 127.0.0.1). In the same iteration, alternately, it measures the floor:
// decrypting as many application messages with the mls package alone and
// storing each one's ciphertext and plaintext (log, view, index) in synced
// store batches of floorPage. Reported: wall and CPU time per message of
// both, and their ratios. One iteration is one whole run (-benchtime 1x).
func BenchmarkResync(b *testing.B) {
	// The timer runs over the whole iteration on purpose: with it stopped,
	// the framework saw iterations of ~0 ns and grew b.N without bound
	// (1,000+ runs, each leaving its stores in a TempDir until the end:
	// 50 GB and a full disk under plain -bench). The reported metrics are
	// the custom ones below, not ns/op.
	for i := range b.N {
		floorWall, floorCPU := resyncFloor(b, resyncMessages)
		wall, cpu := resyncOnce(b, i)
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / resyncMessages }
		b.ReportMetric(per(wall), "resync-us/msg")
		b.ReportMetric(per(floorWall), "floor-us/msg")
		b.ReportMetric(float64(wall)/float64(floorWall), "wall/floor")
		b.ReportMetric(per(cpu), "resync-cpu-us/msg")
		b.ReportMetric(per(floorCPU), "floor-cpu-us/msg")
		b.ReportMetric(float64(cpu)/float64(floorCPU), "cpu/floor")
	}
}

// resyncOnce plays one offline-and-return and returns bob's catch-up time
// (from the restart to holding every message) and the process's CPU time
// over it.
func resyncOnce(b *testing.B, seed int) (wall, cpu time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	alice := benchRealNode(b, b.TempDir(), "alice")
	defer alice.Close()
	bobHome := b.TempDir()
	bob := benchRealNode(b, bobHome, "bob")
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		b.Fatal(err)
	}
	inv, _ := alice.Invite(ctx, g.ID)
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		b.Fatal(err)
	}
	// Alice must see bob act in the group before she may commit (see
	// commitorder's unconfirmedGenesis).
	if _, err := bob.Send(ctx, g.ID, "bob was here"); err != nil {
		b.Fatal(err)
	}
	gid, err := hex.DecodeString(g.ID)
	if err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, func() bool {
		ms, err := alice.db.Messages(gid, time.Time{}, 10)
		return err == nil && len(ms) == 1
	})
	bob.Close()
	per := resyncMessages / resyncEpochs
	for e := range resyncEpochs {
		for j := range per {
			if _, err := alice.Send(ctx, g.ID, fmt.Sprintf("run %d epoch %d message %d while bob was away", seed, e, j)); err != nil {
				b.Fatal(err)
			}
		}
		before := aliceEpoch(ctx, alice)
		if err := alice.Rotate(ctx, g.ID); err != nil {
			b.Fatal(err)
		}
		// One rotation per epoch: queued rotations would be committed
		// together.
		waitFor(b, time.Minute, func() bool { return aliceEpoch(ctx, alice) > before })
	}

	// GROVE_RESYNC_PROFILE=file writes a CPU profile of the catch-up
	// alone (-cpuprofile would mostly show alice sending).
	if path := os.Getenv("GROVE_RESYNC_PROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, seed))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	t0, c0 := time.Now(), cpuTime()
	bob = benchRealNode(b, bobHome, "bob")
	defer bob.Close()
	started := time.Since(t0)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		b.Fatal(err)
	}
	connected := time.Since(t0)
	defer func() {
		b.Logf("bob started in %v, connected in %v, caught up in %v", started, connected, time.Since(t0))
	}()
	last := time.Now()
	waitFor(b, 5*time.Minute, func() bool {
		ms, err := bob.db.Messages(gid, time.Time{}, resyncMessages+10)
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			gs, _ := bob.Groups(ctx)
			b.Logf("bob holds %d messages, groups %+v", len(ms), gs)
		}
		return err == nil && len(ms) >= resyncMessages+1
	})
	return time.Since(t0), cpuTime() - c0
}

func aliceEpoch(ctx context.Context, n *Node) uint64 {
	gs, err := n.Groups(ctx)
	if err != nil || len(gs) != 1 {
		return 0
	}
	return gs[0].Epoch
}

func benchRealNode(b *testing.B, home, name string) *Node {
	b.Helper()
	cfg := Config{Home: home, Name: name, Logger: testLogger()}
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.HeartbeatInterval = 100 * time.Millisecond
	cfg.P2P.Logger = testLogger()
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return n
}

func waitFor(b *testing.B, d time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not reached within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resyncFloor decrypts n application messages with the mls package alone
// and stores them (log entry, view record and postings) in a fresh store in
// synced batches of floorPage: the local cost a resync cannot beat.
func resyncFloor(b *testing.B, n int) (wall, cpu time.Duration) {
	ga, gb := floorGroups(b)
	cts := make([][]byte, n)
	for i := range cts {
		p := &appPayload{Kind: kindText, Time: time.Now(), Text: fmt.Sprintf("floor message %d while bob was away", i)}
		rand.Read(p.ID[:])
		ct, err := ga.ProtectApplication(p.marshal(), nil, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		cts[i] = ct
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(b.TempDir(), "db"), Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	gid := []byte("floor-group")
	sender := []byte("alice")
	t0, c0 := time.Now(), cpuTime()
	for start := 0; start < n; start += floorPage {
		tx := db.NewBatch()
		for _, ct := range cts[start:min(start+floorPage, n)] {
			pm, err := gb.ProcessMessage(ct, mls.ProcessOptions{Now: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
			p, err := unmarshalPayload(pm.ApplicationData)
			if err != nil {
				b.Fatal(err)
			}
			if err := tx.AppendLog(gid, gb.Epoch(), store.MessageHash(sha256.Sum256(ct)), ct); err != nil {
				b.Fatal(err)
			}
			if err := tx.AddMessage(store.Message{Group: gid, ID: store.MessageID(p.ID), Time: p.Time, Sender: sender, Text: p.Text, Epoch: gb.Epoch()}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0), cpuTime() - c0
}
