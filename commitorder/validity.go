// Validity: which children of an epoch P the fork choice may pick, and the
// rate limit.
//
// A child c of P counts only if all of these hold: the node's RFC 9420
// verdict on it was valid; its committer is a member of P; when P names
// admins, a commit that is not a pure update comes from an admin; it is the
// lowest (class, rank, cid) of the MLS-valid commits its committer made on P
// (equivocating never helps); and its committer has not been proven, by
// replicated evidence (a commit or an application message, never a tip), to
// have acted in the subtree of a rival child of P, valid by the other rules,
// that c would beat (following a worse branch while holding a better one is
// what withholding looks like). Validity reads only the chain and that
// replicated evidence, never arrival order or time, so every member holding
// the same commits reaches the same verdict; and the largest valid child of
// P can never be invalidated by the last rule, so some child of P always
// counts.
//
// Rate limit (a share, not a ban): c is limited when it does not remove and
// its committer authored at least RateLimit of the last RateWindow commits
// on the chain up to P. A limited commit stays valid but loses to every
// sibling that is not limited (tuple.less: the limited bit comes before the
// class). So a member can never take more than its share while anyone else
// wants to commit — any other member's commit on the same parent beats its
// commit, whatever the ranks — yet a member that is alone in committing (the
// only admin adding device after device, anyone in a group whose other
// members are offline) is never stopped: with no sibling, a limited commit
// is canonical. A ban (the limited commit invalid) starved exactly that
// member for good, since the window is counted in commits and nobody else
// committed to move it on. Removals are never limited, so removing a
// spammer always works, and ClassRemove still beats a racing update from
// the member being removed. The bit is read from the chain alone, so it is
// as deterministic as the rest of validity.

package commitorder

// valid decides whether child c of p counts. It is a function of the
// commits and the evidence known, never of arrival order.
func (g *Group) valid(p, c *node) bool {
	if !g.basicValid(p, c) {
		return false
	}
	// Committing on p after having acted on a rival branch below p, a
	// rival that c would beat: the committer followed a worse branch while
	// holding c, which is what withholding a better commit looks like.
	// (If c loses to that rival anyway, invalidating it changes nothing.
	// Counting only rivals that are valid by the other rules means the
	// largest such child can never be invalidated here, so some child of p
	// is always valid and this rule can never stall the group.)
	for eid, ep := range g.proofs[c.committer] {
		if ep <= p.epoch {
			continue
		}
		n := g.nodes[eid]
		if n == nil {
			continue
		}
		for n != nil && n.epoch > p.epoch+1 {
			n = n.up
		}
		if n != nil && n.parent == p.eid && n != c && c.key().less(n.key()) && g.basicValid(p, n) {
			return false
		}
	}
	return true
}

// basicValid applies every rule except the cross-branch one.
func (g *Group) basicValid(p, c *node) bool {
	if !c.mlsValid || !contains(p.members, c.committer) {
		return false
	}
	if c.class != ClassUpdate && len(p.admins) > 0 && !contains(p.admins, c.committer) {
		return false
	}
	// Committing twice on one parent: only the lowest of them can count,
	// so equivocating never helps.
	for _, s := range p.children {
		if s != c && s.mlsValid && s.committer == c.committer && s.key().less(c.key()) {
			return false
		}
	}
	return true
}

// overLimit reports whether a commit of class by m on p is limited: it does
// not remove and m authored RateLimit or more of the last RateWindow
// commits up to p.
func (g *Group) overLimit(p *node, m MemberID, class Class) bool {
	return class != ClassRemove && countOf(p.recent, m) >= g.cfg.RateLimit
}
