package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"grove/node/api"
	"grove/p2p"
)

// topicRecorder is an outsider's peer as a tester would write it: a plain
// go-libp2p host with its own GossipSub, subscribed to topic names it
// guessed or was told, recording every payload it is sent. Its GossipSub
// takes unsigned messages with content ids, as Grove's topics carry
// (p2p/pubsub.go); with the library's default policy it would drop them
// all and the test would prove nothing.
type topicRecorder struct {
	h      host.Host
	ps     *pubsub.PubSub
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	topic string
	at    time.Time
	data  []byte
}

func newTopicRecorder(t *testing.T) *topicRecorder {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gsp := pubsub.DefaultGossipSubParams()
	gsp.HeartbeatInterval = 100 * time.Millisecond
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithGossipSubParams(gsp),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return p2p.MessageID(m.Data) }))
	if err != nil {
		cancel()
		h.Close()
		t.Fatal(err)
	}
	r := &topicRecorder{h: h, ps: ps, cancel: cancel}
	t.Cleanup(func() {
		r.cancel()
		r.wg.Wait()
		r.h.Close()
	})
	return r
}

// subscribe records every payload on topic from now on.
func (r *topicRecorder) subscribe(t *testing.T, name string) {
	t.Helper()
	topic, err := r.ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer topic.Close()
		defer sub.Cancel()
		<-ctx.Done()
	}()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, recorded{topic: name, at: time.Now(), data: bytes.Clone(m.Data)})
			r.mu.Unlock()
		}
	}()
	prev := r.cancel
	r.cancel = func() { cancel(); prev() }
}

func (r *topicRecorder) connect(t *testing.T, ctx context.Context, n *Node) {
	t.Helper()
	if err := r.h.Connect(ctx, n.AddrInfo()); err != nil {
		t.Fatal(err)
	}
}

func (r *topicRecorder) recording() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// secrets is what must not show on the topic: each needle with what it is.
type secrets map[string][]byte

func (s secrets) add(what string, b []byte) {
	if len(b) > 0 {
		s[what] = bytes.Clone(b)
	}
}

// find returns what of s occurs in b.
func (s secrets) find(b []byte) []string {
	var out []string
	for what, needle := range s {
		if bytes.Contains(b, needle) {
			out = append(out, what)
		}
	}
	return out
}

// notePrivate adds what the group's state says about n's view of group
// right now: member names, peer ids (text and binary), credentials and
// signature keys, member count, the epoch number and id, the group id.
func notePrivate(t *testing.T, ctx context.Context, s secrets, n *Node, group string) {
	t.Helper()
	ms, err := n.Members(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		s.add("name "+m.Name, []byte(m.Name))
		s.add("peer id "+m.Name, []byte(m.PeerID))
		if p, err := peer.Decode(m.PeerID); err == nil {
			s.add("binary peer id "+m.Name, []byte(p))
		}
	}
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.do(ctx, func() error {
		eid, g := a.head()
		if g == nil {
			return fmt.Errorf("%s has no head", n.self.Name)
		}
		for _, m := range g.Members() {
			s.add("credential "+hex.EncodeToString(m.Identity[:4]), m.Identity)
			s.add("signature key "+hex.EncodeToString(m.SignatureKey[:4]), m.SignatureKey)
		}
		s.add(fmt.Sprintf("epoch number %d", g.Epoch()), binary.BigEndian.AppendUint64(nil, g.Epoch()))
		s.add(fmt.Sprintf("epoch id of %d", g.Epoch()), eid[:])
		s.add(fmt.Sprintf("epoch id of %d (hex)", g.Epoch()), []byte(hex.EncodeToString(eid[:])))
		s.add("group id", a.id)
		s.add("group id (hex)", []byte(a.hexID))
		// A member count as the ratchet tree and GroupInfo encode it
		// would be too short to scan for; the sizes check below covers
		// what lengths may say.
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOutsiderAndRemovedMemberLearnNothing is issue 19's proof. An outsider
// runs a plain go-libp2p GossipSub peer on the topic name it can compute
// from the group id (an invite code carries it) and, to be strict, on the
// group's real topic name as if it had leaked, connected to every member,
// for a session with joins, chat, key rotations and a removal. Nothing it
// records names a member, a peer id, a credential or signature key, an
// epoch number or id, the group id or any chat text; every payload has a
// bucket size. Carol, removed halfway, keeps what she knew (the group
// secret, her epochs' keys) and applies it to everything sent after her
// removal: she reads nothing either, not even the framing. As a control,
// the same scan over a GroupInfo of the group (what a PublicMessage
// Commit showed in the clear: credentials, the tree) finds the names,
// peer ids and epoch, so the scan can fail.
func TestOutsiderAndRemovedMemberLearnNothing(t *testing.T) {
	checkLeaks(t)
	tag := make([]byte, 4)
	rand.Read(tag)
	sfx := hex.EncodeToString(tag)
	names := []string{"alice" + sfx, "bob" + sfx, "carol" + sfx, "dave" + sfx}
	var ns []*Node
	for _, name := range names {
		n := realNode(t, t.TempDir(), name)
		t.Cleanup(func() { n.Close() })
		ns = append(ns, n)
	}
	alice, bob, carol, dave := ns[0], ns[1], ns[2], ns[3]
	ctx := ctxT(t, 150*time.Second)

	g, err := alice.CreateGroup(ctx, "private"+sfx)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := hex.DecodeString(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	guessed := p2p.TopicName(p2p.GroupID(gid))
	leaked := leakedTopic(t, alice, g.ID)
	out := newTopicRecorder(t)
	out.subscribe(t, guessed)
	if leaked != guessed {
		out.subscribe(t, leaked)
	}
	out.connect(t, ctx, alice)

	private := secrets{}
	var markers []string
	chat := func(who ...*Node) {
		t.Helper()
		for _, n := range who {
			m := "marker-" + n.self.Name + "-" + fmt.Sprint(len(markers))
			if _, err := n.Send(ctx, g.ID, m); err != nil {
				t.Fatal(err)
			}
			markers = append(markers, m)
			private.add("plaintext "+m, []byte(m))
		}
	}
	converge := func(what string, members []*Node, count int) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			for _, n := range members {
				if c := memberCount(n, g.ID); c != count {
					return fmt.Errorf("%s sees %d members", n.self.Name, c)
				}
			}
			return sameEpoch(members, g.ID)
		})
		for _, n := range members {
			notePrivate(t, ctx, private, n, g.ID)
		}
	}
	join := func(n *Node) {
		t.Helper()
		inv, err := alice.Invite(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatalf("%s join: %v", n.self.Name, err)
		}
		out.connect(t, ctx, n)
	}
	rotate := func(n *Node, members []*Node) {
		t.Helper()
		before := groupEpoch(t, n, g.ID)
		if err := n.Rotate(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, n.self.Name+" rotates", func() error {
			for _, m := range members {
				if e := groupEpoch(t, m, g.ID); e <= before {
					return fmt.Errorf("%s still on epoch %d", m.self.Name, e)
				}
			}
			return sameEpoch(members, g.ID)
		})
	}

	notePrivate(t, ctx, private, alice, g.ID)
	join(bob)
	join(carol)
	converge("three members", ns[:3], 3)
	chat(alice, bob, carol)
	rotate(bob, ns[:3])
	notePrivate(t, ctx, private, alice, g.ID)
	chat(carol, alice)

	// Carol is removed; what she knew then, she keeps.
	var carolKnew removedKeys
	carolKnew.learn(ctx, carol, g.ID)
	if err := alice.Remove(ctx, g.ID, carol.self.Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "carol removed", func() error {
		gs, err := carol.Groups(ctx)
		if err != nil {
			return err
		}
		for _, x := range gs {
			if x.ID == g.ID && x.State != api.GroupRemoved {
				return fmt.Errorf("carol's group is %s", x.State)
			}
		}
		return nil
	})
	converge("carol gone", []*Node{alice, bob}, 2)
	carolKnew.learn(ctx, carol, g.ID) // the keys of her last epochs too
	// The removed member's recording starts once the others have
	// moved past every epoch she held.
	removedFrom := time.Now()
	afterRemoval := secrets{}

	join(dave)
	converge("dave in", []*Node{alice, bob, dave}, 3)
	notePrivate(t, ctx, afterRemoval, dave, g.ID)
	before := len(markers)
	chat(dave, alice, bob)
	rotate(dave, []*Node{alice, bob, dave})
	notePrivate(t, ctx, afterRemoval, alice, g.ID)
	chat(bob, dave)
	for _, m := range markers[before:] {
		afterRemoval.add("plaintext "+m, []byte(m))
	}
	for _, n := range []*Node{alice, bob, dave} {
		eventually(t, 20*time.Second, "chat delivered", func() error { return hasTexts(n, g.ID, markers[before:]...) })
	}
	time.Sleep(3 * alice.cfg.TipInterval) // tips of the last epoch too
	maps := func(dst, src secrets) {
		for k, v := range src {
			dst[k] = v
		}
	}
	maps(private, afterRemoval)

	rec := out.recording()
	var onGuessed, onLeaked, after, carolRead int
	sizes := map[int]int{}
	for _, r := range rec {
		if r.topic == guessed && guessed != leaked {
			onGuessed++
			continue
		}
		onLeaked++
		sizes[len(r.data)]++
		if !bucketSize(len(r.data)) {
			t.Errorf("a payload of %d bytes: not a padding bucket", len(r.data))
		}
		if found := private.find(r.data); len(found) > 0 {
			t.Errorf("the outsider found %s in a payload of %d bytes", strings.Join(found, ", "), len(r.data))
		}
		if r.at.Before(removedFrom) {
			// Control: while a member, carol's keys open what was sent
			// in her epochs, down to the MLS framing.
			for _, v := range carolKnew.view(r.data) {
				if len(private.find(v)) > 0 {
					carolRead++
					break
				}
			}
			continue
		}
		after++
		for _, v := range carolKnew.view(r.data) {
			if found := afterRemoval.find(v); len(found) > 0 {
				t.Errorf("the removed member found %s in what it could open of a payload of %d bytes", strings.Join(found, ", "), len(r.data))
			}
			if found := private.find(v); len(found) > 0 {
				t.Errorf("the removed member found %s (old) in what it could open after its removal", strings.Join(found, ", "))
			}
		}
	}
	t.Logf("outsider: %d payloads on the guessed topic, %d on the leaked one (%d after the removal); sizes %v; %d secrets scanned for; carol read %d of those before",
		onGuessed, onLeaked, after, sizes, len(private), carolRead)
	if onGuessed != 0 {
		t.Errorf("the topic named after the group id carried %d payloads", onGuessed)
	}
	if onLeaked < 20 || after < 8 {
		t.Fatalf("the outsider recorded only %d payloads (%d after the removal): it was not on the topic", onLeaked, after)
	}
	if carolRead == 0 && removedViewOpens {
		t.Errorf("control: carol's keys opened nothing sent while she was a member: the removed member's view proves nothing")
	}

	// Control: the scan finds what a GroupInfo of the group shows in the
	// clear (what PublicMessage Commits carried before).
	a, _ := alice.lookup(g.ID)
	var gi []byte
	a.do(ctx, func() error {
		_, head := a.head()
		var err error
		gi, err = head.GroupInfo(true)
		return err
	})
	control := secrets{}
	notePrivate(t, ctx, control, alice, g.ID)
	found := control.find(gi)
	for _, want := range []string{"name " + alice.self.Name, "name " + dave.self.Name, "binary peer id " + dave.self.Name, "group id"} {
		if !strings.Contains(strings.Join(found, "\n"), want) {
			t.Errorf("control: the scan did not find %q in a GroupInfo (found %v)", want, found)
		}
	}
}

// publishLog records every payload a node publishes.
type publishLog struct {
	p2p.Network
	mu  sync.Mutex
	got [][]byte
}

func (l *publishLog) Publish(ctx context.Context, g p2p.GroupID, data []byte) error {
	l.mu.Lock()
	l.got = append(l.got, bytes.Clone(data))
	l.mu.Unlock()
	return l.Network.Publish(ctx, g, data)
}

// TestRejoinCommitSealed: the external Commit of a rejoin after a split
// brain (TestSplitBrainBeyondWindow's scenario) goes sealed under the key
// of the epoch it joins from, which the members that served the
// GroupInfo sent with it, so a removed member holding the group secret
// does not read the rejoiner's credential in it. Before, it went in the
// envelope only, the one MLS message a removed member could read.
func TestRejoinCommitSealed(t *testing.T) {
	checkLeaks(t)
	var logs []*publishLog
	_, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, _ *Config) p2p.Network {
		l := &publishLog{Network: net}
		logs = append(logs, l)
		return l
	}, "alice", "bob", "carol", "dave")
	ctx := ctxT(t, 40*time.Second)
	rejoined := make(chan string, 4)
	for _, n := range ns {
		evs, err := n.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // ends when ctx does
			for ev := range evs {
				if ev.Kind == api.EventSync && strings.Contains(ev.Detail, "rejoined") {
					rejoined <- n.self.Name
				}
			}
		}()
	}
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			x.net.(*publishLog).Network.(*p2p.MemNode).Disconnect(y.PeerID())
		}
	}
	if err := ns[0].Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := ns[2].Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			if err := x.Connect(ctx, y.AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "one group again", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		for _, n := range ns {
			if c := memberCount(n, g); c != 4 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		if len(rejoined) == 0 {
			return fmt.Errorf("nobody rejoined yet")
		}
		return nil
	})
	a, err := ns[0].lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	sealed, open := 0, 0
	for _, l := range logs {
		l.mu.Lock()
		for _, env := range l.got {
			body, err := a.wire.open(env)
			if err != nil {
				t.Fatalf("a published payload does not open: %v", err)
			}
			switch {
			case isSealed(body):
				sealed++
			case externalCommit(body):
				open++
			default:
				t.Errorf("published unsealed: %x", body[:min(len(body), 8)])
			}
		}
		l.mu.Unlock()
	}
	t.Logf("%d rejoined; %d sealed payloads, %d external commits unsealed", len(rejoined), sealed, open)
	if open != 0 {
		t.Fatalf("%d rejoin commits went unsealed", open)
	}
}
