package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWritersAndSearches runs writers, deleters and searchers at
// once (run with -race); every search must succeed and see whole batches.
func TestConcurrentWritersAndSearches(t *testing.T) {
	db, _, clock := openMem(t)
	const writers, batches, perBatch = 3, 30, 5
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				var msgs []Message
				for j := 0; j < perBatch; j++ {
					var id MessageID
					id[0], id[1], id[2] = byte(w), byte(b), byte(j)
					msgs = append(msgs, Message{Group: g1, ID: id, Time: clock.t.Add(time.Duration(w*1000+b*10+j) * time.Second),
						Sender: []byte{'w', byte('0' + w)}, Text: fmt.Sprintf("common w%db%d item%d", w, b, j)})
				}
				if _, err := db.AddMessages(msgs); err != nil {
					errs <- err
					return
				}
				if b%3 == 0 {
					if err := db.DeleteMessage(g1, msgs[0].ID); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := db.Search(t.Context(), Query{Text: "common", Limit: 50, Order: OrderRecency})
				if err != nil {
					errs <- err
					return
				}
				for _, h := range res.Hits {
					if h.Message.Text == "" || h.Message.Group == nil {
						errs <- fmt.Errorf("incomplete hit %+v", h)
						return
					}
				}
				if _, err := db.OptimizeIndex(t.Context()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := writers * batches * perBatch
	want -= writers * ((batches + 2) / 3)
	res, err := db.Search(t.Context(), Query{Text: "common", Limit: MaxSearchLimit})
	if err != nil || len(res.Hits) != want {
		t.Fatalf("final search: %d hits, %v; want %d", len(res.Hits), err, want)
	}
}
