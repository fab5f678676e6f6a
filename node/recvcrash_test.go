package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/node/api"
)

// runReceivingChild (GROVE_CHILD_MODE=receive): join, then print
// "shown TEXT" for every message event, with a flush interval so long
// that no flush makes the received messages durable before the kill.
func runReceivingChild(home string) error {
	cfg := Config{Home: home, Name: "child", Logger: testLogger()}
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.HeartbeatInterval = 100 * time.Millisecond
	testTiming(&cfg)
	cfg.PersistEvery = time.Hour
	n, err := New(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()
	events, err := n.Subscribe(ctx)
	if err != nil {
		return err
	}
	addr, err := ma.NewMultiaddr(os.Getenv("GROVE_CHILD_PEER"))
	if err != nil {
		return err
	}
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return err
	}
	if err := n.Connect(ctx, *ai); err != nil {
		return err
	}
	if _, err := n.Join(ctx, os.Getenv("GROVE_CHILD_CODE")); err != nil {
		return err
	}
	fmt.Println("joined")
	for ev := range events {
		if ev.Kind == api.EventMessage && ev.Message != nil && !ev.Message.Own {
			fmt.Println("shown", ev.Message.Text)
		}
	}
	return nil
}

// TestSIGKILLAfterShowingReceived: a received message is shown once it is
// stored, before it is durable (deferredWrites); a receiver killed right
// after showing messages, before any flush, must still end up holding
// each of them exactly once after its restart (what the crash took was
// not logged either, so the resync brings it back).
func TestSIGKILLAfterShowingReceived(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	checkLeaks(t)
	const sent = 30
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	ctx := ctxT(t, 60*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := alice.Status(ctx)
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GROVE_CHILD_HOME="+home, "GROVE_CHILD_PEER="+st.Addrs[0],
		"GROVE_CHILD_CODE="+inv.Code, "GROVE_CHILD_MODE=receive")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	want := make([]string, sent)
	for i := range want {
		want[i] = fmt.Sprintf("received before the kill %d", i)
	}
	shown := map[string]bool{}
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal(line)
		}
		if line == "joined" {
			for _, w := range want {
				if _, err := alice.Send(ctx, g.ID, w); err != nil {
					t.Fatal(err)
				}
			}
		}
		if text, ok := strings.CutPrefix(line, "shown "); ok {
			shown[text] = true
			if len(shown) == sent {
				cmd.Process.Kill() // SIGKILL: no flush, no Close
				break
			}
		}
	}
	cmd.Wait()
	if len(shown) < sent {
		t.Fatalf("child showed %d of %d messages", len(shown), sent)
	}

	child := realNode(t, home, "child")
	defer child.Close()
	kept, err := child.Log(ctx, g.ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "every shown message held exactly once after SIGKILL and restart", func() error {
		return hasTexts(child, g.ID, want...)
	})
	t.Logf("%d of %d shown messages survived the kill on disk; the resync brought back the rest", len(kept), sent)
}
