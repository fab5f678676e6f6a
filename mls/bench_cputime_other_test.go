//go:build !linux

package mls

import "time"

// threadClock falls back to wall time where thread CPU clocks are not wired up.
type threadClock struct{ start time.Time }

func newThreadClock() threadClock { return threadClock{start: time.Now()} }

func (c threadClock) now() time.Duration { return time.Since(c.start) }
