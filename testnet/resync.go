package testnet

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"grove/node"
	"grove/store"
)

// ResyncStats is the offline scenario's catch-up: how long the returning
// node took from its restart to holding every message it missed on the
// canonical epoch, and (with Options.Floor) the local floor measured in
// the same run: the same ciphertexts decrypted with the mls package alone
// and written to a copy of the node's store in synced batches
// (node.ReplayLocally).
type ResyncStats struct {
	Messages int `json:"messages"`
	Epochs   int `json:"epochs"`
	// WallS is restart to caught up, in seconds.
	WallS float64 `json:"wall_s"`
	// CPUS is the CPU time this process used meanwhile (in one process
	// only: it counts every node, the ones serving the resync too).
	CPUS float64 `json:"cpu_s,omitempty"`
	// FloorWallS and FloorCPUS are the local floor's.
	FloorWallS float64 `json:"floor_wall_s,omitempty"`
	FloorCPUS  float64 `json:"floor_cpu_s,omitempty"`
	// FloorMessages counts the log entries the floor replayed (messages
	// and Commits), FloorStored the text messages it stored (Messages when
	// all is well), FloorSkipped the entries it could not process.
	FloorMessages int `json:"floor_messages,omitempty"`
	FloorStored   int `json:"floor_stored,omitempty"`
	FloorSkipped  int `json:"floor_skipped,omitempty"`
}

// floorBatch is how many messages the floor writes per synced batch: about
// one /grove/sync/1 page of short messages, the batch a resync can use.
const floorBatch = 1000

// cpuTime is the user+system CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// storeDir is a node home's database directory (node.New's layout).
func storeDir(home string) string { return filepath.Join(home, "db") }

// snapshotStore copies a stopped peer's database to dst, which must not
// exist: the state the floor starts from.
func snapshotStore(p *Peer, dst string) error {
	if err := os.CopyFS(dst, os.DirFS(storeDir(p.Home))); err != nil {
		return fmt.Errorf("testnet: snapshot %s's store: %w", p.Name, err)
	}
	return nil
}

// missedLog returns what a stopped peer's log holds and the snapshot's does
// not, from the snapshot's newest epoch on, in the order /grove/sync/1
// serves a log (by epoch, in arrival order within each).
func missedLog(p *Peer, snap, group string) ([][]byte, error) {
	gid, err := hex.DecodeString(group)
	if err != nil {
		return nil, fmt.Errorf("testnet: group id: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler)
	old, err := store.Open(store.Options{Dir: snap, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("testnet: open snapshot: %w", err)
	}
	defer old.Close()
	states, err := old.EpochStates(gid)
	if err != nil {
		return nil, fmt.Errorf("testnet: snapshot states: %w", err)
	}
	var from uint64
	for _, st := range states {
		from = max(from, st.Epoch)
	}
	db, err := store.Open(store.Options{Dir: storeDir(p.Home), Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("testnet: open %s's store: %w", p.Name, err)
	}
	defer db.Close()
	var out [][]byte
	for e := from; ; e++ {
		entries, err := db.LogByEpoch(gid, e)
		if err != nil {
			return nil, fmt.Errorf("testnet: %s's log: %w", p.Name, err)
		}
		if len(entries) == 0 {
			return out, nil
		}
		for _, le := range entries {
			if _, err := old.LogEntry(gid, e, le.Hash); err == nil {
				continue
			}
			out = append(out, le.Message)
		}
	}
}

// awaitCaughtUp waits until p, restarted, has received want more messages
// than unread0 counted and is on the same canonical epoch as ref. It asks
// only for the two nodes' group summaries (a read of every history, as
// settle does, would compete with the resync it measures); settle checks
// the histories afterwards.
func (r *run) awaitCaughtUp(p, ref *Peer, unread0, want int) error {
	deadline := time.Now().Add(r.o.SettleTimeout)
	for {
		if dev, rdev := p.Device(), ref.Device(); dev != nil && rdev != nil {
			g, err1 := groupOf(r.ctx, dev, r.group)
			rg, err2 := groupOf(r.ctx, rdev, r.group)
			if err1 == nil && err2 == nil && g.Unread >= unread0+want && g.EpochID == rg.EpochID {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not caught up within %v", p.Name, r.o.SettleTimeout)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// resyncFloor stops the caught-up peer p, takes the ciphertexts it
// fetched from its log and replays them locally on the snapshot of its
// store from before its return (node.ReplayLocally), timed; then starts p
// again.
func (r *run) resyncFloor(p *Peer, snap string, st *ResyncStats) error {
	if err := r.c.Stop(p); err != nil {
		return err
	}
	msgs, err := missedLog(p, snap, r.group)
	if err != nil {
		return err
	}
	t0, c0 := time.Now(), cpuTime()
	stored, skipped, err := node.ReplayLocally(snap, r.group, msgs, floorBatch)
	if err != nil {
		return fmt.Errorf("testnet: floor: %w", err)
	}
	st.FloorWallS, st.FloorCPUS = time.Since(t0).Seconds(), (cpuTime() - c0).Seconds()
	st.FloorMessages, st.FloorStored, st.FloorSkipped = len(msgs), stored, skipped
	if err := os.RemoveAll(snap); err != nil {
		return fmt.Errorf("testnet: remove snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.o.SettleTimeout)
	defer cancel()
	return r.c.Restart(ctx, p)
}
