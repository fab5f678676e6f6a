package testnet

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

// BenchmarkChat plays the chat scenario with the GossipSub floor measured
// on the same hosts in the same run. One iteration is one whole run
// (-benchtime=1x, -count for repetitions); the metrics are the run's
// latency percentiles, the floor's, their p99 ratio and throughput, and
// the process's CPU time per delivery (chat and floor deliveries; the
// whole run, setup included, since all nodes share this process), and
// the CPU time per delivery of the chat's block and of the floor's
// block apart, and their ratio (cpu/floor).
//
// The gap is between messages of the whole group (open loop): 5 ms offers
// 200 messages/s, at 30 nodes 5,800 deliveries/s, more than one process
// of 30 nodes on two cores keeps up with; nodes=30,gap=20ms offers a
// quarter of that.
func BenchmarkChat(b *testing.B) {
	for _, c := range []struct {
		nodes int
		gap   time.Duration
		name  string
	}{{10, 5 * time.Millisecond, "nodes=10"}, {30, 5 * time.Millisecond, "nodes=30"}, {30, 20 * time.Millisecond, "nodes=30,gap=20ms"}} {
		n := c.nodes
		b.Run(c.name, func(b *testing.B) {
			for i := range b.N {
				cpu0 := cpuTime()
				rep := benchRun(b, Options{Scenario: "chat", Nodes: n, Messages: 300, Seed: uint64(i + 1), Floor: true, Gap: c.gap})
				cpu := cpuTime() - cpu0
				f := rep.FloorLatencyMS
				if d := rep.Delivered + f.Samples; d > 0 {
					b.ReportMetric(float64(cpu.Microseconds())/float64(d), "cpu-us/delivery")
				}
				b.ReportMetric(rep.LatencyMS.P50, "p50-ms")
				b.ReportMetric(rep.LatencyMS.P99, "p99-ms")
				b.ReportMetric(f.P50, "floor-p50-ms")
				b.ReportMetric(f.P99, "floor-p99-ms")
				b.ReportMetric(rep.LatencyMS.P99/max(f.P99, 0.001), "p99/floor")
				b.ReportMetric(rep.CPUPerDeliveryUS, "chat-cpu-us/delivery")
				b.ReportMetric(rep.FloorCPUPerDeliveryUS, "floor-cpu-us/delivery")
				b.ReportMetric(rep.CPUPerDeliveryUS/max(rep.FloorCPUPerDeliveryUS, 0.001), "cpu/floor")
				b.ReportMetric(rep.ThroughputPerS, "deliveries/s")
				b.ReportMetric(rep.PeakRSSMB/float64(n), "peakMB/node")
			}
		})
	}
}

// BenchmarkResync: one node misses 10,000 messages and 20 epochs, then
// restarts and catches up; reported are the time from restart to holding
// everything, and the floor measured in the same run: the same log entries
// decrypted and stored locally on a copy of the node's store
// (node.ReplayLocally), wall and CPU, and the ratios. The CPU of the resync
// is the whole process's (the three nodes serving it included).
func BenchmarkResync(b *testing.B) {
	for i := range b.N {
		o := Options{Scenario: "offline", Nodes: 4, Messages: 10000, Epochs: 20, Seed: uint64(i + 1),
			Floor: true, SettleTimeout: 5 * time.Minute}
		// GROVE_RESYNC_PROFILE=file writes a CPU profile of the catch-up
		// alone (-cpuprofile would mostly show the others sending).
		if path := os.Getenv("GROVE_RESYNC_PROFILE"); path != "" {
			o.profileResync = func() func() {
				f, err := os.Create(fmt.Sprintf("%s.%d", path, i))
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				return func() { pprof.StopCPUProfile(); f.Close() }
			}
		}
		rep := benchRun(b, o)
		rs := rep.Resync
		if rs == nil || rs.FloorWallS == 0 || rs.FloorStored != o.Messages {
			b.Fatalf("resync or its floor not measured: %+v", rs)
		}
		b.ReportMetric(rs.WallS, "resync-s")
		b.ReportMetric(rs.FloorWallS, "floor-s")
		b.ReportMetric(rs.WallS/rs.FloorWallS, "wall/floor")
		b.ReportMetric(rs.CPUS, "resync-cpu-s")
		b.ReportMetric(rs.FloorCPUS, "floor-cpu-s")
		b.ReportMetric(rs.CPUS/rs.FloorCPUS, "cpu/floor")
		b.ReportMetric(float64(rs.FloorSkipped), "floor-skipped")
	}
}

// BenchmarkScale plays chat on one group of 20 to 60 nodes (3 messages
// per node, one every 10 ms: the load grows with the group), to find the
// largest group whose p99 stays under a second on this machine.
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{20, 40, 50, 60} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for i := range b.N {
				rep := benchRun(b, Options{Scenario: "scale", Nodes: n, Messages: 3 * n, Seed: uint64(i + 1), Gap: 10 * time.Millisecond, SettleTimeout: 3 * time.Minute})
				b.ReportMetric(rep.LatencyMS.P50, "p50-ms")
				b.ReportMetric(rep.LatencyMS.P99, "p99-ms")
				b.ReportMetric(rep.PeakRSSMB/float64(n), "peakMB/node")
			}
		})
	}
}

func benchRun(b *testing.B, o Options) *Report {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rep, err := RunScenario(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Failed() || rep.DuplicatesShown > 0 {
		b.Fatalf("%s: lost %d, converged %v, duplicates %d: %v", o.Scenario, rep.Lost, rep.Converged, rep.DuplicatesShown, rep.Problems)
	}
	return rep
}

// BenchmarkChatProcesses is BenchmarkChat with every node its own process
// (--processes): the floor is bare GossipSub between the same processes'
// hosts, measured in the same run. Not at 30: thirty node processes
// overload two cores (a chat run takes minutes, p50 over a second) and
// even the bare GossipSub floor then drops messages.
func BenchmarkChatProcesses(b *testing.B) {
	for _, n := range []int{5, 10} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for i := range b.N {
				rep := benchRun(b, Options{Scenario: "chat", Nodes: n, Messages: 300, Seed: uint64(i + 1), Floor: true,
					Gap: 5 * time.Millisecond, Processes: testProcesses(), SettleTimeout: 2 * time.Minute})
				f := rep.FloorLatencyMS
				b.ReportMetric(rep.LatencyMS.P50, "p50-ms")
				b.ReportMetric(rep.LatencyMS.P99, "p99-ms")
				b.ReportMetric(f.P50, "floor-p50-ms")
				b.ReportMetric(f.P99, "floor-p99-ms")
				b.ReportMetric(rep.LatencyMS.P99/max(f.P99, 0.001), "p99/floor")
				b.ReportMetric(rep.ThroughputPerS, "deliveries/s")
				b.ReportMetric(rep.PeakRSSMB/float64(n), "peakMB/node")
			}
		})
	}
}

// BenchmarkChatNetns is BenchmarkChatProcesses with every node process in
// its own network namespace (root only): real veth links and a bridge
// instead of loopback.
func BenchmarkChatNetns(b *testing.B) {
	if err := NetnsAvailable(Netns{}); err != nil {
		b.Skip(err)
	}
	for i := range b.N {
		p := testProcesses()
		p.Netns = &Netns{}
		rep := benchRun(b, Options{Scenario: "chat", Nodes: 10, Messages: 300, Seed: uint64(i + 1), Floor: true,
			Gap: 5 * time.Millisecond, Processes: p, SettleTimeout: 2 * time.Minute})
		f := rep.FloorLatencyMS
		b.ReportMetric(rep.LatencyMS.P50, "p50-ms")
		b.ReportMetric(rep.LatencyMS.P99, "p99-ms")
		b.ReportMetric(f.P50, "floor-p50-ms")
		b.ReportMetric(f.P99, "floor-p99-ms")
		b.ReportMetric(rep.LatencyMS.P99/max(f.P99, 0.001), "p99/floor")
		b.ReportMetric(rep.ThroughputPerS, "deliveries/s")
	}
}
