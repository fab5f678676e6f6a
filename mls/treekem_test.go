package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// simGroup is a seeded simulation of a group: one public tree that every
// member agrees on, and each member's private keys.
type simGroup struct {
	t       *testing.T
	suite   *Suite
	rand    *seedRand
	tree    *RatchetTree
	members map[LeafIndex]*testMember
	groupID []byte
	epoch   uint64
	names   int
}

func simContext(epoch uint64) GroupContextFunc {
	return func(treeHash []byte) ([]byte, error) {
		return fmt.Appendf(nil, "epoch %d tree %x", epoch, treeHash), nil
	}
}

func newSimGroup(t *testing.T, cs CipherSuite, seed uint64) *simGroup {
	s, err := cs.Suite()
	if err != nil {
		t.Fatal(err)
	}
	g := &simGroup{t: t, suite: s, rand: &seedRand{seed: seed}, members: map[LeafIndex]*testMember{}, groupID: []byte("sim")}
	ln, m := newTestLeaf(t, s, g.rand, "creator")
	g.tree = NewRatchetTree(s, ln)
	m.keys[0] = m.leafKey
	g.members[0] = m
	return g
}

func (g *simGroup) validation() *LeafValidation {
	return &LeafValidation{GroupID: g.groupID, IgnoreLifetime: true}
}

// commit has committer apply adds and removes, send an UpdatePath, and
// every other member (and each new one, through the path secret a Welcome
// would carry) process it. It checks that all agree.
func (g *simGroup) commit(committer LeafIndex, adds int, removes []LeafIndex) {
	t := g.t
	t.Helper()
	g.epoch++
	// The committer's view, a fork of the agreed tree.
	apply := func(tr *RatchetTree, newLeaves []*LeafNode) []LeafIndex {
		for _, r := range removes {
			if err := tr.RemoveLeaf(r); err != nil {
				t.Fatal(err)
			}
		}
		var added []LeafIndex
		for _, ln := range newLeaves {
			if err := tr.ValidateLeafNode(ln, 0, LeafNodeSourceKeyPackage, g.validation()); err != nil && !errors.Is(err, ErrDuplicateKey) {
				t.Fatal(err)
			}
			added = append(added, tr.AddLeaf(ln))
		}
		return added
	}
	var newLeaves []*LeafNode
	var newMembers []*testMember
	for range adds {
		g.names++
		ln, m := newTestLeaf(t, g.suite, g.rand, fmt.Sprint("member ", g.names))
		newLeaves, newMembers = append(newLeaves, ln), append(newMembers, m)
	}
	ctx := simContext(g.epoch)
	mine := g.tree.Fork()
	added := apply(mine, newLeaves)
	path, secrets, err := mine.CreateUpdatePath(&CreatePathParams{
		Leaf: committer, GroupID: g.groupID, SigningKey: g.members[committer].sig,
		Exclude: added, GroupContext: ctx, Rand: g.rand,
	})
	if err != nil {
		t.Fatalf("epoch %d: create: %v", g.epoch, err)
	}
	enc, err := path.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	wantHash := mine.TreeHash()

	// Every other existing member processes the path on its own fork.
	removed := func(l LeafIndex) bool { return slices.Contains(removes, l) }
	for l, m := range g.members {
		if l == committer || removed(l) {
			continue
		}
		theirs := g.tree.Fork()
		apply(theirs, newLeaves)
		received, err := UnmarshalUpdatePath(enc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := theirs.ProcessUpdatePath(&ProcessPathParams{
			Sender: committer, Path: received, Validation: g.validation(), Exclude: added, Receiver: l,
			PrivateKey: func(x NodeIndex) *HPKEPrivateKey { return m.keys[x] }, GroupContext: ctx,
		})
		if err != nil {
			t.Fatalf("epoch %d: member %d: %v", g.epoch, l, err)
		}
		if !bytes.Equal(res.CommitSecret, secrets.CommitSecret) {
			t.Fatalf("epoch %d: member %d: commit secret differs", g.epoch, l)
		}
		if !bytes.Equal(theirs.TreeHash(), wantHash) {
			t.Fatalf("epoch %d: member %d: tree hash differs", g.epoch, l)
		}
		for _, r := range removes {
			for _, x := range directPath(r.NodeIndex(), g.tree.leaves) {
				delete(m.keys, x)
			}
		}
		for _, x := range directPath(committer.NodeIndex(), g.tree.leaves) {
			delete(m.keys, x)
		}
		for x, k := range res.NodeKeys {
			m.keys[x] = k
		}
	}
	for _, r := range removes {
		delete(g.members, r)
	}
	// The committer keeps its new keys.
	cm := g.members[committer]
	cm.keys = map[NodeIndex]*HPKEPrivateKey{committer.NodeIndex(): secrets.LeafKey}
	for x, k := range secrets.NodeKeys {
		cm.keys[x] = k
	}
	// New members start from the path secret of the lowest node of the
	// committer's filtered direct path above them, as a Welcome carries.
	fdp := mine.FilteredDirectPath(committer)
	for i, l := range added {
		m := newMembers[i]
		m.keys[l.NodeIndex()] = m.leafKey
		if got, ok := mine.FindLeaf(newLeaves[i]); !ok || got != l {
			t.Fatalf("FindLeaf: %d, %v; want %d", got, ok, l)
		}
		for _, x := range fdp {
			if !isAncestor(x, l.NodeIndex()) {
				continue
			}
			joined, err := mine.JoinPathSecrets(committer, x, secrets.Secrets[x])
			if err != nil {
				t.Fatalf("epoch %d: new member %d: %v", g.epoch, l, err)
			}
			if !bytes.Equal(joined.CommitSecret, secrets.CommitSecret) {
				t.Fatalf("epoch %d: new member %d: commit secret differs", g.epoch, l)
			}
			for y, k := range joined.NodeKeys {
				m.keys[y] = k
			}
			break
		}
		g.members[l] = m
	}
	mine.Flatten()
	g.tree = mine
	g.check()
}

// addWithoutPath commits Adds with no UpdatePath: the new members know
// only their leaf and stay unmerged at every non-blank ancestor.
func (g *simGroup) addWithoutPath(adds int) {
	g.epoch++
	for range adds {
		g.names++
		ln, m := newTestLeaf(g.t, g.suite, g.rand, fmt.Sprint("member ", g.names))
		l := g.tree.AddLeaf(ln)
		m.keys[l.NodeIndex()] = m.leafKey
		g.members[l] = m
	}
	g.check()
}

// check asserts the tree is valid, every private key matches the public
// tree, and every member knows the root key when the root is set.
func (g *simGroup) check() {
	t := g.t
	t.Helper()
	if err := g.tree.Validate(g.validation()); err != nil {
		t.Fatalf("epoch %d: %v", g.epoch, err)
	}
	checkBlankCounts(t, g.tree)
	if g.tree.MemberCount() != len(g.members) {
		t.Fatalf("epoch %d: MemberCount %d, want %d", g.epoch, g.tree.MemberCount(), len(g.members))
	}
	enc, _ := g.tree.MarshalBinary()
	fresh, err := UnmarshalRatchetTree(g.suite, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh.TreeHash(), g.tree.TreeHash()) {
		t.Fatalf("epoch %d: cached tree hash is stale", g.epoch)
	}
	r := g.tree.Root()
	for l, m := range g.members {
		if g.tree.LeafNode(l) == nil {
			t.Fatalf("epoch %d: member %d has a blank leaf", g.epoch, l)
		}
		for x, k := range m.keys {
			if uint32(x) >= g.tree.width() || !bytes.Equal(g.tree.encryptionKey(x), k.PublicKey()) {
				t.Fatalf("epoch %d: member %d holds a stale key for node %d", g.epoch, l, x)
			}
		}
		if !g.tree.IsBlank(r) && m.keys[r] == nil && !slices.Contains(g.tree.ParentNode(r).UnmergedLeaves, l) {
			t.Fatalf("epoch %d: member %d does not know the root key", g.epoch, l)
		}
	}
}

func TestTreeKEMSimulation(t *testing.T) {
	for _, cs := range []CipherSuite{MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, MLS_128_DHKEMP256_AES128GCM_SHA256_P256} {
		t.Run(cs.String(), func(t *testing.T) {
			seed := uint64(0x5eed) + uint64(cs)
			t.Logf("seed %d", seed)
			g := newSimGroup(t, cs, seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			memberList := func() []LeafIndex {
				var ls []LeafIndex
				for l := range g.members {
					ls = append(ls, l)
				}
				slices.Sort(ls)
				return ls
			}
			g.commit(0, 3, nil)
			for step := 0; step < 40; step++ {
				ls := memberList()
				committer := ls[rng.IntN(len(ls))]
				adds := 0
				var removes []LeafIndex
				switch op := rng.IntN(4); {
				case op == 0 || len(ls) < 3:
					adds = 1 + rng.IntN(3)
				case op == 1:
					for _, l := range ls {
						if l != committer && rng.IntN(3) == 0 && len(removes) < len(ls)-2 {
							removes = append(removes, l)
						}
					}
				case op == 3:
					g.addWithoutPath(1 + rng.IntN(2))
					continue
				case op == 2:
					adds = 1
					if r := ls[rng.IntN(len(ls))]; r != committer {
						removes = []LeafIndex{r}
					}
				}
				g.commit(committer, adds, removes)
			}
			t.Logf("%d members in %d leaves after %d epochs", len(g.members), g.tree.LeafCount(), g.epoch)
		})
	}
}

func TestProcessUpdatePathRejects(t *testing.T) {
	ft := buildFullTree(t, testSuite, 8)
	s := ft.suite
	ctx := simContext(1)
	// The receiver decrypts at the root, the third node of the path.
	sender, receiver := LeafIndex(0), LeafIndex(5)
	create := func() *UpdatePath {
		path, _, err := ft.tree.Fork().CreateUpdatePath(&CreatePathParams{
			Leaf: sender, GroupID: ft.groupID, SigningKey: ft.sigs[sender], GroupContext: ctx, Rand: &seedRand{seed: 9},
		})
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	before := slices.Clone(ft.tree.TreeHash())
	process := func(path *UpdatePath, ctx GroupContextFunc) error {
		fork := ft.tree.Fork()
		_, err := fork.ProcessUpdatePath(&ProcessPathParams{
			Sender: sender, Path: path, Validation: &LeafValidation{GroupID: ft.groupID}, Receiver: receiver,
			PrivateKey: func(x NodeIndex) *HPKEPrivateKey { return ft.keys[x] }, GroupContext: ctx,
		})
		if !bytes.Equal(ft.tree.TreeHash(), before) {
			t.Fatal("processing changed the tree it was forked from")
		}
		return err
	}
	if err := process(create(), ctx); err != nil {
		t.Fatalf("valid path: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(p *UpdatePath)
		ctx  GroupContextFunc
		want error
	}{
		{"missing node", func(p *UpdatePath) { p.Nodes = p.Nodes[1:] }, ctx, ErrInvalidUpdatePath},
		{"ciphertext", func(p *UpdatePath) { p.Nodes[2].EncryptedPathSecret[0].Ciphertext[0] ^= 1 }, ctx, ErrDecrypt},
		{"extra ciphertext", func(p *UpdatePath) {
			p.Nodes[2].EncryptedPathSecret = append(p.Nodes[2].EncryptedPathSecret, p.Nodes[2].EncryptedPathSecret[0])
		}, ctx, ErrInvalidUpdatePath},
		{"public key swapped", func(p *UpdatePath) {
			k, _ := s.DeriveKeyPair([]byte("other"))
			p.Nodes[2].EncryptionKey = k.PublicKey()
		}, ctx, ErrParentHash},
		{"leaf signature", func(p *UpdatePath) { p.LeafNode.Signature[0] ^= 1 }, ctx, ErrInvalidSignature},
		{"stale key reused", func(p *UpdatePath) { p.Nodes[0].EncryptionKey = ft.tree.encryptionKey(5) }, ctx, ErrInvalidUpdatePath},
		{"other group context", func(p *UpdatePath) {}, simContext(2), ErrDecrypt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := create()
			tc.edit(p)
			if err := process(p, tc.ctx); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("wrong derived key", func(t *testing.T) {
		// A path whose keys are honest up to the receiver's node but not
		// above: the parent hash is re-signed by the (malicious) sender,
		// so only the derived-key check catches it.
		fork := ft.tree.Fork()
		p, _, err := fork.CreateUpdatePath(&CreatePathParams{
			Leaf: sender, GroupID: ft.groupID, SigningKey: ft.sigs[sender], GroupContext: ctx, Rand: &seedRand{seed: 9},
		})
		if err != nil {
			t.Fatal(err)
		}
		path, copath := ft.tree.filteredDirectPath(sender)
		k, _ := s.DeriveKeyPair([]byte("evil"))
		pubs := [][]byte{p.Nodes[0].EncryptionKey, p.Nodes[1].EncryptionKey, p.Nodes[2].EncryptionKey}
		pubs[2] = k.PublicKey()
		p.Nodes[2].EncryptionKey = pubs[2]
		evil := ft.tree.Fork()
		p.LeafNode.ParentHash = evil.mergePath(sender, path, copath, pubs)
		if err := p.LeafNode.Sign(ft.sigs[sender], ft.groupID, sender); err != nil {
			t.Fatal(err)
		}
		// The ciphertexts were made for the honest tree hash; re-encrypt
		// for the evil one so decryption succeeds.
		ln := p.LeafNode.Clone()
		evil.setLeaf(sender, ln)
		gc, _ := ctx(evil.TreeHash())
		_, honest, _ := ft.tree.Fork().CreateUpdatePath(&CreatePathParams{
			Leaf: sender, GroupID: ft.groupID, SigningKey: ft.sigs[sender], GroupContext: ctx, Rand: &seedRand{seed: 9},
		})
		res := ft.tree.Resolution(copath[2])
		p.Nodes[2].EncryptedPathSecret = nil
		for _, r := range res {
			kem, ct, err := s.EncryptWithLabel(ft.tree.encryptionKey(r), updatePathNodeLabel, gc, honest.Secrets[path[2]], &seedRand{})
			if err != nil {
				t.Fatal(err)
			}
			p.Nodes[2].EncryptedPathSecret = append(p.Nodes[2].EncryptedPathSecret, HPKECiphertext{kem, ct})
		}
		if err := process(p, ctx); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Fatalf("got %v, want ErrInvalidUpdatePath", err)
		}
	})
}

// FuzzProcessUpdatePath feeds arbitrary UpdatePaths to a member: no panic,
// and on error the tree the fork was made from is unchanged.
func FuzzProcessUpdatePath(f *testing.F) {
	ft := buildFullTree(f, testSuite, 5)
	ctx := simContext(1)
	path, _, err := ft.tree.Fork().CreateUpdatePath(&CreatePathParams{
		Leaf: 0, GroupID: ft.groupID, SigningKey: ft.sigs[0], GroupContext: ctx, Rand: &seedRand{seed: 3},
	})
	if err != nil {
		f.Fatal(err)
	}
	enc, _ := path.MarshalBinary()
	f.Add(enc, uint8(0), uint8(4))
	before := slices.Clone(ft.tree.TreeHash())
	f.Fuzz(func(t *testing.T, data []byte, sender, receiver uint8) {
		p, err := UnmarshalUpdatePath(data)
		if err != nil {
			return
		}
		fork := ft.tree.Fork()
		_, _ = fork.ProcessUpdatePath(&ProcessPathParams{
			Sender: LeafIndex(sender % 8), Path: p, Validation: &LeafValidation{GroupID: ft.groupID}, Receiver: LeafIndex(receiver % 8),
			PrivateKey: func(x NodeIndex) *HPKEPrivateKey { return ft.keys[x] }, GroupContext: ctx,
		})
		if !bytes.Equal(ft.tree.TreeHash(), before) {
			t.Fatal("processing a fork changed its base")
		}
	})
}

func TestPathSecretsErase(t *testing.T) {
	ft := buildFullTree(t, testSuite, 4)
	_, secrets, err := ft.tree.Fork().CreateUpdatePath(&CreatePathParams{
		Leaf: 2, GroupID: ft.groupID, SigningKey: ft.sigs[2], GroupContext: simContext(1), Rand: &seedRand{seed: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Secrets) != 2 || len(secrets.NodeKeys) != 2 || secrets.LeafKey == nil {
		t.Fatalf("want secrets and keys for a two-node path and the leaf, got %d, %d", len(secrets.Secrets), len(secrets.NodeKeys))
	}
	held := [][]byte{secrets.CommitSecret, secrets.LeafKey.Bytes()}
	for x, s := range secrets.Secrets {
		held = append(held, s, secrets.NodeKeys[x].Bytes())
	}
	secrets.Erase()
	for i, b := range held {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatalf("secret %d not zeroed after Erase", i)
		}
	}
}

func TestJoinPathSecretsRejects(t *testing.T) {
	ft := buildFullTree(t, testSuite, 4)
	fork := ft.tree.Fork()
	_, secrets, err := fork.CreateUpdatePath(&CreatePathParams{
		Leaf: 0, GroupID: ft.groupID, SigningKey: ft.sigs[0], GroupContext: simContext(1), Rand: &seedRand{seed: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := fork.Root()
	if _, err := fork.JoinPathSecrets(0, root, secrets.Secrets[root]); err != nil {
		t.Fatalf("honest secret: %v", err)
	}
	bad := slices.Clone(secrets.Secrets[root])
	bad[0] ^= 1
	if _, err := fork.JoinPathSecrets(0, root, bad); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := fork.JoinPathSecrets(0, 5, secrets.Secrets[root]); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Fatalf("node off the path: %v", err)
	}
}
