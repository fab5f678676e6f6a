package node

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Rejected input: a message that can never be part of the group (not
// merely one that cannot be decrypted yet, which is held) is dropped
// without a trace in the log or the epoch state. So that an operator can
// still see that someone is sending such things, every rejection is
// counted by reason (Metrics.Rejected) and each group logs a summary at
// info level at most once a minute (rejectLog): the first rejection at
// once, the rest summed until a minute has passed. Counts only: what was
// rejected and from whom would be hostile input in the log.

// rejectReason says why a message was rejected; it is a metrics label.
type rejectReason string

const (
	rejectSize       rejectReason = "size"        // empty or over store.MaxMLSMessageLen
	rejectMalformed  rejectReason = "malformed"   // not an MLSMessage (or tip) on a group topic
	rejectOtherGroup rejectReason = "other_group" // framing names another group
	rejectProposal   rejectReason = "proposal"    // standalone Proposal: Grove commits by value only
	// rejectExternal: an external Commit that is not a member's rejoin
	// replacing its own leaf.
	rejectExternal rejectReason = "external_commit"
	// rejectIdentity: a Commit whose committer's leaf carries another
	// credential identity than it had (a member passing for another).
	rejectIdentity rejectReason = "identity_change"
	// rejectDuplicate: a Commit whose epoch would list two members with
	// one identity or one peer id.
	rejectDuplicate rejectReason = "duplicate_member"
	// rejectEnvelope: a gossip payload not sealed with the group secret
	// (envelope.go).
	rejectEnvelope rejectReason = "envelope"
	// rejectCommitAD: a member's Commit sent in the clear, or whose
	// authenticated data misstates its parent, class or committer
	// (commitAD).
	rejectCommitAD rejectReason = "commit_ad"
	// rejectUnsealed: gossip in the group's envelope but not sealed
	// under an epoch's key, other than a rejoin's external Commit.
	rejectUnsealed rejectReason = "unsealed"
	// rejectDevice: a Commit adding a leaf whose device certificate does
	// not hold for it (devices.go).
	rejectDevice rejectReason = "device_certificate"
)

// rejectReasons lists every reason, in the order metrics are kept.
var rejectReasons = [...]rejectReason{rejectSize, rejectMalformed, rejectOtherGroup, rejectProposal,
	rejectExternal, rejectIdentity, rejectDuplicate, rejectPolicy, rejectEnvelope, rejectCommitAD, rejectUnsealed, rejectDevice}

func (r rejectReason) index() int { return slices.Index(rejectReasons[:], r) }

// rejectSummaryEvery is how often at most a group logs its rejections.
const rejectSummaryEvery = time.Minute

// rejectLog sums a group's rejections between two summaries. It is used
// from the gossip validator's goroutines as well as the actor's, hence the
// mutex.
type rejectLog struct {
	mu     sync.Mutex
	counts map[rejectReason]int
	since  time.Time // first rejection not yet logged
	last   time.Time // last summary
}

// reject counts one rejected message of a's group.
func (a *groupActor) reject(reason rejectReason) {
	if i := reason.index(); i >= 0 {
		a.n.metrics.rejected[i].Add(1)
	}
	now := a.n.cfg.Clock.Now()
	l := &a.rejects
	l.mu.Lock()
	if l.counts == nil {
		l.counts = map[rejectReason]int{}
	}
	if len(l.counts) == 0 {
		l.since = now
	}
	l.counts[reason]++
	if !l.last.IsZero() && now.Sub(l.last) < rejectSummaryEvery {
		l.mu.Unlock()
		return
	}
	counts, since := l.counts, l.since
	l.counts, l.last = nil, now
	l.mu.Unlock()
	total := 0
	attrs := []any{"since", since}
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		total += counts[r]
		attrs = append(attrs, slog.Int(string(r), counts[r]))
	}
	a.log.Info("rejected messages", append([]any{"count", total}, attrs...)...)
}
