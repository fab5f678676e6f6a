package commitorder

import (
	"encoding/hex"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripted scenarios in testdata/*.txt: named
// epochs, commits and member groups are declared, events are stepped into
// groups, and every event's effects are printed as a deterministic
// transcript, with ids printed by name. Regenerate the expectations with
// -rewrite, then review the diff: the transcript is the assertion.
//
// Commands (arguments in brackets are optional):
//
//	genesis <name> members=(a,b) [admins=(a)] [id=<hex>] [epoch=1]
//	        [commit=<name>]     genesis from a known commit (a joiner's Welcome)
//	        [parent-id=<hex> cid=<hex> class=<c> by=<m>]  a joiner's genesis
//	epoch <name> id=<hex> epoch=<n>   an epoch known only by id
//	commit <name> parent=<epoch> by=<m> class=<c> members=(..) [salt=<n>]
//	       [invalid]            the node's MLS verdict is "invalid"
//	chain <p> parent=<epoch> by=(m,..) class=<c> members=(..) n=<n> [salt=<s>]
//	                   commits <p>1..<p>n, each on the one before, committed
//	                   by the by list in turn, salts s, s+1, ...
//	rank <commit>...   which of these siblings the reference order picks
//	valid <self> <commit>...   whether the fork choice counts each
//	                   commit, a child of the group's root
//	new <self>... genesis=<name> [depth= max-age= grace= rate-limit= rate-window=]
//	step <self>...     events below, fed to every named group in order
//	state <self>...    head, root, retained states, done
//	snapshot <self> / restore <self>   MarshalBinary and Unmarshal
//	repeat <self>... n=<n>   the events below n times, {i} standing for
//	                   1..n; prints only a count of each effect per group
//	permutations <self> genesis=<name> [config]   a fresh group per order
//	                   of the events below; prints each final head reached
//	                   and in how many orders
//
// Events: commit <c> [own] [intents=(..)] [welcome] | missing <c> (its
// parent is unknown) | msg <m> <epoch> | pending <epoch> (a ciphertext in it
// we could not read) | tip <m> <epoch> [root=<epoch>] |
// tick <duration since t0> | tick +<duration since the group's last tick>
// | intent <n> <class> | outbox <n> <epoch> | ciphertext <epoch> (an
// application message for an epoch the group does not hold).
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newScript()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

type script struct {
	epochs   map[string]EpochID
	numbers  map[string]uint64
	commits  map[string]CommitSeen
	geneses  map[string]Genesis
	groups   map[string]*Group
	snaps    map[string][]byte
	names    map[EpochID]string
	cidNames map[CommitID]string
	// clock is each group's last tick, for relative ticks.
	clock map[string]time.Duration
}

func newScript() *script {
	return &script{
		epochs: map[string]EpochID{}, numbers: map[string]uint64{},
		commits: map[string]CommitSeen{}, geneses: map[string]Genesis{},
		groups: map[string]*Group{}, snaps: map[string][]byte{},
		names: map[EpochID]string{}, cidNames: map[CommitID]string{},
		clock: map[string]time.Duration{},
	}
}

func (s *script) nameEpoch(name string, eid EpochID, epoch uint64) {
	s.epochs[name], s.numbers[name], s.names[eid] = eid, epoch, name
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "genesis":
		s.genesis(t, d)
		return ""
	case "epoch":
		var id string
		var n uint64
		d.ScanArgs(t, "id", &id)
		d.ScanArgs(t, "epoch", &n)
		s.nameEpoch(s.pos(t, d, 0), hexEpoch(t, id), n)
		return ""
	case "commit":
		name := s.pos(t, d, 0)
		var parent, by, class string
		var salt uint64
		d.ScanArgs(t, "parent", &parent)
		d.ScanArgs(t, "by", &by)
		d.ScanArgs(t, "class", &class)
		d.MaybeScanArgs(t, "salt", &salt)
		c := mkCommit(s.epoch(t, parent), s.numbers[parent]+1, MemberID(by), parseClass(t, class), memberArg(t, d, "members"), salt)
		c.Valid = !d.HasArg("invalid")
		s.addCommit(name, c)
		return ""
	case "chain":
		s.chain(t, d)
		return ""
	case "rank":
		var cs []CommitSeen
		for _, n := range s.selves(d) {
			cs = append(cs, s.commit(t, d, n))
		}
		return fmt.Sprintf("lowest=%s\n", s.selves(d)[lowest(cs)])
	case "valid":
		self := s.pos(t, d, 0)
		g := s.group(t, d, self)
		var b strings.Builder
		for _, n := range s.selves(d)[1:] {
			nd, ok := g.nodes[s.commit(t, d, n).Eid]
			fmt.Fprintf(&b, "%s: %s valid=%v\n", self, n, ok && g.valid(g.root, nd))
		}
		return b.String()
	case "repeat":
		return s.repeat(t, d)
	case "permutations":
		return s.permutations(t, d)
	case "new":
		var gen string
		d.ScanArgs(t, "genesis", &gen)
		g, ok := s.geneses[gen]
		if !ok {
			t.Fatalf("%s: unknown genesis %s", d.Pos, gen)
		}
		cfg := configArgs(t, d)
		for _, self := range s.selves(d) {
			grp, err := New(cfg, MemberID(self), g, t0)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			s.groups[self] = grp
			delete(s.clock, self)
		}
		return ""
	case "step":
		return s.step(t, d)
	case "state":
		var b strings.Builder
		for _, self := range s.selves(d) {
			g := s.group(t, d, self)
			h, he := g.Head()
			r, re := g.Root()
			fmt.Fprintf(&b, "%s: head=%s(%d) root=%s(%d) retained=%d done=%v\n",
				self, s.eidName(h), he, s.eidName(r), re, len(g.Retained()), g.Done())
		}
		return b.String()
	case "snapshot":
		self := s.pos(t, d, 0)
		b, err := s.group(t, d, self).MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		s.snaps[self] = b
		return ""
	case "restore":
		// restore <self> as=<name>: a new group from self's snapshot.
		self := s.pos(t, d, 0)
		var as string
		d.ScanArgs(t, "as", &as)
		g, err := Unmarshal(configArgs(t, d), s.snaps[self])
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		s.groups[as] = g
		s.clock[as] = s.clock[self]
		return ""
	case "same-state":
		// same-state <x> <y>: both groups serialise to the same bytes.
		a, err := s.group(t, d, s.pos(t, d, 0)).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.group(t, d, s.pos(t, d, 1)).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("equal=%v\n", string(a) == string(b))
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func (s *script) addCommit(name string, c CommitSeen) {
	s.commits[name] = c
	s.nameEpoch(name, c.Eid, c.Epoch)
	s.cidNames[c.Cid] = name
}

func (s *script) chain(t *testing.T, d *datadriven.TestData) {
	prefix := s.pos(t, d, 0)
	var parent, class string
	var n, salt uint64
	d.ScanArgs(t, "parent", &parent)
	d.ScanArgs(t, "class", &class)
	d.ScanArgs(t, "n", &n)
	d.MaybeScanArgs(t, "salt", &salt)
	by := memberArg(t, d, "by")
	ms := memberArg(t, d, "members")
	p, ep := s.epoch(t, parent), s.numbers[parent]
	for i := range n {
		c := mkCommit(p, ep+1, by[i%uint64(len(by))], parseClass(t, class), ms, salt+i)
		s.addCommit(fmt.Sprintf("%s%d", prefix, i+1), c)
		p, ep = c.Eid, c.Epoch
	}
}

// repeat feeds the input n times to each group and tallies the effects:
// a long run (50 epochs) is summarised, its end checked with state.
func (s *script) repeat(t *testing.T, d *datadriven.TestData) string {
	var n int
	d.ScanArgs(t, "n", &n)
	var b strings.Builder
	for _, self := range s.selves(d) {
		g := s.group(t, d, self)
		count := map[string]int{}
		for i := 1; i <= n; i++ {
			for _, line := range eventLines(d.Input) {
				line = strings.ReplaceAll(line, "{i}", strconv.Itoa(i))
				eff, err := g.Step(s.event(t, d, self, line))
				if err != nil {
					count["error: "+err.Error()]++
					continue
				}
				if err := g.checkInvariants(); err != nil {
					t.Fatalf("%s: %s after %q: %v", d.Pos, self, line, err)
				}
				for _, e := range eff {
					count[reflect.TypeOf(e).Name()]++
				}
			}
		}
		fmt.Fprintf(&b, "%s: %d rounds\n", self, n)
		for _, k := range slices.Sorted(maps.Keys(count)) {
			fmt.Fprintf(&b, "  %s x%d\n", k, count[k])
		}
	}
	return b.String()
}

// permutations feeds the input, in every order, to a fresh group per
// order, and prints each head reached with the number of orders reaching it.
func (s *script) permutations(t *testing.T, d *datadriven.TestData) string {
	var gen string
	d.ScanArgs(t, "genesis", &gen)
	g0, ok := s.geneses[gen]
	if !ok {
		t.Fatalf("%s: unknown genesis %s", d.Pos, gen)
	}
	cfg := configArgs(t, d)
	lines := eventLines(d.Input)
	var b strings.Builder
	for _, self := range s.selves(d) {
		heads := map[string]int{}
		total := 0
		permutations(len(lines), func(p []int) {
			g, err := New(cfg, MemberID(self), g0, t0)
			if err != nil {
				t.Fatalf("%s: %v", d.Pos, err)
			}
			delete(s.clock, self)
			for _, i := range p {
				if _, err := g.Step(s.event(t, d, self, lines[i])); err != nil {
					t.Fatalf("%s: %s order %v: %q: %v", d.Pos, self, p, lines[i], err)
				}
				if err := g.checkInvariants(); err != nil {
					t.Fatalf("%s: %s order %v after %q: %v", d.Pos, self, p, lines[i], err)
				}
			}
			h, he := g.Head()
			heads[fmt.Sprintf("%s(%d)", s.eidName(h), he)]++
			total++
		})
		fmt.Fprintf(&b, "%s: %d orders\n", self, total)
		for _, h := range slices.Sorted(maps.Keys(heads)) {
			fmt.Fprintf(&b, "  head=%s in %d\n", h, heads[h])
		}
	}
	return b.String()
}

// eventLines is the input's event lines, without blanks and comments.
func eventLines(input string) []string {
	var out []string
	for _, line := range strings.Split(input, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func (s *script) genesis(t *testing.T, d *datadriven.TestData) {
	name := s.pos(t, d, 0)
	var g Genesis
	if d.HasArg("commit") {
		var cn string
		d.ScanArgs(t, "commit", &cn)
		c, ok := s.commits[cn]
		if !ok {
			t.Fatalf("%s: unknown commit %s", d.Pos, cn)
		}
		g = Genesis{Eid: c.Eid, Epoch: c.Epoch, Members: c.Members, HasCommit: true,
			Parent: c.Parent, Class: c.Class, Committer: c.Committer, Cid: c.Cid}
	} else {
		id, epoch := "ee01", uint64(1)
		d.MaybeScanArgs(t, "id", &id)
		d.MaybeScanArgs(t, "epoch", &epoch)
		g = Genesis{Eid: hexEpoch(t, id), Epoch: epoch, Members: memberArg(t, d, "members")}
		if d.HasArg("admins") {
			g.Admins = memberArg(t, d, "admins")
		}
		if d.HasArg("cid") {
			var pid, cid, class, by string
			d.ScanArgs(t, "parent-id", &pid)
			d.ScanArgs(t, "cid", &cid)
			d.ScanArgs(t, "class", &class)
			d.ScanArgs(t, "by", &by)
			g.HasCommit, g.Parent, g.Cid = true, hexEpoch(t, pid), hexCid(t, cid)
			g.Class, g.Committer = parseClass(t, class), MemberID(by)
			s.cidNames[g.Cid] = name
		}
	}
	s.geneses[name] = g
	s.nameEpoch(name, g.Eid, g.Epoch)
}

func (s *script) step(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	for _, self := range s.selves(d) {
		g := s.group(t, d, self)
		for _, line := range eventLines(d.Input) {
			ev := s.event(t, d, self, line)
			fmt.Fprintf(&b, "%s: %s\n", self, line)
			eff, err := g.Step(ev)
			if err != nil {
				fmt.Fprintf(&b, "  error: %v\n", err)
				continue
			}
			if err := g.checkInvariants(); err != nil {
				t.Fatalf("%s: %s after %q: %v", d.Pos, self, line, err)
			}
			for _, e := range eff {
				fmt.Fprintf(&b, "  %s\n", s.effect(e))
			}
		}
	}
	return b.String()
}

func (s *script) event(t *testing.T, d *datadriven.TestData, self, line string) Event {
	f := strings.Fields(line)
	need := func(n int) {
		if len(f) < n {
			t.Fatalf("%s: %q: want %d fields", d.Pos, line, n)
		}
	}
	need(2)
	kv := map[string]string{}
	flags := map[string]bool{}
	for _, a := range f[2:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			flags[a] = true
		}
	}
	switch f[0] {
	case "commit":
		c := s.commit(t, d, f[1])
		if flags["own"] {
			c.Own = true
			c.Welcome = flags["welcome"]
			for _, x := range list(kv["intents"]) {
				c.Intents = append(c.Intents, intentID(t, x))
			}
		}
		return c
	case "missing":
		c := s.commit(t, d, f[1])
		return ParentMissing{Parent: c.Parent, ParentEpoch: c.Epoch - 1, Cid: c.Cid, Class: c.Class, Committer: c.Committer}
	case "msg":
		need(3)
		e := f[2]
		return AppMessageSeen{Sender: MemberID(f[1]), Eid: s.epoch(t, e), Epoch: s.numbers[e]}
	case "pending":
		e := f[1]
		return CiphertextPending{Eid: s.epoch(t, e), Epoch: s.numbers[e]}
	case "tip":
		need(3)
		e := f[2]
		tip := TipSeen{Member: MemberID(f[1]), Eid: s.epoch(t, e), Epoch: s.numbers[e]}
		if r, ok := kv["root"]; ok {
			tip.Root, tip.RootEpoch = s.epoch(t, r), s.numbers[r]
		}
		return tip
	case "tick":
		rel, ok := strings.CutPrefix(f[1], "+")
		dur, err := time.ParseDuration(rel)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		if ok {
			dur += s.clock[self]
		}
		s.clock[self] = dur
		return Tick{Now: at(dur)}
	case "ciphertext":
		e := f[1]
		return CiphertextPending{Eid: s.epoch(t, e), Epoch: s.numbers[e]}
	case "intent":
		need(3)
		return IntentQueued{ID: intentID(t, f[1]), Class: parseClass(t, f[2])}
	case "outbox":
		need(3)
		n, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		return OutboxAdded{ID: MsgID{byte(n)}, Eid: s.epoch(t, f[2])}
	}
	t.Fatalf("%s: unknown event %q", d.Pos, line)
	return nil
}

// effect prints an effect with every non-zero field, ids by name.
func (s *script) effect(e Effect) string {
	v := reflect.ValueOf(e)
	var parts []string
	for i := range v.NumField() {
		fv := v.Field(i)
		if fv.IsZero() {
			continue
		}
		parts = append(parts, v.Type().Field(i).Name+"="+s.value(fv))
	}
	return strings.TrimSpace(v.Type().Name() + " " + strings.Join(parts, " "))
}

func (s *script) value(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case EpochID:
		return s.eidName(x)
	case CommitID:
		if n, ok := s.cidNames[x]; ok {
			return n
		}
		return hex.EncodeToString(x[:4])
	case MsgID:
		return "m" + smallID(x[:])
	case IntentID:
		return "i" + smallID(x[:])
	case MemberID:
		return string(x)
	}
	if v.Kind() == reflect.Slice {
		var out []string
		for i := range v.Len() {
			out = append(out, s.value(v.Index(i)))
		}
		return "(" + strings.Join(out, ",") + ")"
	}
	return fmt.Sprint(v.Interface())
}

// smallID prints an id whose only non-zero byte is the first as that
// byte, anything else in hex.
func smallID(b []byte) string {
	if slices.ContainsFunc(b[1:], func(c byte) bool { return c != 0 }) {
		return hex.EncodeToString(b)
	}
	return strconv.Itoa(int(b[0]))
}

func (s *script) eidName(e EpochID) string {
	if n, ok := s.names[e]; ok {
		return n
	}
	return hex.EncodeToString(e[:4])
}

func (s *script) pos(t *testing.T, d *datadriven.TestData, i int) string {
	var ps []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			ps = append(ps, a.Key)
		}
	}
	if i >= len(ps) {
		t.Fatalf("%s: %s needs %d names", d.Pos, d.Cmd, i+1)
	}
	return ps[i]
}

func (s *script) selves(d *datadriven.TestData) []string {
	var ps []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			ps = append(ps, a.Key)
		}
	}
	return ps
}

func (s *script) group(t *testing.T, d *datadriven.TestData, self string) *Group {
	g, ok := s.groups[self]
	if !ok {
		t.Fatalf("%s: no group %s", d.Pos, self)
	}
	return g
}

func (s *script) epoch(t *testing.T, name string) EpochID {
	e, ok := s.epochs[name]
	if !ok {
		t.Fatalf("unknown epoch %s", name)
	}
	return e
}

func (s *script) commit(t *testing.T, d *datadriven.TestData, name string) CommitSeen {
	c, ok := s.commits[name]
	if !ok {
		t.Fatalf("%s: unknown commit %s", d.Pos, name)
	}
	c.Members = slices.Clone(c.Members)
	return c
}

func configArgs(t *testing.T, d *datadriven.TestData) Config {
	var cfg Config
	dur := func(key string, dst *time.Duration) {
		var v string
		if d.MaybeScanArgs(t, key, &v) {
			x, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %s: %v", d.Pos, key, err)
			}
			*dst = x
		}
	}
	d.MaybeScanArgs(t, "depth", &cfg.Depth)
	d.MaybeScanArgs(t, "rate-limit", &cfg.RateLimit)
	d.MaybeScanArgs(t, "rate-window", &cfg.RateWindow)
	dur("max-age", &cfg.MaxAge)
	dur("grace", &cfg.Grace)
	return cfg
}

func memberArg(t *testing.T, d *datadriven.TestData, key string) []MemberID {
	a, ok := d.Arg(key)
	if !ok {
		t.Fatalf("%s: missing %s", d.Pos, key)
	}
	return ids(a.Vals...)
}

func list(s string) []string {
	s = strings.Trim(s, "()")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func intentID(t *testing.T, s string) IntentID {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		t.Fatalf("intent id %q: %v", s, err)
	}
	return IntentID{byte(n)}
}

func hexEpoch(t *testing.T, s string) EpochID {
	var out EpochID
	copy(out[:], hexBytes(t, s, len(out)))
	return out
}

func hexCid(t *testing.T, s string) CommitID {
	var out CommitID
	copy(out[:], hexBytes(t, s, len(out)))
	return out
}

func hexBytes(t *testing.T, s string, n int) []byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) > n {
		t.Fatalf("id %q: want hex of at most %d bytes", s, n)
	}
	return b
}

func parseClass(t *testing.T, s string) Class {
	switch s {
	case "remove":
		return ClassRemove
	case "add":
		return ClassAdd
	case "update":
		return ClassUpdate
	}
	t.Fatalf("unknown class %q", s)
	return 0
}
