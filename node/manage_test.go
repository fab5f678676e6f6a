package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// craftPolicyCommit has n (a modified client) commit, on its head epoch of
// g, a policy change made by edit; it returns the Commit and what the
// node's own rule says of it.
func craftPolicyCommit(t *testing.T, ctx context.Context, n *Node, g string, edit func(cp *mls.Group, p *policy)) ([]byte, rejectReason) {
	t.Helper()
	var commit []byte
	var rule rejectReason
	headState(t, ctx, n, g, func(eid commitorder.EpochID, head, cp *mls.Group) {
		pol := groupPolicy(cp).clone()
		edit(cp, pol)
		sc, err := cp.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{policyProposal(cp, pol)}, SkipCached: true,
			AuthenticatedData: parentAD(eid), Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			t.Errorf("craft commit: %v", err)
			return
		}
		commit = sc.Message
		next, err := sc.Merge()
		if err != nil {
			t.Errorf("merge crafted commit: %v", err)
			return
		}
		rule = commitRule(head, next, mls.MemberSender(cp.OwnLeaf()))
	})
	if commit == nil {
		t.FailNow()
	}
	return commit, rule
}

// TestPolicyCommitsJudgedByEveryMember: a Commit that changes the policy is
// judged by every member the same way. An admin's Commit that would leave
// no admin among the members, or name the group with a control character,
// is invalid everywhere; a member who is not an admin cannot promote
// itself; an admin's promotion and rename through RequestChange reach
// every member, who then agree on the admins and on the name.
func TestPolicyCommitsJudgedByEveryMember(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	before := groupEpoch(t, alice, g)

	noAdmin, rule := craftPolicyCommit(t, ctx, alice, g, func(_ *mls.Group, p *policy) {
		p.Admins = [][]byte{memberIdentity{Name: "ghost", Peer: bob.PeerID()}.marshal()}
	})
	if rule != rejectPolicy {
		t.Errorf("commitRule on a policy without an admin member: %q", rule)
	}
	badName, rule := craftPolicyCommit(t, ctx, alice, g, func(_ *mls.Group, p *policy) { p.Name = "bad\x1bname" })
	if rule != rejectPolicy {
		t.Errorf("commitRule on a control character in the name: %q", rule)
	}
	selfPromote, rule := craftPolicyCommit(t, ctx, bob, g, func(cp *mls.Group, p *policy) {
		m, _ := cp.Member(cp.OwnLeaf())
		p.Admins = append(p.Admins, m.Identity)
	})
	if rule != "" {
		t.Errorf("commitRule on a non-admin's promotion: %q (commitorder, not the rule, refuses it)", rule)
	}
	publishAs(t, ctx, alice, g, noAdmin)
	publishAs(t, ctx, alice, g, badName)
	publishAs(t, ctx, bob, g, selfPromote)
	time.Sleep(time.Second) // past finality: an accepted commit would be applied
	for _, n := range ns {
		if e := groupEpoch(t, n, g); e != before {
			t.Fatalf("%s moved from epoch %d to %d on a forged policy", n.self.Name, before, e)
		}
		gs, _ := n.Groups(ctx)
		if gs[0].Admin != (n == alice) {
			t.Fatalf("%s after the forged policies: %+v", n.self.Name, gs[0])
		}
	}

	// The honest way, through the API.
	ch, err := alice.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangePromote, Member: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if ch, err = alice.AwaitChange(ctx, g, ch.ID, 20*time.Second); err != nil || ch.State != api.ChangeDone {
		t.Fatalf("promote: %+v %v", ch, err)
	}
	if _, err := bob.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangeRename, Name: "garden"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "every member to agree on the admins and the name", func() error {
		for _, n := range ns {
			gs, err := n.Groups(ctx)
			if err != nil || len(gs) != 1 {
				return err
			}
			if gs[0].Name != "garden" {
				return fmt.Errorf("%s calls the group %q", n.self.Name, gs[0].Name)
			}
			ms, err := n.Members(ctx, "garden")
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Admin != (m.Name != "carol") {
					return fmt.Errorf("%s sees %s admin=%v", n.self.Name, m.Name, m.Admin)
				}
			}
		}
		return nil
	})
	// Carol, not an admin, is refused by her own device before anything
	// is sent.
	if _, err := carol.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangePromote, Member: "carol"}); api.CodeOf(err) != api.CodeForbidden {
		t.Fatalf("carol promotes herself: %v", err)
	}
}

// TestInviteUsesRedeemRules: a code for three devices takes three
// different devices, each of which may retry with it (as a one-time code's
// redeemer may), refuses a fourth, survives a restart's reload from disk,
// and leaves the list once every Welcome was handed over.
func TestInviteUsesRedeemRules(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice := memNode(t, mn, "alice")
	ctx := ctxT(t, 20*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteWith(ctx, api.InviteRequest{Group: g.ID, Uses: api.MaxInviteUses + 1}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Fatalf("too many uses: %v", err)
	}
	inv, err := alice.InviteWith(ctx, api.InviteRequest{Group: g.ID, Uses: 3})
	if err != nil || inv.Uses != 3 {
		t.Fatalf("invite: %+v %v", inv, err)
	}
	iv, err := decodeInvite(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{{1}, {2}, {3}, {4}}
	for _, k := range keys[:3] {
		if _, spent, why := alice.redeemInvite(iv.Secret, k); why != "" || spent {
			t.Fatalf("device %x: %q spent=%v", k, why, spent)
		}
	}
	if _, _, why := alice.redeemInvite(iv.Secret, keys[3]); why != errInviteUsed.Error() {
		t.Fatalf("fourth device: %q", why)
	}
	// Reload from disk, as after a restart.
	alice.mu.Lock()
	delete(alice.invites, iv.Secret)
	alice.mu.Unlock()
	if _, spent, why := alice.redeemInvite(iv.Secret, keys[1]); why != "" || spent {
		t.Fatalf("second device retries after a reload: %q spent=%v", why, spent)
	}
	for i, k := range keys[:3] {
		alice.inviteDelivered(iv.Secret, k)
		if _, spent, why := alice.redeemInvite(iv.Secret, k); why != "" || !spent {
			t.Fatalf("device %x after its Welcome: %q spent=%v", k, why, spent)
		}
		invs, _ := alice.Invites(ctx)
		if open := len(invs) == 1; open != (i < 2) {
			t.Fatalf("after %d Welcomes the list is %+v", i+1, invs)
		}
		if i < 2 && (invs[0].Uses != 3 || invs[0].Redeemed != 3) {
			t.Fatalf("listed as %+v", invs[0])
		}
	}
}
