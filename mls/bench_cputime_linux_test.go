//go:build linux

package mls

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// threadClock measures the CPU time of the calling OS thread, which is what
// the interleaved benchmarks compare: unlike wall time it does not include
// the time the thread waits for a core on a loaded machine.
type threadClock struct{}

func newThreadClock() threadClock {
	runtime.LockOSThread() // released when the benchmark goroutine exits
	return threadClock{}
}

func (threadClock) now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}
