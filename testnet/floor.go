package testnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/p2p"
)

// floorPayload is the size of a floor message, about a short MLS
// application message on the wire.
const floorPayload = 256

// ErrFloorInProcess is returned for --floor with --processes: the floor
// publishes through the nodes' libp2p hosts, which only this process holds.
var ErrFloorInProcess = errors.New("testnet: --floor needs the in-process mode")

// measureFloor publishes m raw payloads on a separate topic through the
// same libp2p hosts (same connections, same GossipSub router and settings,
// no MLS, no store), from random running peers paced by gap, and returns
// publish-to-receive latencies at every other peer: the floor the chat
// scenario is compared with on the same topology in the same run.
func (c *Cluster) measureFloor(ctx context.Context, m int, gap time.Duration) ([]time.Duration, error) {
	if c.cfg.Processes != nil {
		return nil, ErrFloorInProcess
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
				if len(msg.Data) < 10 {
					continue
				}
				sentAt := time.Unix(0, int64(binary.BigEndian.Uint64(msg.Data)))
				n := int(binary.BigEndian.Uint16(msg.Data[8:]))
				if len(msg.Data) < 10+n {
					continue
				}
				from := peer.ID(msg.Data[10 : 10+n])
				if from == s.p.ID {
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
	for i := range m {
		c.mu.Lock()
		s := subs[c.rng.IntN(len(subs))]
		c.mu.Unlock()
		s.p.mu.Lock()
		h := s.p.host
		s.p.mu.Unlock()
		id := []byte(s.p.ID)
		data := make([]byte, max(floorPayload, 10+len(id)+4))
		binary.BigEndian.PutUint16(data[8:], uint16(len(id)))
		copy(data[10:], id)
		binary.BigEndian.PutUint32(data[len(data)-4:], uint32(i))
		binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
		if err := h.Publish(ctx, topic, data); err != nil {
			return nil, fmt.Errorf("testnet: floor publish: %w", err)
		}
		if gap > 0 {
			time.Sleep(gap)
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
