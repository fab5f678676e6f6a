package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkGossip measures publish-to-delivery latency (p50, p99 over every
// (message, receiver) pair) and throughput on loopback, for this package's
// Host and for bare go-libp2p-pubsub with default settings on a default
// go-libp2p host, on the same sparse topology in the same run. Run with a
// fixed count, e.g. -benchtime=1000x, so both see the same load.
//
// Publishing is windowed (at most window messages in flight) so the
// bare router's default 32-RPC peer queue does not drop messages; the
// benchmark measures delivery, not loss.
//
// Two modes: "latency" publishes one message at a time (window 1), so p50 and
// p99 are the cost of one message crossing the mesh; "throughput" keeps
// benchWindow messages in flight, so msg/s is the sustained rate (its
// latencies include queueing behind the window).
func BenchmarkGossip(b *testing.B) {
	for _, n := range []int{10, 30} {
		for _, mode := range []string{"latency", "throughput"} {
			for _, impl := range []string{"bare", "grove"} {
				b.Run(fmt.Sprintf("hosts=%d/mode=%s/impl=%s", n, mode, impl), func(b *testing.B) {
					window := 1
					if mode == "throughput" {
						window = benchWindow
					}
					benchGossip(b, n, impl, window)
				})
			}
		}
	}
}

const (
	benchWindow  = 16
	benchPayload = 512 // bytes, about an MLS application message
)

type benchNode interface {
	id() peer.ID
	addrInfo() peer.AddrInfo
	connect(ctx context.Context, ai peer.AddrInfo) error
	publish(ctx context.Context, data []byte) error
	next(ctx context.Context) ([]byte, error)
	close()
}

var benchGroup = GroupID("benchmark group")

type groveBench struct {
	h   *Host
	sub Subscription
}

func newGroveBench(b *testing.B) benchNode {
	h, err := New(Config{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		// The benchmark's authors publish far faster than a person types;
		// lift the per-author rate so the check runs but never rejects.
		PeerMessageRate:  1e9,
		PeerMessageBurst: 1 << 30,
		Logger:           testLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := h.Subscribe(benchGroup, func(ctx context.Context, from peer.ID, data []byte) ValidationResult {
		if len(data) != benchPayload {
			return Reject
		}
		return Accept
	})
	if err != nil {
		b.Fatal(err)
	}
	return &groveBench{h: h, sub: sub}
}

func (g *groveBench) id() peer.ID             { return g.h.ID() }
func (g *groveBench) addrInfo() peer.AddrInfo { return g.h.AddrInfo() }
func (g *groveBench) connect(ctx context.Context, ai peer.AddrInfo) error {
	return g.h.Connect(ctx, ai)
}
func (g *groveBench) publish(ctx context.Context, d []byte) error {
	return g.h.Publish(ctx, benchGroup, d)
}
func (g *groveBench) next(ctx context.Context) ([]byte, error) {
	m, err := g.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
func (g *groveBench) close() { g.h.Close() }

type bareBench struct {
	h      host.Host
	cancel context.CancelFunc
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
}

func newBareBench(b *testing.B) benchNode {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	topic, err := ps.Join(TopicName(benchGroup))
	if err != nil {
		b.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		b.Fatal(err)
	}
	return &bareBench{h: h, cancel: cancel, topic: topic, sub: sub}
}

func (n *bareBench) id() peer.ID             { return n.h.ID() }
func (n *bareBench) addrInfo() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }
func (n *bareBench) connect(ctx context.Context, ai peer.AddrInfo) error {
	return n.h.Connect(ctx, ai)
}
func (n *bareBench) publish(ctx context.Context, d []byte) error { return n.topic.Publish(ctx, d) }
func (n *bareBench) next(ctx context.Context) ([]byte, error) {
	m, err := n.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
func (n *bareBench) close() { n.sub.Cancel(); n.cancel(); n.h.Close() }

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRun collects one round's deliveries.
type benchRun struct {
	id        uint64
	start     time.Time
	sent      []int64         // publish time per seq, unix nanos
	delivered []atomic.Int32  // receivers that got seq
	done      []chan struct{} // closed when every receiver got seq
	n         int32
	mu        sync.Mutex
	lat       []time.Duration
}

func benchGossip(b *testing.B, n int, impl string, window int) {
	mk := newGroveBench
	if impl == "bare" {
		mk = newBareBench
	}
	nodes := make([]benchNode, n)
	for i := range nodes {
		nodes[i] = mk(b)
	}
	defer func() {
		for _, nd := range nodes {
			nd.close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range nodes { // the sparse topology of the tests
		for _, j := range []int{(i + 1) % n, (i + 3) % n} {
			if j == (i+3)%n && (i%2 != 0) {
				continue
			}
			if err := nodes[i].connect(ctx, nodes[j].addrInfo()); err != nil {
				b.Fatal(err)
			}
		}
	}

	var cur atomic.Pointer[benchRun]
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, err := nd.next(ctx)
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				r := cur.Load()
				if r == nil || len(d) < 16 || binary.BigEndian.Uint64(d) != r.id {
					continue
				}
				seq := binary.BigEndian.Uint64(d[8:])
				if seq >= uint64(len(r.sent)) {
					continue
				}
				if r.delivered[seq].Add(1) == r.n {
					close(r.done[seq])
				}
				r.mu.Lock()
				r.lat = append(r.lat, time.Duration(now-atomic.LoadInt64(&r.sent[seq])))
				r.mu.Unlock()
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	// Warm up until every node delivers, so the mesh has formed.
	warm := func(id uint64, msgs int) *benchRun {
		r := &benchRun{id: id, sent: make([]int64, msgs), delivered: make([]atomic.Int32, msgs), done: make([]chan struct{}, msgs), n: int32(n)}
		for i := range r.done {
			r.done[i] = make(chan struct{})
		}
		cur.Store(r)
		return r
	}
	payload := func(r *benchRun, seq int) []byte {
		d := make([]byte, benchPayload)
		binary.BigEndian.PutUint64(d, r.id)
		binary.BigEndian.PutUint64(d[8:], uint64(seq))
		return d
	}
	deadline := time.Now().Add(30 * time.Second)
	for round := uint64(1); ; round++ {
		r := warm(round, 1)
		atomic.StoreInt64(&r.sent[0], time.Now().UnixNano())
		nodes[0].publish(ctx, payload(r, 0))
		time.Sleep(200 * time.Millisecond)
		if int(r.delivered[0].Load()) == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: mesh of %d hosts never delivered to all", impl, n)
		}
	}

	r := warm(1<<32, b.N)
	// A message that has not reached every host within lostAfter is counted
	// as lost and no longer holds the window.
	const lostAfter = 5 * time.Second
	lost := 0
	wait := func(seq int) {
		select {
		case <-r.done[seq]:
		case <-time.After(lostAfter - time.Duration(time.Now().UnixNano()-atomic.LoadInt64(&r.sent[seq]))):
			lost++
		}
	}
	cpu0 := processCPU()
	b.ResetTimer()
	r.start = time.Now()
	for seq := 0; seq < b.N; seq++ {
		if w := seq - window; w >= 0 {
			wait(w)
		}
		d := payload(r, seq)
		atomic.StoreInt64(&r.sent[seq], time.Now().UnixNano())
		if err := nodes[seq%n].publish(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	for seq := max(0, b.N-window); seq < b.N; seq++ {
		wait(seq)
	}
	elapsed := time.Since(r.start)
	b.StopTimer()
	// CPU per message is the overhead measure least disturbed by other
	// load on the machine: wall-clock latency on a shared 2-core box is
	// mostly scheduling delay.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(lost), "lost")
}
