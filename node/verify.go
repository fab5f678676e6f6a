// Signature checks off the group actors: a received application message
// is decrypted on its group's actor without consuming its key
// (mls.Group.PrepareApplication), its Ed25519 signature is checked on the
// node's verifier pool, and the actor applies it (ApplyPrepared, then the
// usual path) in the order messages arrived. A sealed tip's signature,
// which needs nothing but the tip, is checked there too (stageTip). One actor verifying every
// message on its own goroutine held that group to one core, and a group
// flooded with messages kept its actor from the group's other work.
//
// What may be prepared ahead: an actor stages (opens the seal, decrypts)
// the messages behind the one it waits on only while every message
// before them is an application message or tip being verified, since
// applying one of those does not change what a later one decrypts to.
// Anything else (a Commit, a message no epoch opens) is staged only when
// it is first in line, after everything before it was applied. Applying
// re-runs the whole receive path (receiveFrom) with the prepared result
// standing in for ProcessMessage on the epoch it was prepared with; if
// that no longer fits (a copy came by sync meanwhile, the epoch was
// deleted, the signature failed), ProcessMessage runs as before, so
// every outcome, reject reasons included, is the one the synchronous
// path gives.

package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"runtime"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
)

// verifyPool runs signature checks for every group of a node on a fixed
// number of goroutines. It queues nothing: a check goes to a worker that
// is idle, or the actor makes it itself, so a group's check never waits
// behind another group's (at worst an actor verifies on its own
// goroutine, as before the pool), and a flooded group gets at most every
// idle worker. Its owner (Node.Start) stops it by cancelling its context
// and waits for it with Node.wg.
type verifyPool struct {
	jobs chan func()
	done <-chan struct{}
}

// newVerifyPool starts workers goroutines (GOMAXPROCS when 0) on wg that
// run until ctx ends.
func newVerifyPool(ctx context.Context, wg *sync.WaitGroup, workers int) *verifyPool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &verifyPool{jobs: make(chan func()), done: ctx.Done()}
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-p.done:
					return
				case job := <-p.jobs:
					job()
				}
			}
		})
	}
	return p
}

// submit hands job to an idle worker, or reports false if none is idle
// or the pool stopped (the caller then runs it).
func (p *verifyPool) submit(job func()) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
	}
	select {
	case p.jobs <- job:
		return true
	default:
		return false
	}
}

// maxStaged bounds the received messages an actor holds in its pipeline
// (staged or waiting to be); while it is full the actor reads no more
// gossip (as the inbound channel bounds what waits before it).
const maxStaged = 32

// inEntry is a gossip message in an actor's pipeline (groupActor.pipe).
type inEntry struct {
	data   []byte // the envelope's body, as receiveFrom takes it
	from   peer.ID
	staged bool
	// prep is set when the message is an application message prepared
	// on an epoch; done is closed once prep's signature was checked.
	prep *preparedMsg
	done chan struct{}
}

// preparedMsg is an application message decrypted on epoch state g (eid)
// and handed to the verifier pool, or a tip whose signature the pool
// checks (tipOK once good).
type preparedMsg struct {
	body []byte // the MLS message inside the seal
	eid  commitorder.EpochID
	g    *mls.Group
	pm   *mls.PreparedMessage

	tip   *tip
	tipOK bool
}

// enqueue takes a message from the subscription into the pipeline.
func (a *groupActor) enqueue(m inMsg) {
	a.pipe = append(a.pipe, &inEntry{data: m.data, from: m.from})
	a.pump()
}

// pump applies the pipeline's messages from the front while they are
// ready, then stages what may be staged behind the first that is not.
func (a *groupActor) pump() {
	for len(a.pipe) > 0 {
		e := a.pipe[0]
		if !e.staged {
			a.stage(e)
		}
		if e.done != nil {
			select {
			case <-e.done:
			default:
				a.stageBehind()
				return
			}
		}
		a.pipe[0] = nil
		a.pipe = a.pipe[1:]
		a.applyEntry(e)
	}
	a.pipe = nil
}

// stageBehind stages the messages behind the first while each one before
// them is an application message being verified.
func (a *groupActor) stageBehind() {
	for _, e := range a.pipe {
		if !e.staged {
			a.stage(e)
		}
		if e.prep == nil {
			return
		}
	}
}

// stage decrypts an application message on the epoch receiveFrom would
// try first among those that decrypt it, and hands its signature check
// to the pool. Anything else is left for applyEntry's full path.
func (a *groupActor) stage(e *inEntry) {
	e.staged = true
	if a.phase == phaseRemoved || !isSealed(e.data) || a.precheck(e.data) != "" {
		return
	}
	eid, epoch, kind, body, err := a.openSealed(e.data)
	if err == nil && kind == sealedTip {
		a.stageTip(e, eid, epoch, body)
		return
	}
	if err != nil || kind != sealedMLS || isTip(body) || isSealed(body) || a.precheck(body) != "" {
		return
	}
	if _, dup := a.seen[sha256.Sum256(body)]; dup {
		return
	}
	gid, e2, ct, err := frameKind(body)
	if err != nil || e2 != epoch || ct != mls.ContentTypeApplication || string(gid) != string(a.id) {
		return
	}
	for _, eid := range a.candidates(epoch) {
		g := a.epochs[eid]
		pm, err := g.PrepareApplication(body)
		if err != nil {
			// receiveFrom would go on to the next candidate after this
			// one's error; what it would do with the one preparing
			// failed on it decides on its own.
			continue
		}
		a.check(e, &preparedMsg{body: body, eid: eid, g: g, pm: pm}, func() { pm.Verify() })
		return
	}
}

// stageTip checks a sealed tip's signature off the actor: the check
// needs nothing but the tip (takeTip, which finds its signer among the
// members, then skips it: tipChecked).
func (a *groupActor) stageTip(e *inEntry, eid commitorder.EpochID, epoch uint64, body []byte) {
	t, err := unmarshalTip(body)
	if err != nil || t.Version != tipV3 || t.Eid != eid || t.Epoch != epoch || !bytes.Equal(t.Group, a.id) {
		return // onSealed and takeTip reject it
	}
	p := &preparedMsg{tip: t}
	a.check(e, p, func() {
		p.tipOK = a.n.suite.VerifyWithLabel(t.SigKey, "grove tip", t.tbs(), t.Signature) == nil
	})
}

// check hands e's signature check (verify, which fills p) to an idle
// worker or makes it now.
func (a *groupActor) check(e *inEntry, p *preparedMsg, verify func()) {
	done := make(chan struct{})
	job := func() {
		if h := a.n.testingOnlyVerifyHook.Load(); h != nil {
			(*h)(a.id)
		}
		verify()
		close(done)
		select {
		case a.verified <- struct{}{}:
		default:
		}
	}
	e.prep, e.done = p, done
	if !a.n.verifier.submit(job) {
		job()
	}
}

// tipChecked reports whether t's signature was checked and found good
// by the pipeline (stageTip): the same signer, signature and signed
// bytes as a tip that verified.
func (a *groupActor) tipChecked(t *tip) bool {
	p := a.prepared
	if p == nil || p.tip == nil || !p.tipOK {
		return false
	}
	a.prepared = nil // once
	return bytes.Equal(p.tip.SigKey, t.SigKey) && bytes.Equal(p.tip.Signature, t.Signature) && bytes.Equal(p.tip.tbs(), t.tbs())
}

// applyEntry runs the receive path on a message whose turn came, with its
// prepared result if it has one.
func (a *groupActor) applyEntry(e *inEntry) {
	a.prepared = e.prep
	defer func() { a.prepared = nil }()
	a.receiveFrom(e.data, e.from)
}

// processWith processes data on epoch state g (eid): with the prepared
// result if it is data's on g and still applies, else as ProcessMessage.
func (a *groupActor) processWith(eid commitorder.EpochID, g *mls.Group, data []byte, opts mls.ProcessOptions) (*mls.ProcessedMessage, error) {
	if p := a.prepared; p != nil && p.pm != nil && p.eid == eid && p.g == g && string(p.body) == string(data) {
		a.prepared = nil // once
		if pm, err := g.ApplyPrepared(p.pm); err == nil {
			return pm, nil
		}
	}
	return g.ProcessMessage(data, opts)
}
