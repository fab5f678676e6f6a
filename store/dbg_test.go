package store

import (
	"testing"
	"time"
)

func TestDbgReplaceTwice(t *testing.T) {
	db, _, _ := openMem(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := db.NewBatch()
	b.AddMessage(msg(g1, 1, at, "alice", "lunch at noon tomorow?"))
	b.CommitNoSync()
	m2 := msg(g1, 2, at.Add(time.Second), "bob", "yes @alice")
	m2.Meta = []byte{1, 2, 3}
	b = db.NewBatch()
	b.PutOutbox(OutboxEntry{Group: g1, ID: mid(2), State: OutboxPending, Plaintext: []byte("x"), Created: at})
	b.AddMessage(m2)
	b.Commit()
	for i := range 3 {
		db.PutOp(Op{Group: g1, Target: mid(1), Kind: 2, Sender: []byte{byte(i + 1)}, Time: at, Value: []byte("x")}, false, false)
	}
	if err := db.ReplaceText(g1, []byte("alice"), mid(1), "lunch at noon tomorrow?"); err != nil {
		t.Fatal(err)
	}
	t.Log(searchIDs(t, db, "tomorrow"), searchIDs(t, db, "lunch"), searchIDs(t, db, "yes"))
}
