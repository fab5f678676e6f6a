package testnet

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"grove/node/api"
)

// Demo plays a narrated walk-through on five real nodes: a group formed by
// invites, chat, a node offline and catching up, two concurrent commits
// settled, a removal and a search. It returns an error if any step does
// not turn out as narrated.
func Demo(ctx context.Context, w io.Writer) error {
	start := time.Now()
	c, err := NewCluster(ClusterConfig{Seed: 7})
	if err != nil {
		return err
	}
	defer c.Close()
	r := &run{c: c, ctx: ctx, o: Options{Scenario: "demo", SettleTimeout: 30 * time.Second}, members: map[string]*Peer{}, notes: map[string]string{}}
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	step := func(n int, title string) { say("\n[%d] %s  (t=%.1fs)", n, title, time.Since(start).Seconds()) }

	var forkMu sync.Mutex
	var forkNotes []string
	c.rec.mu.Lock()
	c.rec.observer = func(name string, ev api.Event) {
		if ev.Kind == api.EventForkResolved {
			forkMu.Lock()
			forkNotes = append(forkNotes, name+": "+ev.Detail)
			forkMu.Unlock()
		}
	}
	c.rec.mu.Unlock()

	step(1, "Five devices start")
	say("    Each is a full Grove node: a libp2p host on 127.0.0.1 and its own Pebble database.")
	say("    No server, no public bootstrap peer: they only know each other's local addresses.")
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	peers := map[string]*Peer{}
	for _, name := range names {
		p, err := c.Add(ctx, name)
		if err != nil {
			return err
		}
		peers[name] = p
		say("    %-6s peer %s…", name, p.ID.String()[len(p.ID.String())-8:])
	}
	alice, bob, carol, dave, erin := peers["alice"], peers["bob"], peers["carol"], peers["dave"], peers["erin"]

	step(2, "alice creates the group \"garden\" and invites the others")
	say("    An invite code is one-time: it names the group and how to reach alice. Joining sends a")
	say("    key package to alice, who commits an MLS Add and welcomes the newcomer (RFC 9420).")
	g, err := alice.Device().CreateGroup(ctx, "garden")
	if err != nil {
		return err
	}
	r.group, r.admin = g.ID, alice
	r.members["alice"] = alice
	for _, name := range names[1:] {
		p := peers[name]
		inv, err := alice.Device().Invite(ctx, "garden")
		if err != nil {
			return err
		}
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		jg, err := p.Device().Join(jctx, inv.Code)
		cancel()
		if err != nil {
			return fmt.Errorf("demo: %s join: %w", name, err)
		}
		r.members[name] = p
		say("    %-6s redeemed %.16s… and is in, at epoch %d", name, inv.Code, jg.Epoch)
	}
	if err := r.settleOrFail("group formed"); err != nil {
		return err
	}
	ms, err := carol.Device().Members(ctx, "garden")
	if err != nil {
		return err
	}
	say("    carol sees %d members; safety fingerprints to compare out of band:", len(ms))
	for _, m := range ms {
		say("      %-6s %s", m.Name, m.Fingerprint)
	}

	step(3, "Everyone chats")
	lines := map[string]string{
		"alice": "the tomatoes are ripe", "bob": "I'll bring a basket on Saturday",
		"carol": "deploying the new irrigation timer tonight", "dave": "watch out for slugs",
		"erin": "can someone water the basil?",
	}
	for _, name := range names {
		if err := r.sendText(peers[name], lines[name]); err != nil {
			return err
		}
	}
	if err := r.settleOrFail("chat"); err != nil {
		return err
	}
	log, err := bob.Device().Log(ctx, "garden", 10)
	if err != nil {
		return err
	}
	say("    bob's history (decrypted and stored on bob's device, same order everywhere):")
	for _, m := range log {
		say("      %-6s %s", m.Sender+":", m.Text)
	}

	step(4, "erin goes offline; the group moves on without her")
	if err := c.Stop(erin); err != nil {
		return err
	}
	delete(r.members, "erin")
	for i := range 30 {
		p := []*Peer{alice, bob, carol, dave}[i%4]
		if err := r.sendText(p, fmt.Sprintf("garden log entry %d from %s", i+1, p.Name)); err != nil {
			return err
		}
		if i == 10 || i == 20 {
			if err := r.rotate(p); err != nil {
				return err
			}
			say("    %s rotated %s keys (a new epoch: erin's old keys cannot read what follows)", p.Name, possessive[p.Name])
		}
	}
	if err := r.settleOrFail("without erin"); err != nil {
		return err
	}
	ag, _ := groupOf(ctx, alice.Device(), g.ID)
	say("    30 messages and 2 key rotations later the group is at epoch %d.", ag.Epoch)
	t0 := time.Now()
	if err := c.Restart(ctx, erin); err != nil {
		return err
	}
	r.members["erin"] = erin
	if err := r.settleOrFail("erin's catch-up"); err != nil {
		return err
	}
	eg, _ := groupOf(ctx, erin.Device(), g.ID)
	elog, _ := erin.Device().Log(ctx, "garden", 1000)
	say("    erin is back: she asked members for what she missed, applied the commits in order and")
	say("    decrypted the messages — %d messages, epoch %d, in %.2f s.", len(elog), eg.Epoch, time.Since(t0).Seconds())

	step(5, "bob and dave commit at the same instant")
	say("    Both rotate their keys on the same epoch: two competing commits. Every device applies")
	say("    the same deterministic fork choice, so all of them settle on one and the same chain.")
	before, _ := groupOf(ctx, alice.Device(), g.ID)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*Peer{bob, dave} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.rotate(p) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// Both rotations land: the loser of the fork is committed again once
	// the winner is final (up to FinalityAge later), so the group settles
	// two epochs on. Settling before that saw the group calm at one epoch
	// and then failed when the re-committed rotation arrived.
	if err := r.waitFor("both rotations", func() error {
		for _, p := range r.memberList() {
			gg, err := groupOf(ctx, p.Device(), g.ID)
			if err != nil {
				return err
			}
			if gg.Epoch < before.Epoch+2 {
				return fmt.Errorf("%s on epoch %d, want %d", p.Name, gg.Epoch, before.Epoch+2)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.settleOrFail("concurrent commits"); err != nil {
		return err
	}
	var ids []string
	for _, name := range names {
		gg, _ := groupOf(ctx, peers[name].Device(), g.ID)
		ids = append(ids, fmt.Sprintf("%s %d/%.8s", name, gg.Epoch, gg.EpochID))
	}
	say("    from epoch %d: everyone now agrees — %s", before.Epoch, strings.Join(ids, ", "))
	forkMu.Lock()
	if len(forkNotes) > 0 {
		say("    fork resolved (%d device reports), e.g. %s", len(forkNotes), forkNotes[0])
	} else {
		say("    (the commits did not actually collide this time: commitorder's avoidance delay let one go first)")
	}
	forkMu.Unlock()

	step(6, "alice removes dave")
	if err := alice.Device().Remove(ctx, "garden", "dave"); err != nil {
		return err
	}
	delete(r.members, "dave")
	// Remove returns once the removal is requested; it is done when every
	// remaining member's view has four members.
	if err := r.waitFor("dave's removal everywhere", func() error {
		for _, p := range r.memberList() {
			if got := len(mustMembers(ctx, p)); got != 4 {
				return fmt.Errorf("%s sees %d members", p.Name, got)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.settleOrFail("removal"); err != nil {
		return err
	}
	say("    The garden's gate has a code lock, and dave knew the code. Now that he is out of the")
	say("    group, alice changes it and tells the others: \"dave has moved away; new gate code is 4711\".")
	if err := r.sendText(alice, "dave has moved away; new gate code is 4711"); err != nil {
		return err
	}
	if err := r.settleOrFail("after removal"); err != nil {
		return err
	}
	left, _ := carol.Device().Members(ctx, "garden")
	daveSees := "nothing: the group is gone from his device"
	if dlog, err := dave.Device().Log(ctx, "garden", 1000); err == nil {
		daveSees = "his old history only"
		for _, m := range dlog {
			if strings.Contains(m.Text, "4711") {
				return fmt.Errorf("demo: removed dave read a message sent after his removal")
			}
		}
	}
	say("    the group has %d members; alice's next message is encrypted to them only.", len(left))
	say("    dave sees %s — never the new gate code.", daveSees)

	step(7, "carol searches her own device")
	res, err := carol.Device().Search(ctx, api.SearchRequest{Query: "deploy*", Group: "garden"})
	if err != nil {
		return err
	}
	say("    search \"deploy*\" runs on carol's local index of decrypted history (nothing leaves the device):")
	for _, h := range res.Hits {
		say("      %-6s %s", h.Message.Sender+":", h.Message.Text)
	}
	if len(res.Hits) == 0 {
		return fmt.Errorf("demo: search found nothing")
	}

	pr := r.check()
	say("\nDone in %.1f s: %d messages sent, %d deliveries checked, %d lost, %d shown twice, all on epoch %d: %v.",
		time.Since(start).Seconds(), len(r.msgs), pr.delivered, pr.missing, pr.duplicates, pr.epoch, pr.converged)
	say("Try more: go run ./cmd/grove testnet run --nodes 8 --scenario partition")
	if pr.missing > 0 || !pr.converged || pr.duplicates > 0 {
		return fmt.Errorf("demo: %d lost, converged %v, %d duplicates: %v", pr.missing, pr.converged, pr.duplicates, pr.problems)
	}
	return nil
}

// possessive is each demo person's possessive pronoun, for the narration.
var possessive = map[string]string{"alice": "her", "bob": "his", "carol": "her", "dave": "his", "erin": "her"}

// sendText sends a given text from p (texts must be unique within a run).
func (r *run) sendText(p *Peer, text string) error {
	r.mu.Lock()
	var rcv []string
	for name := range r.members {
		if name != p.Name {
			rcv = append(rcv, name)
		}
	}
	r.mu.Unlock()
	r.c.rec.sent(text, time.Now())
	if _, err := p.Device().Send(r.ctx, r.group, text); err != nil {
		return fmt.Errorf("%s send: %w", p.Name, err)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, sentMsg{text: text, sender: p.Name, receivers: rcv})
	r.mu.Unlock()
	return nil
}

// settleOrFail is settle that turns a timeout into an error.
func (r *run) settleOrFail(what string) error {
	if err := r.settle(what); err != nil {
		return err
	}
	if pr := r.check(); pr.missing > 0 || !pr.converged {
		return fmt.Errorf("testnet: %s: not settled: %d missing, converged %v: %v", what, pr.missing, pr.converged, pr.problems)
	}
	return nil
}

// waitFor polls cond until it holds or the settle timeout passes.
func (r *run) waitFor(what string, cond func() error) error {
	deadline := time.Now().Add(r.o.SettleTimeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet: %s: %w", what, err)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func mustMembers(ctx context.Context, p *Peer) []api.Member {
	n := p.Device()
	if n == nil {
		return nil
	}
	ms, _ := n.Members(ctx, "garden")
	return ms
}
