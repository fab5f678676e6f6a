package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	crashDirEnv   = "GROVE_STORE_CRASH_DIR"
	crashStartEnv = "GROVE_STORE_CRASH_START"
	crashPerBatch = 3
)

var (
	crashGroup = []byte("crash-group")
	// crashBatchGroup receives what one sent message writes, as one Batch.
	crashBatchGroup = []byte("crash-batch-group")
)

// crashBatch writes, as one Batch, what sending message b changes: its
// outbox entry, view record, ciphertext log entry and epoch state.
func crashBatch(db *DB, b int, at time.Time) error {
	bt := db.NewBatch()
	id := crashMsgID(b, 0)
	var h MessageHash
	binary.BigEndian.PutUint64(h[:], uint64(b))
	var e EpochID
	binary.BigEndian.PutUint64(e[:], uint64(b))
	return errors.Join(
		bt.PutOutbox(OutboxEntry{Group: crashBatchGroup, ID: id, State: OutboxSent, Epoch: uint64(b), Plaintext: []byte("plain"), Created: at}),
		bt.AddMessage(Message{Group: crashBatchGroup, ID: id, Time: at, Sender: []byte("child"), Text: fmt.Sprintf("sent%d", b)}),
		bt.AppendLog(crashBatchGroup, uint64(b), h, []byte(fmt.Sprintf("sent ciphertext %d", b))),
		bt.PutEpochState(crashBatchGroup, EpochState{EID: e, Epoch: uint64(b), State: []byte("state")}),
		func() error { _, err := bt.Commit(); return err }(),
	)
}

func crashMsgID(batch, item int) MessageID {
	var id MessageID
	binary.BigEndian.PutUint64(id[:], uint64(batch))
	id[15] = byte(item)
	return id
}

// TestCrashChild is not a test on its own: TestCrashSafety runs the test
// binary again with this test selected and crashDirEnv set, and kills it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	start, err := strconv.Atoi(os.Getenv(crashStartEnv))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(Options{Dir: dir, FS: vfs.Default, Logger: quietLogger()})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b := start; ; b++ {
		msgs := make([]Message, crashPerBatch)
		for j := range msgs {
			msgs[j] = Message{
				Group:  crashGroup,
				ID:     crashMsgID(b, j),
				Time:   base.Add(time.Duration(b*crashPerBatch+j) * time.Millisecond),
				Sender: []byte("child"),
				Text:   fmt.Sprintf("crash batch%d item%d some shared words", b, j),
			}
		}
		if _, err := db.AddMessages(msgs); err != nil {
			fmt.Println("write error:", err)
			os.Exit(2)
		}
		fmt.Printf("ack msg %d\n", b)
		var h MessageHash
		binary.BigEndian.PutUint64(h[:], uint64(b))
		if _, err := db.AppendLog(crashGroup, uint64(b), h, []byte(fmt.Sprintf("ciphertext %d", b))); err != nil {
			fmt.Println("write error:", err)
			os.Exit(2)
		}
		fmt.Printf("ack log %d\n", b)
		if err := crashBatch(db, b, base.Add(time.Duration(b)*time.Millisecond)); err != nil {
			fmt.Println("write error:", err)
			os.Exit(2)
		}
		fmt.Printf("ack batch %d\n", b)
	}
}

// TestCrashSafety kills a writer with SIGKILL at random moments, 20 times,
// and checks after each restart that every acknowledged write is present and
// that no batch is half-applied (view, index and statistics agree).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	ackedMsgs := map[int]bool{}
	ackedLogs := map[int]bool{}
	ackedBatches := map[int]bool{}
	for round := 0; round < 20; round++ {
		start := round * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashStartEnv+"="+strconv.Itoa(start))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		killAt := time.Duration(5+r.IntN(150)) * time.Millisecond
		var timer <-chan time.Time
		killed := false
		n := 0
		for line := range lines {
			if timer == nil {
				timer = time.After(killAt) // count from the first write
			}
			switch {
			case strings.HasPrefix(line, "ack msg "):
				b, _ := strconv.Atoi(strings.TrimPrefix(line, "ack msg "))
				ackedMsgs[b] = true
				n++
			case strings.HasPrefix(line, "ack log "):
				b, _ := strconv.Atoi(strings.TrimPrefix(line, "ack log "))
				ackedLogs[b] = true
			case strings.HasPrefix(line, "ack batch "):
				b, _ := strconv.Atoi(strings.TrimPrefix(line, "ack batch "))
				ackedBatches[b] = true
			case strings.HasPrefix(line, "=== RUN"), strings.HasPrefix(line, "PASS"), line == "":
			default:
				t.Errorf("child: %s", line)
			}
			if !killed {
				select {
				case <-timer:
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				default:
				}
			}
		}
		if !killed {
			t.Fatalf("round %d: child exited before it was killed", round)
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
		verifyCrashDB(t, dir, ackedMsgs, ackedLogs, ackedBatches)
	}
	t.Logf("%d acknowledged message batches over 20 kills", len(ackedMsgs))
}

func verifyCrashDB(t *testing.T, dir string, ackedMsgs, ackedLogs, ackedBatches map[int]bool) {
	t.Helper()
	db, err := Open(Options{Dir: dir, FS: vfs.Default, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	ms, err := db.Messages(crashGroup, time.Time{}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	perBatch := map[int]int{}
	for _, m := range ms {
		perBatch[int(binary.BigEndian.Uint64(m.ID[:8]))]++
	}
	for b := range ackedMsgs {
		if perBatch[b] != crashPerBatch {
			t.Fatalf("acknowledged batch %d has %d of %d messages", b, perBatch[b], crashPerBatch)
		}
	}
	for b, n := range perBatch {
		if n != crashPerBatch {
			t.Fatalf("batch %d half-applied: %d of %d messages", b, n, crashPerBatch)
		}
	}
	sent, err := db.Messages(crashBatchGroup, time.Time{}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if db.stats.docs != uint64(len(ms)+len(sent)) {
		t.Fatalf("index statistics count %d documents, view has %d", db.stats.docs, len(ms)+len(sent))
	}
	// Every stored batch is searchable, and only its own messages match.
	for b := range perBatch {
		res, err := db.Search(t.Context(), Query{Text: fmt.Sprintf("batch%d", b), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != crashPerBatch {
			t.Fatalf("batch %d: search finds %d messages, want %d", b, len(res.Hits), crashPerBatch)
		}
	}
	entries, err := db.LogSince(crashGroup, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[int]bool{}
	var lastSeq uint64
	for _, e := range entries {
		if e.Seq <= lastSeq {
			t.Fatalf("log sequence not increasing: %d after %d", e.Seq, lastSeq)
		}
		lastSeq = e.Seq
		logged[int(e.Epoch)] = true
	}
	for b := range ackedLogs {
		if !logged[b] {
			t.Fatalf("acknowledged log entry %d missing", b)
		}
	}
	verifyCrashBatches(t, db, ackedBatches)
}

// verifyCrashBatches checks that every acknowledged Batch is whole and that
// every Batch is either whole or absent: outbox, view, log and epoch state
// name the same set of messages.
func verifyCrashBatches(t *testing.T, db *DB, acked map[int]bool) {
	t.Helper()
	sets := map[string]map[int]bool{"outbox": {}, "view": {}, "log": {}, "state": {}}
	obs, err := db.OutboxEntries(crashBatchGroup)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		sets["outbox"][int(binary.BigEndian.Uint64(o.ID[:8]))] = true
	}
	ms, err := db.Messages(crashBatchGroup, time.Time{}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		sets["view"][int(binary.BigEndian.Uint64(m.ID[:8]))] = true
	}
	les, err := db.LogSince(crashBatchGroup, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range les {
		sets["log"][int(e.Epoch)] = true
	}
	sts, err := db.EpochStates(crashBatchGroup)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		sets["state"][int(binary.BigEndian.Uint64(s.EID[:8]))] = true
	}
	for b := range acked {
		for name, set := range sets {
			if !set[b] {
				t.Fatalf("acknowledged batch %d lost its %s write", b, name)
			}
		}
	}
	for name, set := range sets {
		for b := range set {
			for other, oset := range sets {
				if !oset[b] {
					t.Fatalf("batch %d half-applied: has its %s write, not its %s write", b, name, other)
				}
			}
		}
	}
}
