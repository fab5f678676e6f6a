package testnet

import (
	"testing"
)

// TestScaleTiming: a scale run's group tips at most scaleTipsPerSecond
// times a second in all, whatever its size (n*n verifications per tip
// interval in one process), small groups keep FastTiming's tips, and the
// finality age never falls below FastTiming's nor below the time the
// group's tips take to go round once.
func TestScaleTiming(t *testing.T) {
	if got := scaleTiming(2); got != FastTiming {
		t.Errorf("2 nodes: %+v, want FastTiming", got)
	}
	for _, n := range []int{2, 5, 10, 40, 60, 100, 500} {
		tm := scaleTiming(n)
		perSecond := float64(n) / tm.TipInterval.Seconds()
		if perSecond > scaleTipsPerSecond+1e-9 {
			t.Errorf("%d nodes: %.1f tips/s in all, want at most %d", n, perSecond, scaleTipsPerSecond)
		}
		if tm.TipInterval < FastTiming.TipInterval || tm.FinalityAge < FastTiming.FinalityAge {
			t.Errorf("%d nodes: %+v faster than FastTiming", n, tm)
		}
		if tm.FinalityAge < 2*tm.TipInterval {
			t.Errorf("%d nodes: finality age %v under two tip intervals (%v)", n, tm.FinalityAge, tm.TipInterval)
		}
		if tm.CommitDelta != FastTiming.CommitDelta || tm.Heartbeat != FastTiming.Heartbeat {
			t.Errorf("%d nodes: %+v changes more than tips and finality", n, tm)
		}
	}
	if a, b := scaleTiming(40), scaleTiming(60); b.TipInterval <= a.TipInterval || b.FinalityAge <= a.FinalityAge {
		t.Errorf("60 nodes %+v not slower than 40 nodes %+v", b, a)
	}
}
