package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// dedupHandler collapses runs of identical log lines at info level and
// below: a daemon that retries a peer or keeps seeing the same condition
// writes the line once, and when something else is logged, the line again
// with repeated=N, the number of copies left out. Warnings and errors are
// written every time. It is a slog.Handler over another one.
type dedupHandler struct {
	next   slog.Handler
	prefix string // WithAttrs and WithGroup applied so far, as text
	state  *dedupState
}

// dedupState is shared by a handler and the handlers derived from it, so
// that a run is recognised whichever logger wrote it.
type dedupState struct {
	mu      sync.Mutex
	key     string       // the last line written, without its time
	last    slog.Record  // its record, to repeat with the count
	lastOut slog.Handler // the handler that wrote it
	count   int          // copies left out since
}

func newDedupHandler(next slog.Handler) *dedupHandler {
	return &dedupHandler{next: next, state: &dedupState{}}
}

func (h *dedupHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *dedupHandler) Handle(ctx context.Context, r slog.Record) error {
	key := h.key(r)
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Level <= slog.LevelInfo && key == s.key {
		s.count++
		s.last = r.Clone()
		return nil
	}
	if s.count > 0 {
		rep := s.last.Clone()
		rep.AddAttrs(slog.Int("repeated", s.count))
		s.lastOut.Handle(ctx, rep)
		s.count = 0
	}
	s.key, s.last, s.lastOut = key, r.Clone(), h.next
	return h.next.Handle(ctx, r)
}

// key identifies a line by everything but its time.
func (h *dedupHandler) key(r slog.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s", h.prefix, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, "|%s=%v", a.Key, a.Value)
		return true
	})
	return b.String()
}

func (h *dedupHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	p := h.prefix
	for _, a := range attrs {
		p += fmt.Sprintf("|%s=%v", a.Key, a.Value)
	}
	return &dedupHandler{next: h.next.WithAttrs(attrs), prefix: p, state: h.state}
}

func (h *dedupHandler) WithGroup(name string) slog.Handler {
	return &dedupHandler{next: h.next.WithGroup(name), prefix: h.prefix + "|" + name + ".", state: h.state}
}
