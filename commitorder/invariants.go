package commitorder

import (
	"errors"
	"fmt"
)

var errInvariant = errors.New("commitorder: invariant violated")

// checkInvariants verifies the structural invariants of the state. Tests,
// the simulator and the fuzz targets call it after every step; it is also
// run on decoded state so that hostile bytes cannot produce an inconsistent
// Group.
func (g *Group) checkInvariants() error {
	if err := g.checkStructure(); err != nil {
		return err
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errInvariant}, a...)...)
	}
	if g.done {
		return nil
	}
	// Nothing is retained longer than the finality rules allow.
	for _, c := range g.root.children {
		if c.canonical && g.rootFinal(g.root, c) {
			return fail("root %v is final but retained", g.root.eid)
		}
	}
	return nil
}

// checkStructure verifies what must hold of any state, whatever the config
// and the time: links, the canonical chain, bounds of references.
func (g *Group) checkStructure() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errInvariant}, a...)...)
	}
	if g.nodes[g.root.eid] != g.root || g.nodes[g.head.eid] != g.head {
		return fail("root or head not retained")
	}
	if g.root.up != nil {
		return fail("root has a parent pointer")
	}
	for eid, n := range g.nodes {
		if n.eid != eid {
			return fail("node keyed wrongly")
		}
		if n == g.root {
			continue
		}
		if n.up == nil || g.nodes[n.up.eid] != n.up || n.up.eid != n.parent || n.epoch != n.up.epoch+1 {
			return fail("node %v detached", eid)
		}
		found := false
		for _, c := range n.up.children {
			found = found || c == n
		}
		if !found {
			return fail("node %v missing from its parent's children", eid)
		}
	}
	// Epochs strictly increase along parent links (checked above), so
	// these walks end.
	for eid, n := range g.nodes {
		a := n
		for a.up != nil {
			a = a.up
		}
		if a != g.root {
			return fail("node %v does not descend from the root", eid)
		}
	}
	// The canonical chain is exactly the fork choice from the root and ends
	// at the head.
	n := g.root
	canon := 1
	if !n.canonical {
		return fail("root not canonical")
	}
	held := g.heldElsewhere()
	for {
		c := g.chosenChild(n, held)
		if c == nil {
			break
		}
		if !c.canonical {
			return fail("best child %v of %v not marked canonical", c.eid, n.eid)
		}
		canon++
		n = c
	}
	if n != g.head {
		return fail("head %v is not the fork-choice tip %v", g.head.eid, n.eid)
	}
	marked := 0
	for _, x := range g.nodes {
		if x.canonical {
			marked++
		}
	}
	if marked != canon {
		return fail("%d nodes marked canonical, chain has %d", marked, canon)
	}
	if g.head.epoch-g.root.epoch > uint64(g.cfg.HardDepth) {
		return fail("retained chain deeper than hard depth")
	}
	for id, o := range g.outbox {
		if len(o.copies) == 0 {
			return fail("outbox entry %v without copies", id)
		}
		for _, e := range o.copies {
			if g.nodes[e] == nil {
				return fail("outbox entry %v in deleted epoch", id)
			}
		}
	}
	for _, h := range g.held {
		if g.nodes[h.parent] != nil {
			return fail("held commit %v has a known parent", h.cid)
		}
	}
	if len(g.held) > g.cfg.MaxHeld || len(g.history) > g.cfg.History {
		return fail("bounds exceeded")
	}
	return nil
}
