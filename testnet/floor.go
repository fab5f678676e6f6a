package testnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/p2p"
)

// floorPayload is the size of a floor message, about a short MLS
// application message on the wire.
const floorPayload = 256

// floorSession measures bare GossipSub on the cluster's hosts: a separate
// topic through the same libp2p hosts (same connections, same GossipSub
// router and settings, no MLS, no store), raw payloads published from
// random running peers on the chat's schedule, and publish-to-receive
// latencies at every other peer. It is the floor the chat scenario is
// compared with on the same topology in the same run; blocks of it
// alternate with blocks of chat so that both meet the same background
// (other work on the machine comes and goes).
type floorSession struct {
	c      *Cluster
	topic  p2p.GroupID
	sent   int // floor messages published so far
	peers  int // subscribed peers
	closed bool

	// in-process mode
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []floorSub
	mu     sync.Mutex
	lat    []time.Duration
	more   chan struct{} // signalled on every delivery

	// processes mode
	procs []*nodeProc
}

type floorSub struct {
	p *Peer
	s p2p.Subscription
}

// openFloor subscribes every running peer to the floor topic and lets
// its mesh form.
func (c *Cluster) openFloor(ctx context.Context) (*floorSession, error) {
	f := &floorSession{c: c, more: make(chan struct{}, 1)}
	if c.cfg.Processes != nil {
		f.topic = c.floorTopic()
		for _, p := range c.Running() {
			p.mu.Lock()
			if p.proc != nil {
				f.procs = append(f.procs, p.proc)
			}
			p.mu.Unlock()
		}
		for _, p := range f.procs {
			if err := p.control("floor-sub " + string(f.topic)); err != nil {
				f.close()
				return nil, err
			}
		}
		f.peers = len(f.procs)
	} else {
		f.topic = p2p.GroupID(fmt.Sprintf("testnet floor %d", c.cfg.Seed))
		for _, p := range c.Running() {
			p.mu.Lock()
			h := p.host
			p.mu.Unlock()
			s, err := h.Subscribe(f.topic, func(context.Context, peer.ID, []byte) p2p.ValidationResult { return p2p.Accept })
			if err != nil {
				f.close()
				return nil, fmt.Errorf("testnet: floor subscribe: %w", err)
			}
			f.subs = append(f.subs, floorSub{p, s})
		}
		f.peers = len(f.subs)
		rctx, cancel := context.WithCancel(ctx)
		f.cancel = cancel
		for _, s := range f.subs {
			f.wg.Add(1)
			go f.receive(rctx, s)
		}
	}
	// Let the mesh for the new topic form (a few heartbeats).
	time.Sleep(max(time.Second, 20*c.cfg.Timing.Heartbeat))
	return f, nil
}

func (f *floorSession) receive(ctx context.Context, s floorSub) {
	defer f.wg.Done()
	for {
		msg, err := s.s.Next(ctx)
		if err != nil {
			return
		}
		sentAt, from, ok := parseFloor(msg.Data)
		if !ok || from == s.p.ID {
			continue
		}
		f.mu.Lock()
		f.lat = append(f.lat, time.Since(sentAt))
		f.mu.Unlock()
		select {
		case f.more <- struct{}{}:
		default:
		}
	}
}

// block publishes m floor messages paced by gap (see pace) and waits up to
// ten seconds for their deliveries.
func (f *floorSession) block(ctx context.Context, m int, gap time.Duration) error {
	start := time.Now()
	for i := range m {
		pace(start, i, gap)
		seq := f.sent
		f.sent++
		f.c.mu.Lock()
		var pick int
		if f.peers > 0 {
			pick = f.c.rng.IntN(f.peers)
		}
		f.c.mu.Unlock()
		if f.procs != nil {
			if err := f.procs[pick].control(fmt.Sprintf("floor-pub %s %d", f.topic, seq)); err != nil {
				return err
			}
			continue
		}
		s := f.subs[pick]
		s.p.mu.Lock()
		h := s.p.host
		s.p.mu.Unlock()
		if err := h.Publish(ctx, f.topic, floorMessage(s.p.ID, seq)); err != nil {
			return fmt.Errorf("testnet: floor publish: %w", err)
		}
	}
	want := f.sent * (f.peers - 1)
	wait := f.more
	if f.procs != nil {
		wait = nil // processes report on stdout: poll
	}
	return awaitDeliveries(ctx, func() int { return len(f.latencies()) }, want, wait, time.After(10*time.Second))
}

// awaitDeliveries waits until count reaches want, waking on more (or every
// 50 ms), and fails only if the count is still short when deadline fires:
// the count is read again then, since the last deliveries can land between
// a check and the deadline.
func awaitDeliveries(ctx context.Context, count func() int, want int, more <-chan struct{}, deadline <-chan time.Time) error {
	for {
		if count() >= want {
			return nil
		}
		select {
		case <-more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			if got := count(); got < want {
				return fmt.Errorf("testnet: floor: %d of %d deliveries", got, want)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// latencies returns every floor delivery's latency so far.
func (f *floorSession) latencies() []time.Duration {
	if f.procs != nil {
		var lat []time.Duration
		for _, p := range f.procs {
			lat = append(lat, p.floorLatencies()...)
		}
		return lat
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lat)
}

// close unsubscribes every peer and stops the receivers; later calls do
// nothing.
func (f *floorSession) close() {
	if f.closed {
		return
	}
	f.closed = true
	for _, p := range f.procs {
		p.control("floor-unsub " + string(f.topic))
	}
	for _, s := range f.subs {
		s.s.Close()
	}
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// measureFloor measures m floor messages in one block (openFloor, block,
// close).
func (c *Cluster) measureFloor(ctx context.Context, m int, gap time.Duration) ([]time.Duration, error) {
	f, err := c.openFloor(ctx)
	if err != nil {
		return nil, err
	}
	defer f.close()
	err = f.block(ctx, m, gap)
	return f.latencies(), err
}

// floorMessage is one floor payload: send time (Unix ns), sender, sequence
// number, padded to floorPayload bytes.
func floorMessage(from peer.ID, seq int) []byte {
	id := []byte(from)
	data := make([]byte, max(floorPayload, 10+len(id)+4))
	binary.BigEndian.PutUint16(data[8:], uint16(len(id)))
	copy(data[10:], id)
	binary.BigEndian.PutUint32(data[len(data)-4:], uint32(seq))
	binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
	return data
}

// parseFloor reads a floor payload's send time and sender.
func parseFloor(data []byte) (time.Time, peer.ID, bool) {
	if len(data) < 10 {
		return time.Time{}, "", false
	}
	n := int(binary.BigEndian.Uint16(data[8:]))
	if len(data) < 10+n {
		return time.Time{}, "", false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(data))), peer.ID(data[10 : 10+n]), true
}

// floorTopic is the run's floor topic (no spaces: it travels in control
// lines).
func (c *Cluster) floorTopic() p2p.GroupID {
	return p2p.GroupID(fmt.Sprintf("testnet-floor-%d", c.cfg.Seed))
}
