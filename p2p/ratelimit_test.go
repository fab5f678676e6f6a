package p2p

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(10, 5)
	now := time.Unix(1000, 0)
	a, b := peer.ID("a"), peer.ID("b")
	for i := range 5 {
		if !l.allow(a, now) {
			t.Fatalf("burst message %d refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("message beyond burst allowed")
	}
	if !l.allow(b, now) {
		t.Fatal("one author's flood limited another author")
	}
	if !l.allow(a, now.Add(100*time.Millisecond)) {
		t.Fatal("token not refilled after 1/rate")
	}
	if l.allow(a, now.Add(100*time.Millisecond)) {
		t.Fatal("refilled more than one token")
	}
	// Refill is capped at the burst.
	later := now.Add(time.Hour)
	for i := range 5 {
		if !l.allow(a, later) {
			t.Fatalf("after idle, message %d refused", i)
		}
	}
	if l.allow(a, later) {
		t.Fatal("idle time refilled beyond the burst")
	}
}

func TestRateLimiterBounded(t *testing.T) {
	l := newRateLimiter(1, 1)
	now := time.Unix(1000, 0)
	for i := range maxRateBuckets * 2 {
		l.allow(peer.ID(rune(i)), now)
		now = now.Add(2 * time.Second) // every earlier bucket has refilled
	}
	if len(l.buckets) > maxRateBuckets {
		t.Fatalf("%d buckets tracked, bound is %d", len(l.buckets), maxRateBuckets)
	}
}

func TestTopicAndRendezvousNames(t *testing.T) {
	g := GroupID("some group")
	if TopicName(g) == TopicName(GroupID("other group")) {
		t.Fatal("distinct groups share a topic")
	}
	if name, ok := strings.CutSuffix(TopicName(g), "/3"); !ok || len(name) != 64 {
		t.Fatalf("topic name %q is not hex SHA-256 with the wire version", TopicName(g))
	}
	if RendezvousKey(g) == "grove/"+TopicName(g) {
		t.Fatal("rendezvous key equals topic name; the DHT would learn the topic")
	}
	if MessageID([]byte("x")) != MessageID([]byte("x")) || MessageID([]byte("x")) == MessageID([]byte("y")) {
		t.Fatal("message id is not a function of the payload")
	}
}
