package mls

import (
	"fmt"
	"runtime"
	"testing"
)

// Benchmarks of the tree and TreeKEM on full trees of n members. Each path
// benchmark has a "floor" sibling that performs only the primitive
// operations the path operation cannot avoid (key derivations, HPKE seals
// or the one open, the one signature or verification), with the same
// inputs, so that the overhead of the implementation is their ratio.

var treeBenchSizes = []int{2, 10, 100, 1000, 10000}

// treeBenchTrees caches one synthetic tree per size for the whole test binary;
// building the 10,000-member tree takes about a second.
var treeBenchTrees = map[int]*fullTree{}

func treeBenchTree(b *testing.B, n int) *fullTree {
	b.Helper()
	if ft, ok := treeBenchTrees[n]; ok {
		return ft
	}
	ft := buildFullTree(b, testSuite, n)
	treeBenchTrees[n] = ft
	return ft
}

var treeBenchContext = simContext(1)

// cpuMeter reports the process CPU time per operation as "cpu-ns/op":
// call it just before the benchmark loop and defer the result.
func cpuMeter(b *testing.B) func() {
	start := processCPUTime()
	return func() {
		if n := b.N; n > 0 && start > 0 {
			b.ReportMetric(float64(processCPUTime()-start)/float64(n), "cpu-ns/op")
		}
	}
}

func BenchmarkCreateUpdatePath(b *testing.B) {
	for _, n := range treeBenchSizes {
		ft := treeBenchTree(b, n)
		s := ft.suite
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rand := &seedRand{seed: 1}
			defer cpuMeter(b)()
			for b.Loop() {
				fork := ft.tree.Fork()
				if _, _, err := fork.CreateUpdatePath(&CreatePathParams{
					Leaf: 0, GroupID: ft.groupID, SigningKey: ft.sigs[0], GroupContext: treeBenchContext, Rand: rand,
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/floor", n), func(b *testing.B) {
			path, copath := ft.tree.filteredDirectPath(0)
			var targets [][]byte
			for _, c := range copath {
				for _, r := range ft.tree.Resolution(c) {
					targets = append(targets, ft.tree.encryptionKey(r))
				}
			}
			ctx, _ := treeBenchContext(ft.tree.TreeHash())
			tbs, _ := ft.tree.LeafNode(0).tbs(ft.groupID, 0)
			secret := make([]byte, s.HashSize())
			rand := &seedRand{seed: 1}
			defer cpuMeter(b)()
			for b.Loop() {
				// Leaf key and the key of every filtered direct path node.
				for range len(path) + 1 {
					if _, err := s.nodeKeyPair(secret); err != nil {
						b.Fatal(err)
					}
					if _, err := s.DeriveSecret(secret, "path"); err != nil {
						b.Fatal(err)
					}
				}
				for _, pub := range targets {
					if _, _, err := s.EncryptWithLabel(pub, updatePathNodeLabel, ctx, secret, rand); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := ft.sigs[0].SignWithLabel(leafNodeTBSLabel, tbs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkProcessUpdatePath(b *testing.B) {
	for _, n := range treeBenchSizes {
		ft := treeBenchTree(b, n)
		s := ft.suite
		// Leaf 1 decrypts at the lowest node and derives every key above.
		sender, receiver := LeafIndex(0), LeafIndex(1)
		path, _, err := ft.tree.Fork().CreateUpdatePath(&CreatePathParams{
			Leaf: sender, GroupID: ft.groupID, SigningKey: ft.sigs[sender], GroupContext: treeBenchContext, Rand: &seedRand{seed: 2},
		})
		if err != nil {
			b.Fatal(err)
		}
		priv := func(x NodeIndex) *HPKEPrivateKey { return ft.keys[x] }
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				fork := ft.tree.Fork()
				if _, err := fork.ProcessUpdatePath(&ProcessPathParams{
					Sender: sender, Path: path, Validation: &LeafValidation{GroupID: ft.groupID}, Receiver: receiver,
					PrivateKey: priv, GroupContext: treeBenchContext,
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/floor", n), func(b *testing.B) {
			fdp := ft.tree.FilteredDirectPath(sender)
			fork := ft.tree.Fork()
			res, err := fork.ProcessUpdatePath(&ProcessPathParams{
				Sender: sender, Path: path, Validation: &LeafValidation{GroupID: ft.groupID}, Receiver: receiver,
				PrivateKey: priv, GroupContext: treeBenchContext,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, _ := treeBenchContext(fork.TreeHash())
			ct := path.Nodes[0].EncryptedPathSecret[0]
			key := ft.keys[receiver.NodeIndex()]
			tbs, _ := path.LeafNode.tbs(ft.groupID, sender)
			secret := res.Secrets[fdp[0]]
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := s.DecryptWithLabel(key, updatePathNodeLabel, ctx, ct.KEMOutput, ct.Ciphertext); err != nil {
					b.Fatal(err)
				}
				for range fdp {
					if _, err := s.nodeKeyPair(secret); err != nil {
						b.Fatal(err)
					}
					if _, err := s.DeriveSecret(secret, "path"); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.VerifyWithLabel(path.LeafNode.SignatureKey, leafNodeTBSLabel, tbs, path.LeafNode.Signature); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTreeHashAfterPathChange merges one path's new public keys and
// recomputes the root tree hash: O(log n) hashes thanks to the per-node
// cache. The "from scratch" variant rehashes a freshly decoded tree, the
// O(n) cost the cache avoids.
func BenchmarkTreeHashAfterPathChange(b *testing.B) {
	for _, n := range treeBenchSizes {
		ft := treeBenchTree(b, n)
		path, copath := ft.tree.filteredDirectPath(0)
		pubs := make([][]byte, len(path))
		for i := range pubs {
			k, _ := ft.suite.DeriveKeyPair([]byte{byte(i), 1, 2, 3})
			pubs[i] = k.PublicKey()
		}
		leaf := ft.tree.LeafNode(0).Clone()
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				fork := ft.tree.Fork()
				leaf.ParentHash = fork.mergePath(0, path, copath, pubs)
				fork.setLeaf(0, leaf)
				fork.TreeHash()
			}
		})
		b.Run(fmt.Sprintf("n=%d/from-scratch", n), func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				tr, err := UnmarshalRatchetTree(ft.suite, ft.data)
				if err != nil {
					b.Fatal(err)
				}
				tr.TreeHash()
			}
		})
	}
}

func BenchmarkImportRatchetTree(b *testing.B) {
	for _, n := range treeBenchSizes {
		ft := treeBenchTree(b, n)
		th := ft.tree.TreeHash()
		v := &LeafValidation{GroupID: ft.groupID}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(ft.data)))
			defer cpuMeter(b)()
			for b.Loop() {
				if _, err := ImportRatchetTree(ft.suite, ft.data, th, v); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The floor of an import: one signature verification per leaf.
		b.Run(fmt.Sprintf("n=%d/floor", n), func(b *testing.B) {
			var tbs, keys, sigs [][]byte
			for l := LeafIndex(0); uint32(l) < ft.tree.LeafCount(); l++ {
				if ln := ft.tree.LeafNode(l); ln != nil {
					t, _ := ln.tbs(ft.groupID, l)
					tbs, keys, sigs = append(tbs, t), append(keys, ln.SignatureKey), append(sigs, ln.Signature)
				}
			}
			defer cpuMeter(b)()
			for b.Loop() {
				for i := range tbs {
					if err := ft.suite.VerifyWithLabel(keys[i], leafNodeTBSLabel, tbs[i], sigs[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkTreeMemory reports the heap an imported tree retains, in bytes
// and per member, next to the size of its encoding: memory stays
// proportional to the tree.
func BenchmarkTreeMemory(b *testing.B) {
	for _, n := range treeBenchSizes {
		ft := treeBenchTree(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var retained uint64
			defer cpuMeter(b)()
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tr, err := ImportRatchetTree(ft.suite, ft.data, ft.tree.TreeHash(), &LeafValidation{GroupID: ft.groupID})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				retained = after.HeapAlloc - before.HeapAlloc
				runtime.KeepAlive(tr)
			}
			b.ReportMetric(float64(retained), "retained-B")
			b.ReportMetric(float64(retained)/float64(n), "retained-B/member")
			b.ReportMetric(float64(len(ft.data))/float64(n), "encoded-B/member")
		})
	}
}
