package testnet

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"grove/node/api"
)

// Report is the outcome of one scenario run. Its JSON form is what
// `grove testnet run --json` prints.
type Report struct {
	Scenario string `json:"scenario"`
	// Mode is how the nodes ran: "in-process", "processes" or "netns".
	Mode  string `json:"mode"`
	Nodes int    `json:"nodes"`
	Seed  uint64 `json:"seed"`
	// Sent counts messages sent; Expected counts (message, receiver) pairs
	// that must end up in a receiver's history (members at send time that
	// are still members at the end, sender excluded); Delivered counts
	// those that did; Lost = Expected - Delivered.
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	Expected  int `json:"expected"`
	Lost      int `json:"lost"`
	// DuplicatesShown counts messages a user's history shows more than once.
	DuplicatesShown int `json:"duplicates_shown"`
	// LatencyMS is from Send to the message event (decrypted and stored)
	// at each receiver, over every delivery observed live.
	LatencyMS Percentiles `json:"latency_ms"`
	// FloorLatencyMS (chat and scale with --floor) is the same traffic as
	// raw payloads over the same hosts' GossipSub, no MLS and no store,
	// measured in the same run: the floor LatencyMS is compared with.
	FloorLatencyMS *Percentiles `json:"floor_latency_ms,omitempty"`
	// CPUPerDeliveryUS and FloorCPUPerDeliveryUS (chat with --floor, in
	// one process) are the process's CPU time (user and system, every
	// node) over the chat's blocks per chat delivery and over the
	// floor's per floor delivery: what one delivery costs the machine,
	// background work of the nodes during the block included.
	CPUPerDeliveryUS      float64 `json:"cpu_us_per_delivery,omitempty"`
	FloorCPUPerDeliveryUS float64 `json:"floor_cpu_us_per_delivery,omitempty"`
	// Epochs is the canonical epoch number at the end; ForksResolved the
	// fork resolutions observed (the most any one node saw).
	Epochs        uint64  `json:"epochs"`
	ForksResolved int     `json:"forks_resolved"`
	Converged     bool    `json:"converged"`
	DurationS     float64 `json:"duration_s"`
	// PeakRSSMB is this process's peak in one process, the sum of the
	// node processes' peaks with --processes.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// Throughput is delivered (message, receiver) pairs per second of the
	// traffic phase.
	ThroughputPerS float64 `json:"throughput_per_s,omitempty"`
	// Notes are scenario-specific observations (e.g. resync time).
	Notes map[string]string `json:"notes,omitempty"`
	// Resync is the offline scenario's catch-up (and its floor).
	Resync *ResyncStats `json:"resync,omitempty"`
	// Problems explains lost messages or non-convergence.
	Problems []string `json:"problems,omitempty"`
}

// Failed reports whether the run lost messages or did not converge.
func (r *Report) Failed() bool { return r.Lost > 0 || !r.Converged }

// Percentiles summarises a latency sample in milliseconds.
type Percentiles struct {
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1), Samples: len(s)}
}

// WriteSummary prints the report for a person.
func (r *Report) WriteSummary(w io.Writer) {
	verdict := "OK"
	if r.Failed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "scenario %s: %d nodes (%s), seed %d — %s\n", r.Scenario, r.Nodes, r.Mode, r.Seed, verdict)
	fmt.Fprintf(w, "  messages   sent %d, delivered %d of %d expected, lost %d, duplicates shown %d\n",
		r.Sent, r.Delivered, r.Expected, r.Lost, r.DuplicatesShown)
	fmt.Fprintf(w, "  latency    p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)\n",
		r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max, r.LatencyMS.Samples)
	if f := r.FloorLatencyMS; f != nil {
		fmt.Fprintf(w, "  floor      p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (bare GossipSub, same hosts; p99 ratio %.2fx)\n",
			f.P50, f.P90, f.P99, f.Max, r.LatencyMS.P99/max(f.P99, 0.001))
	}
	if r.CPUPerDeliveryUS > 0 && r.FloorCPUPerDeliveryUS > 0 {
		fmt.Fprintf(w, "  cpu        %.0f µs per delivery, floor %.0f µs (%.2fx)\n",
			r.CPUPerDeliveryUS, r.FloorCPUPerDeliveryUS, r.CPUPerDeliveryUS/r.FloorCPUPerDeliveryUS)
	}
	fmt.Fprintf(w, "  group      epoch %d, forks resolved %d, converged %v\n", r.Epochs, r.ForksResolved, r.Converged)
	fmt.Fprintf(w, "  run        %.1f s, peak RSS %.0f MB", r.DurationS, r.PeakRSSMB)
	if r.ThroughputPerS > 0 {
		fmt.Fprintf(w, ", %.0f deliveries/s while chatting", r.ThroughputPerS)
	}
	fmt.Fprintln(w)
	if rs := r.Resync; rs != nil {
		fmt.Fprintf(w, "  resync     %d messages, %d epochs in %.2f s", rs.Messages, rs.Epochs, rs.WallS)
		if rs.FloorWallS > 0 {
			fmt.Fprintf(w, "; local floor %.2f s (%.2fx)", rs.FloorWallS, rs.WallS/rs.FloorWallS)
		}
		if rs.CPUS > 0 && rs.FloorCPUS > 0 {
			fmt.Fprintf(w, ", CPU %.2f s vs %.2f s (%.2fx)", rs.CPUS, rs.FloorCPUS, rs.CPUS/rs.FloorCPUS)
		}
		fmt.Fprintln(w)
	}
	keys := make([]string, 0, len(r.Notes))
	for k := range r.Notes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-10s %s\n", k, r.Notes[k])
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem:   %s\n", p)
	}
}

// peakRSSMB is this process's peak resident set (VmHWM), 0 where /proc is
// missing.
func peakRSSMB() float64 { return statusPeakMB("/proc/self/status") }

// statusPeakMB reads VmHWM from a /proc/PID/status file, 0 if unreadable.
func statusPeakMB(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}

// recorder collects what the nodes' event streams show: when each message
// text first reached each receiver, and fork resolutions per node.
type recorder struct {
	mu       sync.Mutex
	sentAt   map[string]time.Time            // text -> send time
	recvAt   map[string]map[string]time.Time // receiver -> text -> first event
	forks    map[string]int                  // receiver -> fork_resolved events
	observer func(name string, ev api.Event) // optional, for the demo's narration
}

func newRecorder() *recorder {
	return &recorder{sentAt: map[string]time.Time{}, recvAt: map[string]map[string]time.Time{}, forks: map[string]int{}}
}

func (r *recorder) sent(text string, at time.Time) {
	r.mu.Lock()
	r.sentAt[text] = at
	r.mu.Unlock()
}

func (r *recorder) consume(name string, events <-chan api.Event) {
	for ev := range events {
		now := time.Now()
		r.mu.Lock()
		switch ev.Kind {
		case api.EventMessage:
			if ev.Message != nil && !ev.Message.Own {
				m := r.recvAt[name]
				if m == nil {
					m = map[string]time.Time{}
					r.recvAt[name] = m
				}
				if _, ok := m[ev.Message.Text]; !ok {
					m[ev.Message.Text] = now
				}
			}
		case api.EventForkResolved:
			r.forks[name]++
		}
		obs := r.observer
		r.mu.Unlock()
		if obs != nil {
			obs(name, ev)
		}
	}
}

// latencies returns send-to-event latencies for the given (text, receiver)
// pairs that were observed live.
func (r *recorder) latencies(pairs map[string][]string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for text, receivers := range pairs {
		t0, ok := r.sentAt[text]
		if !ok {
			continue
		}
		for _, rc := range receivers {
			if t1, ok := r.recvAt[rc][text]; ok {
				out = append(out, max(0, t1.Sub(t0)))
			}
		}
	}
	return out
}

// missing counts the (text, receiver) pairs still without a live event.
func (r *recorder) missing(pairs map[string][]string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for text, receivers := range pairs {
		for _, rc := range receivers {
			if _, ok := r.recvAt[rc][text]; !ok {
				n++
			}
		}
	}
	return n
}

func (r *recorder) maxForks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := 0
	for _, v := range r.forks {
		m = max(m, v)
	}
	return m
}
