package testnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/p2p"
)

// floorPayload is the size of a floor message, about a short MLS
// application message on the wire.
const floorPayload = 256

// measureFloor publishes m raw payloads on a separate topic through the
// same libp2p hosts (same connections, same GossipSub router and settings,
// no MLS, no store), from random running peers paced by gap, and returns
// publish-to-receive latencies at every other peer: the floor the chat
// scenario is compared with on the same topology in the same run.
func (c *Cluster) measureFloor(ctx context.Context, m int, gap time.Duration) ([]time.Duration, error) {
	if c.cfg.Processes != nil {
		return c.measureFloorProcs(ctx, m, gap)
	}
	topic := p2p.GroupID(fmt.Sprintf("testnet floor %d", c.cfg.Seed))
	peers := c.Running()
	type sub struct {
		p *Peer
		s p2p.Subscription
	}
	var subs []sub
	for _, p := range peers {
		p.mu.Lock()
		h := p.host
		p.mu.Unlock()
		s, err := h.Subscribe(topic, func(context.Context, peer.ID, []byte) p2p.ValidationResult { return p2p.Accept })
		if err != nil {
			return nil, fmt.Errorf("testnet: floor subscribe: %w", err)
		}
		subs = append(subs, sub{p, s})
	}
	defer func() {
		for _, s := range subs {
			s.s.Close()
		}
	}()
	// Let the mesh for the new topic form (a few heartbeats).
	time.Sleep(max(time.Second, 20*c.cfg.Timing.Heartbeat))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	want := m * (len(subs) - 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := s.s.Next(rctx)
				if err != nil {
					return
				}
				sentAt, from, ok := parseFloor(msg.Data)
				if !ok || from == s.p.ID {
					continue
				}
				mu.Lock()
				lat = append(lat, time.Since(sentAt))
				if len(lat) == want {
					close(done)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range m {
		pace(start, i, gap)
		c.mu.Lock()
		s := subs[c.rng.IntN(len(subs))]
		c.mu.Unlock()
		s.p.mu.Lock()
		h := s.p.host
		s.p.mu.Unlock()
		if err := h.Publish(ctx, topic, floorMessage(s.p.ID, i)); err != nil {
			return nil, fmt.Errorf("testnet: floor publish: %w", err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < want {
		return lat, fmt.Errorf("testnet: floor: %d of %d deliveries", len(lat), want)
	}
	return lat, nil
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

// measureFloorProcs is measureFloor for node processes: each one
// subscribes its own host to the floor topic and reports, for every floor
// message it receives, the publish-to-receive latency it measured (one
// machine, one clock); publishing is triggered by a control line and
// stamped in the publishing process.
func (c *Cluster) measureFloorProcs(ctx context.Context, m int, gap time.Duration) ([]time.Duration, error) {
	topic := c.floorTopic()
	var procs []*nodeProc
	for _, p := range c.Running() {
		p.mu.Lock()
		if p.proc != nil {
			procs = append(procs, p.proc)
		}
		p.mu.Unlock()
	}
	for _, p := range procs {
		if err := p.control("floor-sub " + string(topic)); err != nil {
			return nil, err
		}
	}
	time.Sleep(max(time.Second, 20*c.cfg.Timing.Heartbeat))
	start := time.Now()
	for i := range m {
		pace(start, i, gap)
		c.mu.Lock()
		p := procs[c.rng.IntN(len(procs))]
		c.mu.Unlock()
		if err := p.control(fmt.Sprintf("floor-pub %s %d", topic, i)); err != nil {
			return nil, err
		}
	}
	want := m * (len(procs) - 1)
	deadline := time.Now().Add(10 * time.Second)
	var lat []time.Duration
	for {
		lat = lat[:0]
		for _, p := range procs {
			lat = append(lat, p.floorLatencies()...)
		}
		if len(lat) >= want || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range procs {
		p.control("floor-unsub " + string(topic))
	}
	if len(lat) < want {
		return lat, fmt.Errorf("testnet: floor: %d of %d deliveries", len(lat), want)
	}
	return lat, nil
}
