package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"grove/store"
)

// BenchmarkLinkHistory10k: a new device links to a laptop that holds
// 10,000 messages (real libp2p on 127.0.0.1) and receives them as history;
// reported beside the time to store the same messages locally
// (store.AddMessages in batches of 1000, as the receiver does), and their
// ratio.
func BenchmarkLinkHistory10k(b *testing.B) {
	const count = 10_000
	laptop, err := realNodeWith(b, b.TempDir(), "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		b.Fatal(err)
	}
	defer laptop.Close()
	ctx := context.Background()
	g, err := laptop.CreateGroup(ctx, "team")
	if err != nil {
		b.Fatal(err)
	}
	a, _ := laptop.lookup(g.ID)
	msgs := make([]store.Message, count)
	start := time.Now().Add(-time.Hour)
	for i := range msgs {
		var id store.MessageID
		rand.Read(id[:])
		msgs[i] = store.Message{Group: a.id, ID: id, Time: start.Add(time.Duration(i) * time.Millisecond), Sender: laptop.selfID,
			Text: fmt.Sprintf("message %d: the quarterly numbers look fine, ship the release on thursday", i), Epoch: 1}
	}
	for i := 0; i < count; i += 1000 {
		if _, err := laptop.db.AddMessages(msgs[i : i+1000]); err != nil {
			b.Fatal(err)
		}
	}
	var linkTotal, localTotal time.Duration
	for b.Loop() {
		code, err := laptop.DeviceLink(ctx)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		phone, err := realNodeWith(b, b.TempDir(), "", func(c *Config) { c.Link, c.DeviceName = code.Code, "phone" })
		if err != nil {
			b.Fatal(err)
		}
		linkTotal += time.Since(t0)
		if h, err := phone.LinkHistory(); h != count || err != nil {
			b.Fatalf("history %d, %v", h, err)
		}
		phone.Close()

		local, err := store.Open(store.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		for i := 0; i < count; i += 1000 {
			if _, err := local.AddMessages(msgs[i : i+1000]); err != nil {
				b.Fatal(err)
			}
		}
		localTotal += time.Since(t0)
		local.Close()
	}
	b.ReportMetric(linkTotal.Seconds()/float64(b.N), "link-s/op")
	b.ReportMetric(localTotal.Seconds()/float64(b.N), "store-s/op")
	b.ReportMetric(float64(linkTotal)/float64(localTotal), "ratio")
}
