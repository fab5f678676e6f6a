package mls

import (
	"fmt"
	"testing"
	"time"
)

// Group-layer benchmarks on full groups of n members, built directly from a
// synthetic full tree (buildFullTree) rather than by n commits. Each commit
// benchmark has a "floor" sibling doing only the primitive operations the
// operation cannot avoid, with the same inputs, so the implementation's
// overhead is their ratio:
//
//   - create with a path: the leaf and path key derivations, one HPKE seal
//     per node of the copath resolutions, the leaf node and content
//     signatures, the key schedule;
//   - process with a path: one HPKE open, the key derivations from there to
//     the root, the leaf node and content signature verifications, the key
//     schedule;
//   - Add without a path: the KeyPackage and leaf signature verifications,
//     the content and GroupInfo signatures, the HPKE seal of the group
//     secrets, the key schedule (the Welcome omits the ratchet tree, which
//     is O(n) to send however it is done).

var groupBenchSizes = []int{2, 10, 100, 1000, 10000}

type benchGroups struct {
	ft        *fullTree
	committer *Group // leaf 0
	receiver  *Group // the last leaf
}

var benchGroupCache = map[int]*benchGroups{}

// benchGroupMember makes the Group of leaf l of a full tree directly: all
// members of the synthetic group share one key schedule.
func benchGroupMember(b *testing.B, ft *fullTree, l LeafIndex) *Group {
	s := ft.suite
	ctx := &GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: s.ID(), GroupID: ft.groupID, Epoch: 7,
		TreeHash: ft.tree.TreeHash(), ConfirmedTranscriptHash: s.Hash([]byte("confirmed")),
	}
	enc, err := ctx.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	zero := make([]byte, s.HashSize())
	secrets, err := s.DeriveEpochSecrets(zero, zero, nil, enc)
	if err != nil {
		b.Fatal(err)
	}
	keys := map[NodeIndex]*HPKEPrivateKey{}
	for x := l.NodeIndex(); ; x = parent(x, ft.tree.LeafCount()) {
		if k, ok := ft.keys[x]; ok && !ft.tree.IsBlank(x) {
			keys[x] = k.clone()
		}
		if x == ft.tree.Root() {
			break
		}
	}
	g := &Group{
		suite: s, ctx: ctx, ctxEnc: enc, tree: ft.tree, own: l, sigKey: ft.sigs[l], nodeKeys: keys,
		interim: s.Hash([]byte("interim")), confirmationTag: s.Hash([]byte("tag")),
	}
	if err := g.setSecrets(secrets); err != nil {
		b.Fatal(err)
	}
	return g
}

func benchGroup(b *testing.B, n int) *benchGroups {
	b.Helper()
	if bg, ok := benchGroupCache[n]; ok {
		return bg
	}
	ft := treeBenchTree(b, n)
	bg := &benchGroups{ft: ft, committer: benchGroupMember(b, ft, 0), receiver: benchGroupMember(b, ft, LeafIndex(n-1))}
	benchGroupCache[n] = bg
	return bg
}

// commitFloor performs the primitives of creating a commit with a full path
// from leaf 0 of g's tree (see the file comment).
func commitFloor(b *testing.B, g *Group, rand *seedRand) func() {
	s := g.suite
	path, copath := g.tree.filteredDirectPath(g.own)
	var targets [][]byte
	for _, c := range copath {
		for _, r := range g.tree.Resolution(c) {
			targets = append(targets, g.tree.encryptionKey(r))
		}
	}
	secret := make([]byte, s.HashSize())
	tbs, _ := g.tree.LeafNode(g.own).tbs(g.ctx.GroupID, g.own)
	return func() {
		for range len(path) + 1 {
			if _, err := s.nodeKeyPair(secret); err != nil {
				b.Fatal(err)
			}
			if _, err := s.DeriveSecret(secret, "path"); err != nil {
				b.Fatal(err)
			}
		}
		for _, pub := range targets {
			if _, _, err := s.EncryptWithLabel(pub, updatePathNodeLabel, g.ctxEnc, secret, rand); err != nil {
				b.Fatal(err)
			}
		}
		for range 2 { // leaf node and FramedContent
			if _, err := g.sigKey.SignWithLabel(leafNodeTBSLabel, tbs); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.DeriveEpochSecrets(secret, secret, nil, g.ctxEnc); err != nil {
			b.Fatal(err)
		}
	}
}

// processFloor performs the primitives of processing a commit with a path
// from leaf 0 at the receiver: one open, the derivations above it, two
// signature verifications, the key schedule.
func processFloor(b *testing.B, sender, receiver *Group, rand *seedRand) func() {
	s := receiver.suite
	path, _ := receiver.tree.filteredDirectPath(sender.own)
	above := len(path) - 1 // the receiver's common ancestor with leaf 0 is the root
	for i, x := range path {
		if isAncestor(x, receiver.own.NodeIndex()) {
			above = len(path) - i
			break
		}
	}
	secret := make([]byte, s.HashSize())
	key := receiver.nodeKeys[receiver.own.NodeIndex()]
	kem, ct, err := s.EncryptWithLabel(key.PublicKey(), updatePathNodeLabel, receiver.ctxEnc, secret, rand)
	if err != nil {
		b.Fatal(err)
	}
	tbs, _ := sender.tree.LeafNode(sender.own).tbs(sender.ctx.GroupID, sender.own)
	sig, _ := sender.sigKey.SignWithLabel(leafNodeTBSLabel, tbs)
	vk, _ := s.ParseVerifyingKey(sender.sigKey.PublicKey())
	return func() {
		if _, err := s.DecryptWithLabel(key, updatePathNodeLabel, receiver.ctxEnc, kem, ct); err != nil {
			b.Fatal(err)
		}
		for range above {
			if _, err := s.nodeKeyPair(secret); err != nil {
				b.Fatal(err)
			}
			if _, err := s.DeriveSecret(secret, "path"); err != nil {
				b.Fatal(err)
			}
		}
		for range 2 {
			if err := vk.VerifyWithLabel(leafNodeTBSLabel, tbs, sig); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.DeriveEpochSecrets(secret, secret, nil, receiver.ctxEnc); err != nil {
			b.Fatal(err)
		}
	}
}

// pairedRun runs op and floor alternately in each iteration and reports
// both (wall and process CPU time) and their ratios, so that the ratio is
// measured under the same load: the shared benchmark machine's load swings
// by several times within a run, which makes separately timed
// sub-benchmarks hard to compare.
func pairedRun(b *testing.B, op, floor func()) {
	var opNs, floorNs time.Duration
	var opCPU, floorCPU int64
	i := 0
	for b.Loop() {
		first, second := op, floor
		if i%2 == 1 {
			first, second = floor, op
		}
		c0, t0 := processCPUTime(), time.Now()
		first()
		c1, t1 := processCPUTime(), time.Now()
		second()
		c2, d2 := processCPUTime(), time.Since(t1)
		if i%2 == 0 {
			opNs, floorNs = opNs+t1.Sub(t0), floorNs+d2
			opCPU, floorCPU = opCPU+c1-c0, floorCPU+c2-c1
		} else {
			floorNs, opNs = floorNs+t1.Sub(t0), opNs+d2
			floorCPU, opCPU = floorCPU+c1-c0, opCPU+c2-c1
		}
		i++
	}
	b.ReportMetric(float64(opNs.Nanoseconds())/float64(i), "op-ns")
	b.ReportMetric(float64(floorNs.Nanoseconds())/float64(i), "floor-ns")
	b.ReportMetric(float64(opNs)/float64(floorNs), "x-floor")
	if floorCPU > 0 {
		b.ReportMetric(float64(opCPU)/float64(floorCPU), "x-floor-cpu")
	}
}

func benchCommitOps(b *testing.B, name string, props func(bg *benchGroups, rand *seedRand) []*Proposal, forcePath bool) {
	for _, n := range groupBenchSizes {
		bg := benchGroup(b, n)
		if name == "remove" && n < 3 {
			continue
		}
		rand := &seedRand{seed: 1<<40 + 7}
		// The proposals (for Add, a fresh KeyPackage) are made once, outside
		// the timed loop; the committer's state does not change between
		// iterations, so the same Add is valid every time.
		ps := props(bg, rand)
		opts := func() *CommitOptions {
			return &CommitOptions{Proposals: ps, ForcePath: forcePath, OmitRatchetTree: true, Now: testNow, Rand: rand}
		}
		b.Run(fmt.Sprintf("create/n=%d", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := bg.committer.Commit(opts()); err != nil {
					b.Fatal(err)
				}
			}
		})
		sc, err := bg.committer.Commit(opts())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("process/n=%d", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := bg.receiver.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); err != nil {
					b.Fatal(err)
				}
			}
		})
		createOp := func() {
			if _, err := bg.committer.Commit(opts()); err != nil {
				b.Fatal(err)
			}
		}
		processOp := func() {
			if _, err := bg.receiver.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); err != nil {
				b.Fatal(err)
			}
		}
		var createFloor, processFloorF func()
		if name == "add" {
			createFloor, processFloorF = addFloors(b, bg, rand)
		} else {
			createFloor, processFloorF = commitFloor(b, bg.committer, rand), processFloor(b, bg.committer, bg.receiver, rand)
		}
		b.Run(fmt.Sprintf("create/n=%d/floor", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				createFloor()
			}
		})
		b.Run(fmt.Sprintf("process/n=%d/floor", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				processFloorF()
			}
		})
		b.Run(fmt.Sprintf("create/n=%d/paired", n), func(b *testing.B) { pairedRun(b, createOp, createFloor) })
		b.Run(fmt.Sprintf("process/n=%d/paired", n), func(b *testing.B) { pairedRun(b, processOp, processFloorF) })
	}
}

// addFloors are the primitives of creating and processing a pathless
// commit adding one member (see the file comment).
func addFloors(b *testing.B, bg *benchGroups, rand *seedRand) (create, process func()) {
	kp := newTestKeyPackage(b, testSuite, "bench joiner", rand)
	g := bg.committer
	s := g.suite
	tbs := []byte("content")
	sig, _ := g.sigKey.SignWithLabel(framedContentTBSLabel, tbs)
	vk, _ := s.ParseVerifyingKey(g.sigKey.PublicKey())
	create = func() {
		if err := ValidateKeyPackage(s, ProtocolVersionMLS10, &kp.KeyPackage, &LeafValidation{Now: testNow}); err != nil {
			b.Fatal(err)
		}
		for range 2 { // FramedContent and GroupInfo
			if _, err := g.sigKey.SignWithLabel(framedContentTBSLabel, tbs); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := s.EncryptWithLabel(kp.KeyPackage.InitKey, welcomeLabel, tbs, tbs, rand); err != nil {
			b.Fatal(err)
		}
		if _, err := s.DeriveEpochSecrets(g.secrets.InitSecret, nil, nil, g.ctxEnc); err != nil {
			b.Fatal(err)
		}
	}
	process = func() {
		if err := ValidateKeyPackage(s, ProtocolVersionMLS10, &kp.KeyPackage, &LeafValidation{Now: testNow}); err != nil {
			b.Fatal(err)
		}
		if err := vk.VerifyWithLabel(framedContentTBSLabel, tbs, sig); err != nil {
			b.Fatal(err)
		}
		if _, err := s.DeriveEpochSecrets(g.secrets.InitSecret, nil, nil, g.ctxEnc); err != nil {
			b.Fatal(err)
		}
	}
	return create, process
}

// BenchmarkCommitUpdate: a full-path commit (the committer's own update).
func BenchmarkCommitUpdate(b *testing.B) {
	benchCommitOps(b, "update", func(*benchGroups, *seedRand) []*Proposal { return nil }, true)
}

// BenchmarkCommitRemove: removing leaf 1 (not the receiver), with a path.
func BenchmarkCommitRemove(b *testing.B) {
	benchCommitOps(b, "remove", func(*benchGroups, *seedRand) []*Proposal {
		return []*Proposal{{Type: ProposalTypeRemove, Remove: &Remove{Removed: 1}}}
	}, false)
}

// BenchmarkCommitAdd: adding one member, without a path.
func BenchmarkCommitAdd(b *testing.B) {
	benchCommitOps(b, "add", func(bg *benchGroups, rand *seedRand) []*Proposal {
		kp := newTestKeyPackage(b, testSuite, "joiner", rand)
		return []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}
	}, false)
}

// BenchmarkJoinWelcome: joining a group of n from a Welcome, the tree
// given alongside (full tree validation: O(n) signature verifications).
func BenchmarkJoinWelcome(b *testing.B) {
	for _, n := range groupBenchSizes {
		bg := benchGroup(b, n)
		rand := &seedRand{seed: 1<<40 + 8}
		kp := newTestKeyPackage(b, testSuite, "joiner", rand)
		sc, err := bg.committer.Commit(&CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}, OmitRatchetTree: true, Now: testNow, Rand: rand})
		if err != nil {
			b.Fatal(err)
		}
		next, _ := sc.Merge()
		tree, _ := next.tree.MarshalBinary()
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: kp, RatchetTree: tree, Now: testNow}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplication: protect and unprotect of a 100-byte message.
func BenchmarkApplication(b *testing.B) {
	for _, n := range groupBenchSizes {
		bg := benchGroup(b, n)
		rand := &seedRand{seed: 1<<40 + 9}
		data := make([]byte, 100)
		b.Run(fmt.Sprintf("protect/n=%d", n), func(b *testing.B) {
			g := benchGroupMember(b, bg.ft, 0)
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := g.ProtectApplication(data, nil, rand); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("unprotect/n=%d", n), func(b *testing.B) {
			sender := benchGroupMember(b, bg.ft, 0)
			receiver := benchGroupMember(b, bg.ft, LeafIndex(n-1))
			var batch [][]byte
			for b.Loop() {
				if len(batch) == 0 {
					b.StopTimer()
					for range 256 {
						m, err := sender.ProtectApplication(data, nil, rand)
						if err != nil {
							b.Fatal(err)
						}
						batch = append(batch, m)
					}
					b.StartTimer()
				}
				if _, err := receiver.ProcessMessage(batch[0], ProcessOptions{}); err != nil {
					b.Fatal(err)
				}
				batch = batch[1:]
			}
		})
		// The same in the three steps a node takes to check signatures
		// off the group's goroutine (prepared.go), in thread CPU time:
		// actor-cpu-ns/op is what is left on that goroutine
		// (PrepareApplication and ApplyPrepared), verify-cpu-ns/op what
		// moves off it.
		b.Run(fmt.Sprintf("unprotect-split/n=%d", n), func(b *testing.B) {
			sender := benchGroupMember(b, bg.ft, 0)
			receiver := benchGroupMember(b, bg.ft, LeafIndex(n-1))
			clock := newThreadClock()
			var batch [][]byte
			var actor, verify time.Duration
			ops := 0
			for b.Loop() {
				if len(batch) == 0 {
					b.StopTimer()
					for range 256 {
						m, err := sender.ProtectApplication(data, nil, rand)
						if err != nil {
							b.Fatal(err)
						}
						batch = append(batch, m)
					}
					b.StartTimer()
				}
				t0 := clock.now()
				p, err := receiver.PrepareApplication(batch[0])
				if err != nil {
					b.Fatal(err)
				}
				t1 := clock.now()
				if err := p.Verify(); err != nil {
					b.Fatal(err)
				}
				t2 := clock.now()
				if _, err := receiver.ApplyPrepared(p); err != nil {
					b.Fatal(err)
				}
				actor += t1 - t0 + clock.now() - t2
				verify += t2 - t1
				ops++
				batch = batch[1:]
			}
			b.ReportMetric(float64(verify.Nanoseconds())/float64(max(ops, 1)), "verify-cpu-ns/op")
			b.ReportMetric(float64(actor.Nanoseconds())/float64(max(ops, 1)), "actor-cpu-ns/op")
		})
	}
}
