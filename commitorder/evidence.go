// Evidence: what members were seen doing, and what they claim.
//
// An act is any sign that a member was on an epoch: an application message,
// a commit made on it, or a tip. Acts decide witnesses for finality, whether
// we are behind, and who is on which branch; at most maxUnknownActs acts per
// member on epochs we do not hold are kept, and acts on epochs no longer
// held at or below the root are pruned when it moves (with the ciphertext
// hints it passed). A proof is the part of that evidence every member can
// fetch from the replicated log (commits and application messages, never
// tips, which are point-to-point), kept only for retained epochs: validity
// reads proofs alone, so it is the same everywhere. A claim is the newest
// epoch a member reports final in its tip (the latest tip wins); claims
// drive deferring to finality elsewhere (forkchoice.go) and Rejoin
// (rejoin.go).

package commitorder

import (
	"bytes"
	"fmt"
)

type claim struct {
	eid   EpochID
	epoch uint64
	at    int64 // when last heard
}

func (g *Group) actEvent(m MemberID, eid EpochID, epoch uint64) error {
	if m == "" {
		return fmt.Errorf("%w: empty member", ErrInvalidEvent)
	}
	if n := g.nodes[eid]; n != nil && n.epoch != epoch {
		return fmt.Errorf("%w: epoch number %d for %v (%d)", ErrInvalidEvent, epoch, eid, n.epoch)
	}
	g.recordAct(m, eid, epoch)
	return nil
}

func (g *Group) tipSeen(e TipSeen) error {
	if e.Root != (EpochID{}) && e.RootEpoch > e.Epoch {
		return fmt.Errorf("%w: tip root newer than tip", ErrInvalidEvent)
	}
	if n := g.nodes[e.Root]; e.Root != (EpochID{}) && n != nil && n.epoch != e.RootEpoch {
		return fmt.Errorf("%w: tip root epoch", ErrInvalidEvent)
	}
	if err := g.actEvent(e.Member, e.Eid, e.Epoch); err != nil {
		return err
	}
	if e.Root != (EpochID{}) && e.Member != g.self {
		// The latest heartbeat wins (a member that rejoined may report an
		// older epoch than before).
		if old, ok := g.claims[e.Member]; !ok || old.eid != e.Root {
			g.mut++
		}
		g.claims[e.Member] = claim{e.Root, e.RootEpoch, g.now}
	}
	if g.nodes[e.Eid] == nil && !g.inHistory(e.Eid) && g.recentUnknown(e.Epoch) {
		g.maybeFetchRange()
	}
	return nil
}

const maxUnknownActs = 4

// recordProof keeps replicated evidence about retained epochs only.
func (g *Group) recordProof(m MemberID, eid EpochID, epoch uint64) {
	if g.nodes[eid] == nil {
		return
	}
	a := g.proofs[m]
	if a == nil {
		a = make(map[EpochID]uint64, 2)
		g.proofs[m] = a
	}
	if _, ok := a[eid]; !ok {
		g.mut++
	}
	a[eid] = epoch
}

func (g *Group) recordAct(m MemberID, eid EpochID, epoch uint64) {
	if g.nodes[eid] == nil && epoch < g.root.epoch {
		return
	}
	a := g.acts[m]
	if a == nil {
		a = make(map[EpochID]uint64, 2)
		g.acts[m] = a
	}
	if _, ok := a[eid]; ok {
		return
	}
	a[eid] = epoch
	g.mut++
	if g.nodes[eid] == nil || g.behindVal || g.unknownOK {
		// An act on a known epoch can only clear unknown acts.
		g.bmut++
	}
	if g.nodes[eid] != nil {
		// A member acting on a known epoch at least as new as an unknown
		// one it tipped before has moved on (it rejoined or we caught up).
		for e, ep := range a {
			if ep <= epoch && g.nodes[e] == nil {
				delete(a, e)
			}
		}
		return
	}
	unknown := 0
	var lowest EpochID
	lowestEpoch := ^uint64(0)
	for e, ep := range a {
		if g.nodes[e] != nil {
			continue
		}
		unknown++
		if ep < lowestEpoch || (ep == lowestEpoch && bytes.Compare(e[:], lowest[:]) < 0) {
			lowest, lowestEpoch = e, ep
		}
	}
	if unknown > maxUnknownActs {
		delete(a, lowest)
	}
}

func (g *Group) pruneActs() {
	g.mut++
	g.bmut++
	for e, ep := range g.hints {
		// Kept while the epoch is still retained (the root itself
		// included) or may yet be fetched; gone once its keys are
		// (finalise drops the hints of dropped branches).
		if g.nodes[e] == nil && ep <= g.root.epoch {
			delete(g.hints, e)
		}
	}
	for m, a := range g.proofs {
		for e := range a {
			if g.nodes[e] == nil {
				delete(a, e)
			}
		}
		if len(a) == 0 {
			delete(g.proofs, m)
		}
	}
	for m, a := range g.acts {
		for e, ep := range a {
			if g.nodes[e] == nil && ep <= g.root.epoch {
				delete(a, e)
			}
		}
		if len(a) == 0 {
			delete(g.acts, m)
		}
	}
}
