package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// JoinParams are the inputs of JoinFromWelcome.
type JoinParams struct {
	// Welcome is the MLSMessage carrying the Welcome.
	Welcome []byte
	// KeyPackage is the bundle of the KeyPackage the Welcome was made for.
	KeyPackage *KeyPackageBundle
	// RatchetTree is the encoded ratchet tree (optional<Node> ratchet_tree<V>)
	// when the GroupInfo does not carry the ratchet_tree extension.
	RatchetTree []byte
	// PSKs resolves external PSKs named by the Welcome.
	PSKs PSKStore
	// Resumption is the group whose resumption PSKs a ReInit or branch
	// Welcome may name; nil if none.
	Resumption *Group
	Config     Config
	// Now is the joiner's current time. The lifetimes of the leaves
	// already in the tree are not checked against it (see
	// JoinFromWelcome).
	Now time.Time
}

// JoinFromWelcome joins a group from a Welcome (RFC 9420, Section
// 12.4.3.1): it decrypts the GroupSecrets with the KeyPackage's init key
// and the GroupInfo with the welcome secret, verifies the GroupInfo
// signature, validates the whole ratchet tree (but not the lifetimes of
// its leaves, RFC 9420, Section 7.3), checks the confirmation tag
// and derives the path keys from the path secret.
func JoinFromWelcome(p *JoinParams) (*Group, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidWelcome, fmt.Sprintf(format, args...))
	}
	wrap := func(what string, err error) error {
		return fmt.Errorf("%w: %s: %w", ErrInvalidWelcome, what, err)
	}
	if err := p.Config.Validate(); err != nil {
		return nil, err
	}
	m, err := UnmarshalMLSMessage(p.Welcome)
	if err != nil {
		return nil, err
	}
	if m.WireFormat != WireFormatWelcome || m.Version != ProtocolVersionMLS10 {
		return nil, fail("not an mls10 Welcome")
	}
	w := m.Welcome
	kp := &p.KeyPackage.KeyPackage
	if w.CipherSuite != kp.CipherSuite {
		return nil, fail("suite %v for a %v key package", w.CipherSuite, kp.CipherSuite)
	}
	s, err := w.CipherSuite.Suite()
	if err != nil {
		return nil, err
	}
	ref, err := s.KeyPackageRef(kp)
	if err != nil {
		return nil, err
	}
	egs := w.Find(ref)
	if egs == nil {
		return nil, fail("no entry for key package %x", ref)
	}
	gs, err := s.DecryptGroupSecrets(p.KeyPackage.InitKey, w.EncryptedGroupInfo, &egs.EncryptedGroupSecrets)
	if err != nil {
		return nil, wrap("group secrets", err)
	}
	defer gs.Erase()
	if len(gs.JoinerSecret) != s.HashSize() {
		return nil, fail("joiner secret of %d bytes", len(gs.JoinerSecret))
	}
	psks, err := resolvePSKs(gs.PSKs, p.PSKs, p.Resumption)
	if err != nil {
		return nil, wrap("PSKs", err)
	}
	pskSecret, err := s.PSKSecret(psks)
	if err != nil {
		return nil, err
	}
	defer clear(pskSecret)
	welcomeSecret, err := s.WelcomeSecret(gs.JoinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	defer clear(welcomeSecret)
	gi, err := s.DecryptGroupInfo(welcomeSecret, w.EncryptedGroupInfo)
	if err != nil {
		return nil, wrap("group info", err)
	}
	ctx := &gi.GroupContext
	if ctx.CipherSuite != s.ID() || ctx.Version != ProtocolVersionMLS10 {
		return nil, fail("group context of suite %v version %d", ctx.CipherSuite, ctx.Version)
	}
	if err := gi.Extensions.checkUnique(); err != nil {
		return nil, wrap("group info extensions", err)
	}
	treeData := p.RatchetTree
	if e, ok := gi.Extensions.Find(ExtensionRatchetTree); ok {
		treeData = e.Data
	}
	if treeData == nil {
		return nil, fail("no ratchet tree")
	}
	rc, err := requiredCapabilities(ctx.Extensions)
	if err != nil {
		return nil, wrap("required_capabilities", err)
	}
	// The lifetimes of the tree's key_package leaves are not checked: RFC
	// 9420, Section 7.3 only RECOMMENDS it for a received tree, and the
	// lifetime bounds how long a KeyPackage may be used to add its owner,
	// not how long the member stays: checking it would refuse every
	// Welcome to a group with a member added more than a KeyPackage
	// lifetime ago. The members checked each lifetime when the leaf was
	// added (Section 12.2).
	v := &LeafValidation{GroupID: ctx.GroupID, Version: ctx.Version, RequiredCapabilities: rc, Now: p.Now, IgnoreLifetime: true}
	tree, err := ImportRatchetTree(s, treeData, ctx.TreeHash, v)
	if err != nil {
		return nil, wrap("ratchet tree", err)
	}
	if err := checkResumption(gs.PSKs, ctx, tree, p.Resumption, &p.Config); err != nil {
		return nil, wrap("resumption PSK", err)
	}
	signer := tree.LeafNode(gi.Signer)
	if signer == nil {
		return nil, fail("signer leaf %d is blank", gi.Signer)
	}
	if err := gi.VerifySignature(s, signer.SignatureKey); err != nil {
		return nil, wrap("group info", err)
	}
	// Every member must support the group's extensions (Section 11.1).
	for l := LeafIndex(0); uint32(l) < tree.LeafCount(); l++ {
		if ln := tree.LeafNode(l); ln != nil {
			if err := checkExtensionsSupported(ln, ctx.Extensions); err != nil {
				return nil, wrap(fmt.Sprintf("leaf %d", l), err)
			}
		}
	}
	x, ok := tree.findEncryptionKey(kp.LeafNode.EncryptionKey)
	if !ok || !x.IsLeaf() {
		return nil, fail("own leaf not in the tree")
	}
	own := x.LeafIndex()
	if ln := tree.LeafNode(own); !bytes.Equal(ln.SignatureKey, kp.LeafNode.SignatureKey) {
		return nil, fail("own leaf has another signature key")
	}
	ctxEnc, err := ctx.MarshalBinary()
	if err != nil {
		return nil, err
	}
	joiner := bytes.Clone(gs.JoinerSecret)
	secrets, err := s.EpochSecretsFromJoiner(joiner, pskSecret, ctxEnc)
	if err != nil {
		return nil, err
	}
	if err := s.VerifyConfirmationTag(secrets.ConfirmationKey, ctx.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		secrets.Erase()
		return nil, wrap("confirmation tag", err)
	}
	interim, err := s.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		secrets.Erase()
		return nil, err
	}
	nodeKeys := map[NodeIndex]*HPKEPrivateKey{own.NodeIndex(): p.KeyPackage.EncryptionKey.clone()}
	if gs.PathSecret != nil {
		if err := deriveWelcomePath(tree, own, gi.Signer, gs.PathSecret.PathSecret, nodeKeys); err != nil {
			secrets.Erase()
			return nil, wrap("path secret", err)
		}
	}
	sig, err := s.ParseSigningKey(p.KeyPackage.SigningKey.Bytes())
	if err != nil {
		secrets.Erase()
		return nil, err
	}
	g := &Group{
		suite:           s,
		cfg:             p.Config,
		ctx:             ctx.Clone(),
		ctxEnc:          ctxEnc,
		tree:            tree,
		own:             own,
		sigKey:          sig,
		nodeKeys:        nodeKeys,
		interim:         interim,
		confirmationTag: bytes.Clone(gi.ConfirmationTag),
	}
	g.cfg.PSKs = p.PSKs
	if err := g.setSecrets(secrets); err != nil {
		return nil, err
	}
	return g, nil
}

// checkResumption checks a Welcome whose GroupSecrets name a resumption
// PSK of usage reinit or branch (RFC 9420, Sections 11.2, 11.3 and
// 12.4.3.1): it is the only such PSK, the new group is at epoch 1, and the
// new group matches the old one, old being the group the PSK resolved
// from: for reinit, the old group's epoch committed a ReInit whose
// version, suite, group id and extensions the new GroupContext carries;
// for branch, the version and suite are the old group's and every leaf of
// the new tree matches a member of the old group (policy accepts the old
// leaf's credential replaced by the new one).
func checkResumption(psks []PreSharedKeyID, ctx *GroupContext, tree *RatchetTree, old *Group, cfg *Config) error {
	var id *PreSharedKeyID
	for i := range psks {
		p := &psks[i]
		if p.PSKType != PSKTypeResumption || (p.Usage != ResumptionPSKUsageReInit && p.Usage != ResumptionPSKUsageBranch) {
			continue
		}
		if id != nil {
			return errors.New("more than one reinit or branch PSK")
		}
		id = p
	}
	if id == nil {
		return nil
	}
	if ctx.Epoch != 1 {
		return fmt.Errorf("new group at epoch %d, want 1", ctx.Epoch)
	}
	if old == nil || !bytes.Equal(old.ctx.GroupID, id.PSKGroupID) {
		// The checks below need the old group's state.
		return errors.New("the old group is not JoinParams.Resumption")
	}
	switch id.Usage {
	case ResumptionPSKUsageReInit:
		r := old.reinit
		if r == nil || old.ctx.Epoch != id.PSKEpoch {
			return errors.New("reinit PSK of an epoch that committed no ReInit")
		}
		if ctx.Version != r.Version || ctx.CipherSuite != r.CipherSuite || !bytes.Equal(ctx.GroupID, r.GroupID) ||
			!extensionsEqual(ctx.Extensions, r.Extensions) {
			return errors.New("new group does not match the ReInit proposal")
		}
	case ResumptionPSKUsageBranch:
		if ctx.Version != old.ctx.Version || ctx.CipherSuite != old.ctx.CipherSuite {
			return errors.New("branch changes the version or cipher suite")
		}
		var unmatched error
		tree.Leaves(func(l LeafIndex, ln *LeafNode) bool {
			matched := false
			old.tree.Leaves(func(_ LeafIndex, o *LeafNode) bool {
				matched = cfg.checkCredentialChange(l, &o.Credential, &ln.Credential) == nil
				return !matched
			})
			if !matched {
				unmatched = fmt.Errorf("leaf %d matches no member of the old group", l)
			}
			return matched
		})
		return unmatched
	}
	return nil
}

// extensionsEqual reports whether a and b list the same extensions in the
// same order.
func extensionsEqual(a, b Extensions) bool {
	return slices.EqualFunc(a, b, func(x, y Extension) bool { return x.Type == y.Type && bytes.Equal(x.Data, y.Data) })
}

// deriveWelcomePath derives the keys of the committer's filtered direct
// path from the lowest node above the joiner up to the root, from the
// Welcome's path_secret, and checks them against the tree (RFC 9420,
// Section 12.4.3.1).
func deriveWelcomePath(tree *RatchetTree, own, committer LeafIndex, pathSecret []byte, keys map[NodeIndex]*HPKEPrivateKey) error {
	if own == committer {
		return fmt.Errorf("committer is the joiner")
	}
	s := tree.suite
	path, _ := tree.filteredDirectPath(committer)
	anc := commonAncestor(own.NodeIndex(), committer.NodeIndex())
	start := -1
	for i, x := range path {
		if x == anc {
			start = i
			break
		}
	}
	if start < 0 {
		return fmt.Errorf("common ancestor %d not on the committer's filtered direct path", anc)
	}
	secrets, privs, commitSecret, err := s.derivePath(pathSecret, len(path)-start)
	if err != nil {
		return err
	}
	clear(commitSecret)
	for _, ps := range secrets {
		defer clear(ps)
	}
	for i, k := range privs {
		x := path[start+i]
		if !bytes.Equal(tree.encryptionKey(x), k.PublicKey()) {
			for _, k := range privs {
				k.Erase()
			}
			return fmt.Errorf("derived key of node %d does not match the tree", x)
		}
		keys[x] = k
	}
	return nil
}
