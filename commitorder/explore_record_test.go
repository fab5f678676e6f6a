package commitorder

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// xRecorder turns a replayed explorer path into an interaction transcript
// (interaction_test.go's format): commits are declared up front by name,
// every event each Group was stepped with becomes a step line in order,
// snapshots are taken where the node last persisted before a crash, and a
// crash is a restore under a new group name.
type xRecorder struct {
	p       xParams
	names   map[EpochID]string
	cnames  map[CommitID]string
	decls   []string
	items   []xItem
	gname   []string
	renames []int
}

type xItem struct {
	kind   byte // 's' step line, 'm' snapshot mark, 'c' comment, 'r' raw command
	member int
	group  string
	line   string
	used   bool
}

func newRecorder(p xParams) *xRecorder {
	r := &xRecorder{p: p, names: map[EpochID]string{}, cnames: map[CommitID]string{}}
	for i := range p.n {
		r.gname = append(r.gname, string(xNames[i]))
		r.renames = append(r.renames, 1)
	}
	return r
}

func (r *xRecorder) cfgArgs() string {
	c := r.p.cfg
	return fmt.Sprintf("depth=%d max-age=%v grace=%v rate-limit=%d rate-window=%d", c.Depth, c.MaxAge, c.Grace, c.RateLimit, c.RateWindow)
}

func (r *xRecorder) begin() {
	r.names[genesisOf(xNames[:r.p.n]).Eid] = "g0"
}

func (r *xRecorder) commit(c CommitSeen) {
	name := fmt.Sprintf("c%d", len(r.cnames)+1)
	r.cnames[c.Cid] = name
	r.names[c.Eid] = name
	var ms []string
	for _, m := range c.Members {
		ms = append(ms, string(m))
	}
	class := map[Class]string{ClassRemove: "remove", ClassAdd: "add", ClassUpdate: "update"}[c.Class]
	salt := uint64(0)
	for _, id := range c.Intents {
		salt = salt<<8 | uint64(id[0])
	}
	if c.Class == ClassRemove && len(c.Intents) == 0 {
		// A rejoin's external commit: its salt is not an intent.
		return
	}
	r.decls = append(r.decls, fmt.Sprintf("commit %s parent=%s by=%s class=%s members=(%s) salt=%d\n----\n", name, r.names[c.Parent], c.Committer, class, strings.Join(ms, ","), salt))
}

func (r *xRecorder) eid(e EpochID) string {
	if n, ok := r.names[e]; ok {
		return n
	}
	return fmt.Sprintf("%x", e[:4])
}

func (r *xRecorder) comment(s string) {
	r.items = append(r.items, xItem{kind: 'c', line: s})
}

func (r *xRecorder) event(i int, ev Event) {
	var l string
	switch e := ev.(type) {
	case CommitSeen:
		l = "commit " + r.cnames[e.Cid]
		if e.Own {
			var is []string
			for _, id := range e.Intents {
				is = append(is, fmt.Sprint(id[0]))
			}
			l += " own intents=(" + strings.Join(is, ",") + ")"
			if e.Welcome {
				l += " welcome"
			}
		}
	case ParentMissing:
		l = "missing " + r.cnames[e.Cid]
	case AppMessageSeen:
		l = fmt.Sprintf("msg %s %s", e.Sender, r.eid(e.Eid))
	case TipSeen:
		l = fmt.Sprintf("tip %s %s root=%s", e.Member, r.eid(e.Eid), r.eid(e.Root))
	case CiphertextPending:
		l = "ciphertext " + r.eid(e.Eid)
	case Tick:
		l = fmt.Sprintf("tick %v", e.Now.Sub(t0))
	case IntentQueued:
		class := map[Class]string{ClassRemove: "remove", ClassAdd: "add", ClassUpdate: "update"}[e.Class]
		l = fmt.Sprintf("intent %d %s", e.ID[0], class)
	case OutboxAdded:
		l = fmt.Sprintf("outbox %d %s", e.ID[0], r.eid(e.Eid))
	default:
		l = fmt.Sprintf("# unprintable %T", ev)
	}
	r.items = append(r.items, xItem{kind: 's', member: i, group: r.gname[i], line: l})
}

func (r *xRecorder) snapshot(i int) {
	r.items = append(r.items, xItem{kind: 'm', member: i, group: r.gname[i]})
}

func (r *xRecorder) restore(i int) {
	for k := len(r.items) - 1; k >= 0; k-- {
		if it := &r.items[k]; it.kind == 'm' && it.member == i {
			it.used = true
			r.renames[i]++
			as := fmt.Sprintf("%s%d", xNames[i], r.renames[i])
			r.items = append(r.items, xItem{kind: 'r', line: fmt.Sprintf("restore %s as=%s %s\n----\n", it.group, as, r.cfgArgs())})
			r.gname[i] = as
			return
		}
	}
}

func (r *xRecorder) rejoined(i int, gen Genesis, now int) {
	r.renames[i]++
	as := fmt.Sprintf("%s%d", xNames[i], r.renames[i])
	gn := "gen" + as
	r.items = append(r.items, xItem{kind: 'r', line: fmt.Sprintf("# rejoin at %v (the interpreter starts groups at t0)\ngenesis %s commit=%s\n----\n\nnew %s genesis=%s %s\n----\n", time.Duration(now)*xStep, gn, r.eid(gen.Eid), as, gn, r.cfgArgs())})
	r.gname[i] = as
}

// text prints the transcript; expected outputs are left empty for
// `go test -run TestInteraction -rewrite` to fill in and a reviewer to read.
func (r *xRecorder) text(res *xResult) string {
	var b strings.Builder
	msg := strings.ReplaceAll(strings.TrimSpace(res.msg), "\n", "\n# ")
	fmt.Fprintf(&b, "# Found by the explorer (explore_test.go): %s\n#\n# Path: %s\n\n", msg, strings.Join(res.path, "; "))
	var ms []string
	for i := range r.p.n {
		ms = append(ms, string(xNames[i]))
	}
	fmt.Fprintf(&b, "genesis g0 members=(%s)\n----\n\n", strings.Join(ms, ","))
	for _, d := range r.decls {
		b.WriteString(d + "\n")
	}
	fmt.Fprintf(&b, "new %s genesis=g0 %s\n----\n\n", strings.Join(ms, " "), r.cfgArgs())
	open := ""
	closeStep := func() {
		if open != "" {
			b.WriteString("----\n\n")
			open = ""
		}
	}
	for _, it := range r.items {
		switch it.kind {
		case 'c':
			closeStep()
			fmt.Fprintf(&b, "# %s\n", it.line)
		case 'm':
			if it.used {
				closeStep()
				fmt.Fprintf(&b, "snapshot %s\n----\n\n", it.group)
			}
		case 'r':
			closeStep()
			b.WriteString(it.line + "\n")
		case 's':
			if open != it.group {
				closeStep()
				fmt.Fprintf(&b, "step %s\n", it.group)
				open = it.group
			}
			b.WriteString(it.line + "\n")
		}
	}
	closeStep()
	fmt.Fprintf(&b, "state %s\n----\n", strings.Join(r.gname, " "))
	return b.String()
}

// runTranscript runs a transcript through the interaction interpreter
// (expected outputs are ignored) and returns the output of its last
// directive. arrival sets the negative control's hook on every group the
// transcript creates, so a counterexample found with it replays with it.
func runTranscript(t *testing.T, text string, arrival bool) string {
	s := newScript()
	lines := strings.Split(text, "\n")
	last := ""
	for k := 0; k < len(lines); k++ {
		l := strings.TrimSpace(lines[k])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		cmd, args, err := datadriven.ParseLine(l)
		if err != nil {
			t.Fatalf("line %d: %v", k+1, err)
		}
		var in []string
		for k++; k < len(lines) && lines[k] != "----"; k++ {
			in = append(in, lines[k])
		}
		d := &datadriven.TestData{Pos: fmt.Sprintf("transcript:%d", k+1), Cmd: cmd, CmdArgs: args, Input: strings.Join(in, "\n")}
		last = s.run(t, d)
		if arrival {
			for _, g := range s.groups {
				g.cfg.testingOnlyArrivalOrder = true
			}
		}
	}
	return last
}
