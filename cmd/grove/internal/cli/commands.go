package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"grove/node/api"
)

// maxCodeInput bounds `join -`: an invite code is well under 4 KiB.
const maxCodeInput = 16 << 10

func (e *env) cmdStatus(args []string) error {
	f := e.flags("status")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		st, err := c.Status(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(st)
		}
		t := &table{}
		t.row("name", st.Name)
		t.row("peer id", st.PeerID)
		t.row("fingerprint", st.Fingerprint)
		if st.Account != "" {
			t.row("device", sanitize(st.Device))
			t.row("account", st.Account)
		}
		if len(st.Addrs) == 0 {
			t.row("addrs", "none")
		}
		for i, a := range st.Addrs {
			label := ""
			if i == 0 {
				label = "addrs"
			}
			t.row(label, a)
		}
		t.row("groups", fmt.Sprint(st.Groups))
		t.row("peers", fmt.Sprint(st.Peers))
		t.row("started", e.time(st.StartedAt))
		t.row("version", st.Version)
		// One line per group: how many members it can reach now.
		gs, err := c.Groups(e.ctx)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.State == api.GroupActive || g.State == "" {
				t.row("group "+sanitize(g.Name), e.reachText(g.Reach))
			}
		}
		t.write(e.stdout)
		return nil
	})
}

func (e *env) cmdGroupCreate(args []string) error {
	f := e.flags("group create")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		g, err := c.CreateGroup(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(g)
		}
		fmt.Fprintf(e.stdout, "created %s %s\n", sanitize(g.Name), g.ID)
		return nil
	})
}

func (e *env) cmdGroupList(args []string) error {
	f := e.flags("group list")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		gs, err := c.Groups(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(gs))
		}
		if len(gs) == 0 {
			fmt.Fprintln(e.stdout, "no groups")
			return nil
		}
		t := &table{}
		t.row("NAME", "ID", "EPOCH", "MEMBERS", "REACH", "ROLE", "UNREAD", "STATE")
		var cut []string
		for _, g := range gs {
			role := "member"
			if g.Admin {
				role = "admin"
			}
			state := "ok"
			switch {
			case g.State == api.GroupRemoved:
				role, state = "-", "removed"
			case g.State == api.GroupRemoving:
				role, state = "-", "removal pending"
			case g.State == api.GroupRejoinNeeded:
				state = "rejoin needed"
			case g.Sync.CatchingUp && g.Sync.Total > 0:
				state = fmt.Sprintf("catching up %d/%d", g.Sync.Done, g.Sync.Total)
			case g.Sync.CatchingUp:
				state = "catching up" // progress unknown
			}
			reach := "-"
			if g.State == api.GroupActive || g.State == "" {
				reach = fmt.Sprintf("%d/%d", g.Reach.Reachable, g.Reach.Others)
				if g.Reach.CutOff() {
					cut = append(cut, sanitize(g.Name)+": "+e.reachText(g.Reach))
				}
			}
			unread := fmt.Sprint(g.Unread)
			if g.Muted {
				unread += " (muted)"
			}
			t.row(sanitize(g.Name), shortID(g.ID), fmt.Sprint(g.Epoch), fmt.Sprint(g.Members), reach, role, unread, state)
		}
		t.write(e.stdout)
		for _, line := range cut {
			fmt.Fprintln(e.stdout, line)
		}
		return nil
	})
}

// reachText says in words how many members a group can reach.
func (e *env) reachText(r api.Reach) string {
	switch {
	case r.Others == 0:
		return "no other members"
	case r.CutOff():
		s := "no member reachable"
		if !r.CutOffSince.IsZero() {
			s += " since " + e.time(r.CutOffSince)
		}
		return s + fmt.Sprintf(", %d %s waiting", r.Waiting, plural(r.Waiting, "message", "messages"))
	}
	return fmt.Sprintf("%d of %d members reachable", r.Reachable, r.Others)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (e *env) cmdInvite(args []string) error {
	f := e.flags("invite")
	asJSON := f.Bool("json", false, "")
	expires := f.Duration("expires", 0, "")
	uses := f.Int("uses", 1, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *expires < 0 || *expires > api.MaxInviteExpiry {
		return usagef("invite: --expires must be between 1s and %v", api.MaxInviteExpiry)
	}
	if *uses < 1 || *uses > api.MaxInviteUses {
		return usagef("invite: --uses must be between 1 and %d", api.MaxInviteUses)
	}
	return e.withClient(func(c *api.Client) error {
		inv, err := c.InviteWith(e.ctx, api.InviteRequest{Group: pos[0], Expires: *expires, Uses: *uses})
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(inv)
		}
		// The code alone on stdout, so that code=$(grove invite g) works.
		fmt.Fprintln(e.stdout, inv.Code)
		return nil
	})
}

func (e *env) cmdInviteList(args []string) error {
	f := e.flags("invite list")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		invs, err := c.Invites(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(invs))
		}
		if len(invs) == 0 {
			fmt.Fprintln(e.stdout, "no open invites")
			return nil
		}
		names := e.groupNames(c)
		t := &table{}
		t.row("ID", "GROUP", "EXPIRES", "STATE")
		for _, inv := range invs {
			state := "open"
			switch {
			case inv.Uses > 1:
				state = fmt.Sprintf("%d of %d uses redeemed", inv.Redeemed, inv.Uses)
			case inv.Used:
				state = "redeemed, joining"
			}
			t.row(sanitize(inv.ID), names(inv.Group), e.time(inv.Expires), state)
		}
		t.write(e.stdout)
		return nil
	})
}

func (e *env) cmdInviteRevoke(args []string) error {
	f := e.flags("invite revoke")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		if err := c.RevokeInvite(e.ctx, pos[0]); err != nil {
			return err
		}
		if *asJSON {
			return e.json(struct {
				ID      string `json:"id"`
				Revoked bool   `json:"revoked"`
			}{pos[0], true})
		}
		fmt.Fprintf(e.stdout, "revoked invite %s\n", sanitize(pos[0]))
		return nil
	})
}

// DefaultJoinTimeout is how long join waits to be welcomed by default. The
// inviter sends the Welcome only once the Add is final, which with the
// node's default finality age takes about two minutes.
const DefaultJoinTimeout = 5 * time.Minute

func (e *env) cmdJoin(args []string) error {
	f := e.flags("join")
	timeout := f.Duration("timeout", DefaultJoinTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("join: --timeout must be positive")
	}
	code := pos[0]
	if code == "-" {
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxCodeInput))
		if err != nil {
			return fmt.Errorf("join: reading standard input: %w", err)
		}
		// A code copied where it wrapped (grove chat) spans lines.
		if code = strings.Join(strings.Fields(string(b)), ""); code == "" {
			return usagef("join: no invite code on standard input")
		}
	}
	return e.withClient(func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(e.ctx, *timeout)
		defer cancel()
		// Progress: the daemon reports what the join waits for on the
		// event stream; the last report also explains a timeout.
		var last progressNote
		stopProgress := e.joinProgress(ctx, c, &last)
		g, err := c.Join(ctx, strings.Join(strings.Fields(code), ""))
		stopProgress()
		if err != nil {
			if e.ctx.Err() != nil {
				return e.ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, api.ErrTimeout) {
				if w := last.get(); w != "" {
					return fmt.Errorf("join: not welcomed within %v: last heard: %s (run join again with the same code to retry)", *timeout, w)
				}
				return fmt.Errorf("join: not welcomed within %v (is the inviter's daemon running and reachable? run join again with the same code to retry)", *timeout)
			}
			return err
		}
		if *asJSON {
			return e.json(g)
		}
		fmt.Fprintf(e.stdout, "joined %s %s (%d members)\n", sanitize(g.Name), g.ID, g.Members)
		return nil
	})
}

// progressNote is the newest join progress report.
type progressNote struct {
	mu   sync.Mutex
	text string
}

func (p *progressNote) set(s string) { p.mu.Lock(); p.text = s; p.mu.Unlock() }
func (p *progressNote) get() string  { p.mu.Lock(); defer p.mu.Unlock(); return p.text }

// joinProgress prints the daemon's join progress reports to stderr until
// the returned function is called (which waits for the printer to end).
func (e *env) joinProgress(ctx context.Context, c *api.Client, last *progressNote) func() {
	ctx, cancel := context.WithCancel(ctx)
	evs, err := c.Subscribe(ctx)
	if err != nil {
		cancel()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range evs {
			if ev.Kind == api.EventJoinProgress && ev.Detail != "" {
				d := sanitizeText(ev.Detail)
				last.set(d)
				fmt.Fprintf(e.stderr, "%s…\n", d)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (e *env) cmdSend(args []string) error {
	f := e.flags("send")
	asJSON := f.Bool("json", false, "")
	reply := f.String("reply", "", "")
	file := f.String("file", "", "")
	pos, err := f.parse(args, 1, 2)
	if err != nil {
		return err
	}
	if *file != "" && len(pos) == 1 {
		// A file needs no text (conv.go).
		return e.withClient(func(c *api.Client) error {
			return e.post(c, api.PostRequest{Group: pos[0], ReplyTo: *reply, File: *file}, *asJSON)
		})
	}
	if len(pos) != 2 {
		_, err := f.parse(nil, 2, 2) // the usage error
		return err
	}
	text := pos[1]
	if text == "-" {
		// A message, not a file transfer: the read is bounded, and what
		// fills the bound is too long however many newlines it ends in.
		const bound = 2 * api.MaxTextBytes
		b, err := io.ReadAll(io.LimitReader(e.stdin, bound))
		if err != nil {
			return fmt.Errorf("send: reading standard input: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
		if len(b) == bound || len(text) > api.MaxTextBytes {
			return fmt.Errorf("send: message longer than the limit of %d bytes", api.MaxTextBytes)
		}
	}
	if strings.TrimSpace(text) == "" {
		return usagef("send: empty message")
	}
	if err := api.CheckText(text); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return e.withClient(func(c *api.Client) error {
		if *reply != "" || *file != "" {
			return e.post(c, api.PostRequest{Group: pos[0], Text: text, ReplyTo: *reply, File: *file}, *asJSON)
		}
		m, err := c.Send(e.ctx, pos[0], text)
		switch {
		case err != nil:
			return err
		case *asJSON:
			return e.json(m)
		case m.Queued:
			fmt.Fprintln(e.stdout, "queued: no member reachable")
		}
		return nil
	})
}

func (e *env) cmdLog(args []string) error {
	f := e.flags("log")
	asJSON := f.Bool("json", false, "")
	limit := f.Int("limit", 50, "")
	followFlag := f.Bool("follow", false, "")
	f.BoolVar(followFlag, "f", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *limit <= 0 {
		return usagef("log: --limit must be positive")
	}
	return e.withClient(func(c *api.Client) error {
		if *followFlag {
			return e.follow(c, pos[0], *limit, *asJSON)
		}
		ms, err := c.Log(e.ctx, pos[0], *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := e.json(orEmpty(ms)); err != nil {
				return err
			}
		} else {
			if len(ms) < *limit {
				// The log starts here: say why it starts no earlier.
				if gs, err := c.Groups(e.ctx); err == nil {
					if g, err := resolveGroup(gs, pos[0]); err == nil {
						e.joinedNotice(g)
					}
				}
			}
			t := &table{}
			for _, m := range ms {
				t.row(e.time(m.Time), sanitize(m.Sender), messageText(m))
			}
			t.write(e.stdout)
		}
		// What log showed is read: the group's unread count restarts.
		return c.MarkRead(e.ctx, pos[0])
	})
}

// messageText is a message's text for a terminal, with its state marks.
func messageText(m api.Message) string {
	text := sanitizeText(m.Text)
	var marks []string
	if m.Pending {
		marks = append(marks, "pending")
	}
	if m.Orphaned {
		marks = append(marks, "orphaned")
	}
	if m.Resent {
		marks = append(marks, "resent")
	}
	if len(marks) > 0 {
		text += " (" + strings.Join(marks, ", ") + ")"
	}
	return conversationMarks(m, text)
}

func (e *env) cmdSearch(args []string) error {
	f := e.flags("search")
	asJSON := f.Bool("json", false, "")
	group := f.String("group", "", "")
	limit := f.Int("limit", 0, "")
	from := f.String("from", "", "")
	sinceFlag := f.String("since", "", "")
	untilFlag := f.String("until", "", "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	req := api.SearchRequest{Query: pos[0], Group: *group, Limit: *limit, Sender: *from}
	if *sinceFlag != "" {
		if req.Since, err = parseTime("--since", *sinceFlag, e.r.now(), e.r.loc()); err != nil {
			return usagef("search: %v", err)
		}
	}
	if *untilFlag != "" {
		if req.Until, err = parseTime("--until", *untilFlag, e.r.now(), e.r.loc()); err != nil {
			return usagef("search: %v", err)
		}
	}
	if !req.Since.IsZero() && !req.Until.IsZero() && req.Until.Before(req.Since) {
		return usagef("search: --until is before --since")
	}
	return e.withClient(func(c *api.Client) error {
		res, err := c.Search(e.ctx, req)
		if err != nil {
			return err
		}
		if *asJSON {
			res.Hits = orEmpty(res.Hits)
			return e.json(res)
		}
		if len(res.Hits) == 0 {
			fmt.Fprintln(e.stdout, "no matches")
			return nil
		}
		names := e.groupNames(c)
		t := &table{}
		for _, h := range res.Hits {
			t.row(e.time(h.Message.Time), names(h.Message.Group), sanitize(h.Message.Sender), messageText(h.Message))
		}
		t.write(e.stdout)
		return nil
	})
}

// groupNames returns a function naming groups by id, for output that lists
// messages of several groups.
func (e *env) groupNames(c *api.Client) func(id string) string {
	names := map[string]string{}
	if gs, err := c.Groups(e.ctx); err == nil {
		for _, g := range gs {
			names[g.ID] = sanitize(g.Name)
		}
	}
	return func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return shortID(id)
	}
}

func (e *env) cmdMembers(args []string) error {
	f := e.flags("members")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ms, err := c.Members(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(ms))
		}
		t := &table{}
		t.row("NAME", "ROLE", "FINGERPRINT", "PEER")
		// A person with several devices here shows each: "alice (laptop)".
		perAccount := map[string]int{}
		for _, m := range ms {
			perAccount[m.Account]++
		}
		for _, m := range ms {
			name := sanitize(m.Name)
			if m.Device != "" && perAccount[m.Account] > 1 {
				name += " (" + sanitize(m.Device) + ")"
			}
			if m.Self {
				name += " (you)"
			}
			role := "member"
			if m.Admin {
				role = "admin"
			}
			t.row(name, role, sanitize(m.Fingerprint), sanitize(m.PeerID))
		}
		t.write(e.stdout)
		return nil
	})
}

// DefaultChangeTimeout is how long rotate and remove wait by default for
// the group to confirm the change.
const DefaultChangeTimeout = 30 * time.Second

func (e *env) cmdRemove(args []string) error {
	f := e.flags("remove")
	timeout := f.Duration("timeout", DefaultChangeTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return err
	}
	done := fmt.Sprintf("removed %s from %s", sanitize(pos[1]), sanitize(pos[0]))
	return e.change(api.ChangeRequest{Group: pos[0], Kind: api.ChangeRemove, Member: pos[1]}, *timeout, *asJSON, done)
}

func (e *env) cmdRotate(args []string) error {
	f := e.flags("rotate")
	timeout := f.Duration("timeout", DefaultChangeTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.change(api.ChangeRequest{Group: pos[0], Kind: api.ChangeRotate}, *timeout, *asJSON, "rotated your keys in "+sanitize(pos[0]))
}

// change requests req, waits up to timeout for the group to confirm it and
// says what happened: done (and in which epoch) or what it still waits for.
func (e *env) change(req api.ChangeRequest, timeout time.Duration, asJSON bool, done string) error {
	if timeout < 0 || timeout > api.MaxAwait {
		return usagef("--timeout must be 0..%v", api.MaxAwait)
	}
	return e.withClient(func(c *api.Client) error {
		ch, err := c.RequestChange(e.ctx, req)
		if err != nil {
			return err
		}
		if timeout > 0 {
			if ch, err = c.AwaitChange(e.ctx, ch.Group, ch.ID, timeout); err != nil {
				return err
			}
		}
		if asJSON {
			return e.json(ch)
		}
		switch ch.State {
		case api.ChangeDone:
			fmt.Fprintf(e.stdout, "%s (epoch %d)\n", done, ch.Epoch)
		case api.ChangeCommitted:
			fmt.Fprintf(e.stdout, "requested; committed in epoch %d, not yet confirmed (still waiting for %s)\n", ch.Epoch, sanitizeText(ch.Waiting))
		default:
			if ch.Waiting == "" {
				fmt.Fprintln(e.stdout, "requested; not yet committed")
			} else {
				fmt.Fprintf(e.stdout, "requested; not yet committed (still waiting for %s)\n", sanitizeText(ch.Waiting))
			}
		}
		return nil
	})
}

// leaveResult is what leave --json prints.
type leaveResult struct {
	Group string `json:"group"` // as given
	Left  bool   `json:"left"`
}

func (e *env) cmdLeave(args []string) error {
	f := e.flags("leave")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		if err := c.Leave(e.ctx, pos[0]); err != nil {
			return err
		}
		if *asJSON {
			return e.json(leaveResult{Group: pos[0], Left: true})
		}
		fmt.Fprintf(e.stdout, "left %s\n", sanitize(pos[0]))
		return nil
	})
}

func (e *env) cmdPeers(args []string) error {
	f := e.flags("peers")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ps, err := c.Peers(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(ps))
		}
		if len(ps) == 0 {
			fmt.Fprintln(e.stdout, "no peers")
			return nil
		}
		t := &table{}
		t.row("PEER", "NAME", "GROUPS", "DIRECTION", "TRANSPORT", "ADDRESS")
		for _, p := range ps {
			addr, dir, transport := "-", "-", "-"
			if len(p.Addrs) > 0 {
				addr = p.Addrs[0]
			}
			if len(p.Conns) > 0 {
				// The first connection is the one shown; more are
				// counted (libp2p keeps a spare one at times).
				c := p.Conns[0]
				addr, dir, transport = c.Addr, c.Direction, c.Transport
				if len(p.Conns) > 1 {
					addr += fmt.Sprintf(" (+%d more)", len(p.Conns)-1)
				}
			}
			name := p.Name
			if name == "" {
				name = "-"
			}
			groups := strings.Join(p.Groups, ",")
			if groups == "" {
				groups = "-"
			}
			t.row(sanitize(p.ID), sanitize(name), sanitize(groups), sanitize(dir), sanitize(transport), sanitize(addr))
		}
		t.write(e.stdout)
		return nil
	})
}

func (e *env) cmdConnect(args []string) error {
	f := e.flags("connect")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		p, err := c.ConnectPeer(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(p)
		}
		what := sanitize(p.ID)
		if p.Name != "" {
			what = sanitize(p.Name) + " (" + what + ")"
		}
		how := ""
		if len(p.Conns) > 0 {
			how = fmt.Sprintf(" (%s, %s)", sanitize(p.Conns[0].Transport), sanitize(p.Conns[0].Direction))
		}
		fmt.Fprintf(e.stdout, "connected to %s%s\n", what, how)
		return nil
	})
}

func (e *env) cmdExport(args []string) error {
	f := e.flags("export")
	sinceFlag := f.String("since", "", "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	var since time.Time
	if *sinceFlag != "" {
		if since, err = parseSince(*sinceFlag, e.r.now(), e.r.loc()); err != nil {
			return usagef("export: %v", err)
		}
	}
	return e.withClient(func(c *api.Client) error {
		w := bufio.NewWriter(e.stdout)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		err := c.Export(e.ctx, pos[0], since, func(m api.Message) error { return enc.Encode(m) })
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		return err
	})
}

// parseSince is parseTime for --since.
func parseSince(s string, now time.Time, loc *time.Location) (time.Time, error) {
	return parseTime("--since", s, now, loc)
}

// parseTime accepts an RFC 3339 time, a date (YYYY-MM-DD, local midnight)
// or a duration back from now (24h, 90m); flag names the flag in errors.
func parseTime(flag, s string, now time.Time, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, loc); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("bad %s %q (want an RFC 3339 time, YYYY-MM-DD or a duration like 24h)", flag, s)
}

// json writes v as one line of JSON. The field names are the api package's
// and are stable.
func (e *env) json(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// time formats t for humans in the runner's time zone.
func (e *env) time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(e.r.loc()).Format("2006-01-02 15:04:05")
}
