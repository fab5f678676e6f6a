package testnet

import (
	"context"
	"testing"
	"time"
)

// The last deliveries can land between a count and the deadline; the floor
// must not report "8700 of 8700 deliveries" as a failure.
func TestAwaitDeliveriesRecountsAtDeadline(t *testing.T) {
	n := 0
	count := func() int { n++; return n - 1 } // 0 at the first check, 1 at the recount
	expired := make(chan time.Time, 1)
	expired <- time.Now()
	if err := awaitDeliveries(context.Background(), count, 1, nil, expired); err != nil {
		t.Fatalf("all deliveries in at the deadline, yet: %v", err)
	}
	stuck := func() int { return 0 }
	expired <- time.Now()
	if err := awaitDeliveries(context.Background(), stuck, 1, nil, expired); err == nil {
		t.Fatal("a short count at the deadline passed")
	}
}
