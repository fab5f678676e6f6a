package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"grove/node/api"
)

// errDaemonStopped ends log --follow and watch when the daemon goes away.
var errDaemonStopped = errors.New("the daemon stopped (the stream of new messages ended)")

// resolveGroup finds the group ref names, the way the daemon does: an id, a
// name, or an id prefix of at least 6 characters.
func resolveGroup(gs []api.Group, ref string) (api.Group, error) {
	var found []api.Group
	for _, g := range gs {
		if strings.EqualFold(g.ID, ref) {
			return g, nil
		}
		if g.Name == ref {
			found = append(found, g)
		}
	}
	if len(found) == 0 && len(ref) >= 6 {
		for _, g := range gs {
			if strings.HasPrefix(g.ID, strings.ToLower(ref)) {
				found = append(found, g)
			}
		}
	}
	switch len(found) {
	case 0:
		return api.Group{}, api.Errorf(api.CodeNotFound, "no group %q", ref)
	case 1:
		return found[0], nil
	}
	return api.Group{}, api.Errorf(api.CodeInvalidArgument, "group name %q is ambiguous: use its id", ref)
}

// follow prints the newest limit messages of group, then every new one as
// it arrives, until the user interrupts (nil) or the daemon stops. With
// asJSON each message is one line of JSON. What is printed is marked read.
func (e *env) follow(c *api.Client, group string, limit int, asJSON bool) error {
	gs, err := c.Groups(e.ctx)
	if err != nil {
		return err
	}
	g, err := resolveGroup(gs, group)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	// Subscribe before reading the log, so that nothing sent in between is
	// missed; what both deliver is printed once.
	events, err := c.Subscribe(ctx)
	if err != nil {
		return err
	}
	ms, err := c.Log(ctx, g.ID, limit)
	if err != nil {
		return err
	}
	if !asJSON && len(ms) < limit {
		e.joinedNotice(g)
	}
	seen := make(map[string]bool)
	show := func(m api.Message) error {
		if seen[m.ID] {
			return nil
		}
		seen[m.ID] = true
		if asJSON {
			return e.json(m)
		}
		t := &table{}
		t.row(e.time(m.Time), sanitize(m.Sender), messageText(m))
		t.write(e.stdout)
		return nil
	}
	for _, m := range ms {
		if err := show(m); err != nil {
			return err
		}
	}
	if err := c.MarkRead(ctx, g.ID); err != nil {
		return err
	}
	for {
		select {
		case <-e.ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return e.streamEnded()
			}
			if ev.Group != g.ID {
				continue
			}
			switch {
			case ev.Kind == api.EventMessage && ev.Message != nil:
				if err := show(*ev.Message); err != nil {
					return err
				}
				if err := c.MarkRead(ctx, g.ID); err != nil && e.ctx.Err() == nil {
					return err
				}
			case ev.Kind == api.EventRemoved:
				return fmt.Errorf("this device was removed from %s", sanitize(g.Name))
			}
		}
	}
}

// joinedNotice tells a member who joined g through an invite, above the
// oldest message of its log, that what the group said before is not on
// this device. (Members do not hand history to newcomers.)
func (e *env) joinedNotice(g api.Group) {
	if g.JoinedAt.IsZero() {
		return
	}
	fmt.Fprintf(e.stdout, "-- you joined %s on %s: messages from before are not available on this device --\n", sanitize(g.Name), e.time(g.JoinedAt))
}

// streamEnded is what following the event stream returns once the stream
// closed: nothing when the user stopped us, else that the daemon went away.
func (e *env) streamEnded() error {
	if e.ctx.Err() != nil {
		return nil
	}
	return errDaemonStopped
}

func (e *env) cmdWatch(args []string) error {
	f := e.flags("watch")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		events, err := c.Subscribe(ctx)
		if err != nil {
			return err
		}
		names := e.groupNames(c)
		for {
			select {
			case <-e.ctx.Done():
				return nil
			case ev, ok := <-events:
				if !ok {
					return e.streamEnded()
				}
				if *asJSON {
					if err := e.json(ev); err != nil {
						return err
					}
					continue
				}
				if ev.Kind == api.EventGroupJoined {
					names = e.groupNames(c) // a group this device just joined
				}
				if line := e.eventLine(ev, names); line != "" {
					fmt.Fprintln(e.stdout, line)
				}
			}
		}
	})
}

// eventLine is one line for watch: messages and the events a person
// notices (members coming and going, forks, losing every peer); the
// bookkeeping events (epochs, sync progress, peer churn) are left to --json.
func (e *env) eventLine(ev api.Event, names func(string) string) string {
	when, group := e.time(ev.Time), names(ev.Group)
	member := func() string {
		if ev.Member == nil {
			return "a member"
		}
		return sanitize(ev.Member.Name)
	}
	switch ev.Kind {
	case api.EventMessage:
		if ev.Message == nil {
			return ""
		}
		m := *ev.Message
		t := &table{}
		t.row(e.time(m.Time), group, sanitize(m.Sender), messageText(m))
		var b strings.Builder
		t.write(&b)
		return strings.TrimSuffix(b.String(), "\n")
	case api.EventMemberAdded:
		return fmt.Sprintf("%s  %s  * %s joined", when, group, member())
	case api.EventMemberRemoved:
		return fmt.Sprintf("%s  %s  * %s left or was removed", when, group, member())
	case api.EventRemoved:
		return fmt.Sprintf("%s  %s  * this device was removed from the group", when, group)
	case api.EventGroupJoined:
		return fmt.Sprintf("%s  %s  * joined the group", when, group)
	case api.EventForkResolved:
		return fmt.Sprintf("%s  %s  * concurrent changes were settled: %s", when, group, sanitizeText(ev.Detail))
	case api.EventReach, api.EventGroupChanged:
		return fmt.Sprintf("%s  %s  * %s", when, group, sanitizeText(ev.Detail))
	}
	return ""
}
