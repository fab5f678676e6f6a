package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "grove/interop/proto"
)

// The scenario runner plays the official harness's scripts
// (../shared/spec/interop/configs, format in test-config.md) between
// clients reached over gRPC, the way the official test-runner does:
// actors are spread over the clients, every output of an action is kept
// by its index, and after every commit or join all participants must
// agree on the epoch authenticator and exported secret and read each
// other's application messages.

// configsEnv overrides where the scenario files are.
const configsEnv = "GROVE_INTEROP_CONFIGS"

func configsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(configsEnv)
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "spec", "interop", "configs")
	}
	if _, err := os.Stat(filepath.Join(dir, "welcome_join.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop scenario configs not found in %s (set %s): %v", dir, configsEnv, err)
		}
		t.Skipf("interop scenario configs not found in %s (set %s); skipping", dir, configsEnv)
	}
	return dir
}

type extensionJSON struct {
	Type uint32 `json:"extension_type"`
	Data []byte `json:"extension_data"` // base64 in the files
}

type descriptionJSON struct {
	ProposalType      string          `json:"proposalType"`
	KeyPackage        int             `json:"keyPackage"`
	Removed           string          `json:"removed"`
	PSKID             int             `json:"pskID"`
	EpochID           uint64          `json:"epochID"`
	Extensions        []extensionJSON `json:"extensions"`
	ChangeGroupID     bool            `json:"changeGroupID"`
	ChangeCipherSuite bool            `json:"changeCipherSuite"`
}

type stepJSON struct {
	Action            string            `json:"action"`
	Actor             string            `json:"actor"`
	Members           []string          `json:"members"`
	Joiners           []string          `json:"joiners"`
	Joiner            string            `json:"joiner"`
	KeyPackage        int               `json:"keyPackage"`
	Removed           string            `json:"removed"`
	ByReference       []int             `json:"byReference"`
	ByValue           []descriptionJSON `json:"byValue"`
	ForcePath         bool              `json:"force_path"`
	ForcePath2        bool              `json:"forcePath"`
	ExternalTree      bool              `json:"external_tree"`
	ExternalTree2     bool              `json:"externalTree"`
	AuthenticatedData string            `json:"authenticatedData"`
	Plaintext         string            `json:"plaintext"`
	Ciphertext        int               `json:"ciphertext"`
	Clients           []string          `json:"clients"`
	PSKID             int               `json:"pskID"`
	EpochID           uint64            `json:"epochID"`
	Extensions        []extensionJSON   `json:"extensions"`
	PSKs              []int             `json:"psks"`
	RemovePrior       bool              `json:"removePrior"`
	Signer            string            `json:"signer"`
	Member            string            `json:"member"`
	Description       *descriptionJSON  `json:"description"`
	Proposer          string            `json:"proposer"`
	Committer         string            `json:"committer"`
	Welcomer          string            `json:"welcomer"`
	ChangeCiphersuite bool              `json:"changeCiphersuite"`
	ChangeGroupID     bool              `json:"changeGroupID"`
	ReinitProposal    int               `json:"externalReinitProposal"`
}

func (s *stepJSON) forcePath() bool    { return s.ForcePath || s.ForcePath2 }
func (s *stepJSON) externalTree() bool { return s.ExternalTree || s.ExternalTree2 }

type configJSON struct {
	Scripts map[string][]stepJSON `json:"scripts"`
}

// output is what an action left for later actions to point at.
type output struct {
	keyPackage []byte
	proposal   []byte
	commit     []byte
	welcome    []byte
	ciphertext []byte
	plaintext  []byte
	authData   []byte
	psk        *pb.PreSharedKey
}

type actor struct {
	client int
	state  uint32 // 0: no session
	tx     uint32 // 0: no pending KeyPackage
	reinit uint32
}

type signer struct {
	client int
	id     uint32
	index  uint32
	sender []byte
}

type runner struct {
	t        *testing.T
	ctx      context.Context
	clients  []pb.MLSClientClient
	suite    uint32
	encrypt  bool
	actors   map[string]*actor
	order    int // actors seen, for spreading them over clients
	outputs  []output
	signers  map[string]*signer
	nSigners uint32
	// oneSender limits verify's message check to the first participant
	// (the committer) sending to all others, for large groups where every
	// pair would cost O(n^2) messages per commit.
	oneSender bool
}

func newRunner(t *testing.T, clients []pb.MLSClientClient, suite uint32, encrypt bool) *runner {
	return &runner{t: t, ctx: context.Background(), clients: clients, suite: suite, encrypt: encrypt,
		actors: map[string]*actor{}, signers: map[string]*signer{}}
}

func (r *runner) actor(name string) *actor {
	a, ok := r.actors[name]
	if !ok {
		a = &actor{client: r.order % len(r.clients)}
		r.order++
		r.actors[name] = a
	}
	return a
}

func (r *runner) rpc(name string) pb.MLSClientClient { return r.clients[r.actor(name).client] }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// play runs a script; it returns the first RPC error.
func (r *runner) play(steps []stepJSON) error {
	r.outputs = make([]output, len(steps))
	for i := range steps {
		if err := r.step(i, &steps[i]); err != nil {
			return fmt.Errorf("step %d (%s by %s): %w", i, steps[i].Action, steps[i].Actor, err)
		}
	}
	return nil
}

// free releases every session the script left.
func (r *runner) free() {
	for name, a := range r.actors {
		for _, id := range []uint32{a.state, a.tx, a.reinit} {
			if id != 0 {
				if _, err := r.rpc(name).Free(r.ctx, &pb.FreeRequest{StateId: id}); err != nil {
					r.t.Errorf("Free %d of %s: %v", id, name, err)
				}
			}
		}
	}
	for _, s := range r.signers {
		if _, err := r.clients[s.client].Free(r.ctx, &pb.FreeRequest{StateId: s.id}); err != nil {
			r.t.Errorf("Free signer: %v", err)
		}
	}
}

func (r *runner) createKeyPackage(name string) ([]byte, error) {
	resp, err := r.rpc(name).CreateKeyPackage(r.ctx, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(name)})
	if err != nil {
		return nil, err
	}
	a := r.actor(name)
	a.tx, a.state = resp.TransactionId, 0
	return resp.KeyPackage, nil
}

func (r *runner) description(d *descriptionJSON) *pb.ProposalDescription {
	out := &pb.ProposalDescription{ProposalType: []byte(d.ProposalType), EpochId: d.EpochID, Extensions: extensions(d.Extensions)}
	switch d.ProposalType {
	case "add":
		out.KeyPackage = r.outputs[d.KeyPackage].keyPackage
	case "remove":
		out.RemovedId = []byte(d.Removed)
	case "externalPSK":
		out.PskId = r.outputs[d.PSKID].psk.PskId
	case "reinit":
		out.GroupId, out.CipherSuite = []byte("reinit-group"), r.suite
		if d.ChangeGroupID {
			out.GroupId = randomBytes(16)
		}
		if d.ChangeCipherSuite {
			out.CipherSuite = otherSuite(r.suite)
		}
	}
	return out
}

func otherSuite(cs uint32) uint32 { return cs%7 + 1 }

func extensions(in []extensionJSON) []*pb.Extension {
	var out []*pb.Extension
	for _, e := range in {
		out = append(out, &pb.Extension{ExtensionType: e.Type, ExtensionData: e.Data})
	}
	return out
}

func (r *runner) proposals(idx []int) [][]byte {
	var out [][]byte
	for _, i := range idx {
		out = append(out, r.outputs[i].proposal)
	}
	return out
}

func (r *runner) step(i int, s *stepJSON) error {
	out := &r.outputs[i]
	switch s.Action {
	case "createGroup":
		resp, err := r.rpc(s.Actor).CreateGroup(r.ctx, &pb.CreateGroupRequest{
			GroupId: randomBytes(16), CipherSuite: r.suite, EncryptHandshake: r.encrypt, Identity: []byte(s.Actor),
		})
		if err != nil {
			return err
		}
		r.actor(s.Actor).state = resp.StateId
		if len(s.Members) == 0 {
			return r.verify([]string{s.Actor})
		}
		var adds []*pb.ProposalDescription
		for _, m := range s.Members {
			kp, err := r.createKeyPackage(m)
			if err != nil {
				return err
			}
			adds = append(adds, &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp})
		}
		return r.fullCommit(s.Actor, nil, adds, nil, s.Members, false, false)

	case "createKeyPackage":
		kp, err := r.createKeyPackage(s.Actor)
		out.keyPackage = kp
		return err

	case "addProposal":
		resp, err := r.rpc(s.Actor).AddProposal(r.ctx, &pb.AddProposalRequest{StateId: r.actor(s.Actor).state, KeyPackage: r.outputs[s.KeyPackage].keyPackage})
		return r.keepProposal(out, resp, err)
	case "removeProposal":
		resp, err := r.rpc(s.Actor).RemoveProposal(r.ctx, &pb.RemoveProposalRequest{StateId: r.actor(s.Actor).state, RemovedId: []byte(s.Removed)})
		return r.keepProposal(out, resp, err)
	case "updateProposal":
		resp, err := r.rpc(s.Actor).UpdateProposal(r.ctx, &pb.UpdateProposalRequest{StateId: r.actor(s.Actor).state})
		return r.keepProposal(out, resp, err)
	case "externalPSKProposal":
		resp, err := r.rpc(s.Actor).ExternalPSKProposal(r.ctx, &pb.ExternalPSKProposalRequest{StateId: r.actor(s.Actor).state, PskId: r.outputs[s.PSKID].psk.PskId})
		return r.keepProposal(out, resp, err)
	case "resumptionPSKProposal":
		resp, err := r.rpc(s.Actor).ResumptionPSKProposal(r.ctx, &pb.ResumptionPSKProposalRequest{StateId: r.actor(s.Actor).state, EpochId: s.EpochID})
		return r.keepProposal(out, resp, err)
	case "groupContextExtensionsProposal":
		resp, err := r.rpc(s.Actor).GroupContextExtensionsProposal(r.ctx, &pb.GroupContextExtensionsProposalRequest{
			StateId: r.actor(s.Actor).state, Extensions: extensions(s.Extensions)})
		return r.keepProposal(out, resp, err)

	case "installExternalPSK":
		psk := &pb.PreSharedKey{PskId: randomBytes(8), PskSecret: randomBytes(32)}
		for _, c := range s.Clients {
			a := r.actor(c)
			id := a.state
			if id == 0 {
				id = a.tx
			}
			if _, err := r.rpc(c).StorePSK(r.ctx, &pb.StorePSKRequest{StateOrTransactionId: id, PskId: psk.PskId, PskSecret: psk.PskSecret}); err != nil {
				return err
			}
		}
		out.psk = psk
		return nil

	case "fullCommit":
		var byValue []*pb.ProposalDescription
		for j := range s.ByValue {
			byValue = append(byValue, r.description(&s.ByValue[j]))
		}
		return r.fullCommit(s.Actor, r.proposals(s.ByReference), byValue, s.Members, s.Joiners, s.forcePath(), s.externalTree())

	case "externalJoin":
		gi, err := r.rpc(s.Actor).GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.actor(s.Actor).state, ExternalTree: s.externalTree()})
		if err != nil {
			return err
		}
		var psks []*pb.PreSharedKey
		for _, p := range s.PSKs {
			psks = append(psks, r.outputs[p].psk)
		}
		resp, err := r.rpc(s.Joiner).ExternalJoin(r.ctx, &pb.ExternalJoinRequest{
			GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, EncryptHandshake: r.encrypt,
			Identity: []byte(s.Joiner), RemovePrior: s.RemovePrior, Psks: psks,
		})
		if err != nil {
			return err
		}
		r.actor(s.Joiner).state = resp.StateId
		for _, m := range append([]string{s.Actor}, s.Members...) {
			if err := r.handleCommit(m, nil, resp.Commit); err != nil {
				return err
			}
		}
		return r.verify(append([]string{s.Actor, s.Joiner}, s.Members...))

	case "protect":
		out.plaintext, out.authData = []byte(s.Plaintext), []byte(s.AuthenticatedData)
		resp, err := r.rpc(s.Actor).Protect(r.ctx, &pb.ProtectRequest{StateId: r.actor(s.Actor).state, Plaintext: out.plaintext, AuthenticatedData: out.authData})
		if err != nil {
			return err
		}
		out.ciphertext = resp.Ciphertext
		return nil
	case "unprotect":
		in := r.outputs[s.Ciphertext]
		resp, err := r.rpc(s.Actor).Unprotect(r.ctx, &pb.UnprotectRequest{StateId: r.actor(s.Actor).state, Ciphertext: in.ciphertext})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Plaintext, in.plaintext) || !bytes.Equal(resp.AuthenticatedData, in.authData) {
			return fmt.Errorf("unprotect gave %q/%q, want %q/%q", resp.Plaintext, resp.AuthenticatedData, in.plaintext, in.authData)
		}
		return nil

	case "newMemberAddProposal":
		gi, err := r.rpc(s.Actor).GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.actor(s.Actor).state})
		if err != nil {
			return err
		}
		resp, err := r.rpc(s.Joiner).NewMemberAddProposal(r.ctx, &pb.NewMemberAddProposalRequest{GroupInfo: gi.GroupInfo, Identity: []byte(s.Joiner)})
		if err != nil {
			return err
		}
		a := r.actor(s.Joiner)
		a.tx, a.state = resp.TransactionId, 0
		out.proposal = resp.Proposal
		return nil

	case "addExternalSigner":
		sg, ok := r.signers[s.Signer]
		if !ok {
			c := r.actor(s.Signer).client
			resp, err := r.clients[c].CreateExternalSigner(r.ctx, &pb.CreateExternalSignerRequest{CipherSuite: r.suite, Identity: []byte(s.Signer)})
			if err != nil {
				return err
			}
			sg = &signer{client: c, id: resp.SignerId, index: r.nSigners, sender: resp.ExternalSender}
			r.nSigners++
			r.signers[s.Signer] = sg
		}
		resp, err := r.rpc(s.Actor).AddExternalSigner(r.ctx, &pb.AddExternalSignerRequest{StateId: r.actor(s.Actor).state, ExternalSender: sg.sender})
		return r.keepProposal(out, resp, err)

	case "externalSignerProposal":
		sg, ok := r.signers[s.Actor]
		if !ok {
			return fmt.Errorf("no external signer %q", s.Actor)
		}
		gi, err := r.rpc(s.Member).GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.actor(s.Member).state})
		if err != nil {
			return err
		}
		resp, err := r.clients[sg.client].ExternalSignerProposal(r.ctx, &pb.ExternalSignerProposalRequest{
			SignerId: sg.id, SignerIndex: sg.index, GroupInfo: gi.GroupInfo, Description: r.description(s.Description),
		})
		return r.keepProposal(out, resp, err)

	case "reinit":
		return r.reinit(s)
	case "branch":
		return r.branch(s)
	}
	return fmt.Errorf("runner: unknown action %q", s.Action)
}

func (r *runner) keepProposal(out *output, resp *pb.ProposalResponse, err error) error {
	if err != nil {
		return err
	}
	out.proposal = resp.Proposal
	return nil
}

func (r *runner) handleCommit(name string, proposals [][]byte, commit []byte) error {
	a := r.actor(name)
	resp, err := r.rpc(name).HandleCommit(r.ctx, &pb.HandleCommitRequest{StateId: a.state, Proposal: proposals, Commit: commit})
	if err != nil {
		return fmt.Errorf("%s handles commit: %w", name, err)
	}
	a.state = resp.StateId
	return nil
}

// fullCommit: the committer commits, members handle the commit, the
// committer merges its own, joiners join from the Welcome; then all agree.
func (r *runner) fullCommit(committer string, byRef [][]byte, byValue []*pb.ProposalDescription, members, joiners []string, forcePath, externalTree bool) error {
	c := r.actor(committer)
	resp, err := r.rpc(committer).Commit(r.ctx, &pb.CommitRequest{StateId: c.state, ByReference: byRef, ByValue: byValue, ForcePath: forcePath, ExternalTree: externalTree})
	if err != nil {
		return fmt.Errorf("%s commits: %w", committer, err)
	}
	if externalTree != (len(resp.RatchetTree) > 0) {
		return fmt.Errorf("external_tree %v but ratchet_tree of %d bytes", externalTree, len(resp.RatchetTree))
	}
	for _, m := range members {
		if err := r.handleCommit(m, byRef, resp.Commit); err != nil {
			return err
		}
	}
	pc, err := r.rpc(committer).HandlePendingCommit(r.ctx, &pb.HandlePendingCommitRequest{StateId: c.state})
	if err != nil {
		return fmt.Errorf("%s merges own commit: %w", committer, err)
	}
	c.state = pc.StateId
	for _, j := range joiners {
		a := r.actor(j)
		jr, err := r.rpc(j).JoinGroup(r.ctx, &pb.JoinGroupRequest{TransactionId: a.tx, Welcome: resp.Welcome, EncryptHandshake: r.encrypt, Identity: []byte(j), RatchetTree: resp.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s joins: %w", j, err)
		}
		a.state, a.tx = jr.StateId, 0
	}
	return r.verify(append(append([]string{committer}, members...), joiners...))
}

// verify checks that the named actors share the group state (the harness's
// "Verify group state", test-scenarios.md): the same epoch authenticator
// and exported secret, and each one's application message is read by all
// others.
func (r *runner) verify(names []string) error {
	var auth, exp []byte
	for _, n := range names {
		a := r.actor(n)
		sa, err := r.rpc(n).StateAuth(r.ctx, &pb.StateAuthRequest{StateId: a.state})
		if err != nil {
			return fmt.Errorf("%s state auth: %w", n, err)
		}
		ex, err := r.rpc(n).Export(r.ctx, &pb.ExportRequest{StateId: a.state, Label: "interop", Context: []byte("ctx"), KeyLength: 32})
		if err != nil {
			return fmt.Errorf("%s export: %w", n, err)
		}
		if auth == nil {
			auth, exp = sa.StateAuthSecret, ex.ExportedSecret
		} else if !bytes.Equal(auth, sa.StateAuthSecret) || !bytes.Equal(exp, ex.ExportedSecret) {
			return fmt.Errorf("%s disagrees with %s on the group state", n, names[0])
		}
	}
	if len(auth) == 0 {
		return fmt.Errorf("empty epoch authenticator")
	}
	senders := names
	if r.oneSender {
		senders = names[:1]
	}
	for _, from := range senders {
		msg := []byte("from " + from)
		ct, err := r.rpc(from).Protect(r.ctx, &pb.ProtectRequest{StateId: r.actor(from).state, Plaintext: msg, AuthenticatedData: []byte("ad")})
		if err != nil {
			return fmt.Errorf("%s protects: %w", from, err)
		}
		for _, to := range names {
			if to == from {
				continue
			}
			pt, err := r.rpc(to).Unprotect(r.ctx, &pb.UnprotectRequest{StateId: r.actor(to).state, Ciphertext: ct.Ciphertext})
			if err != nil {
				return fmt.Errorf("%s reads %s: %w", to, from, err)
			}
			if !bytes.Equal(pt.Plaintext, msg) {
				return fmt.Errorf("%s reads %q from %s", to, pt.Plaintext, from)
			}
		}
	}
	return nil
}

func unique(names ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// reinit: a ReInit is proposed (by a member or an external signer),
// committed, every member closes the group with a KeyPackage for the
// successor, the welcomer creates it and the others join.
func (r *runner) reinit(s *stepJSON) error {
	everyone := unique(append([]string{s.Proposer, s.Committer, s.Welcomer}, s.Members...)...)
	var proposal []byte
	if s.ReinitProposal != 0 {
		proposal = r.outputs[s.ReinitProposal].proposal
	} else {
		cs, gid := r.suite, []byte("same")
		if s.ChangeCiphersuite {
			cs = otherSuite(r.suite)
		}
		if s.ChangeGroupID {
			gid = randomBytes(16)
		}
		resp, err := r.rpc(s.Proposer).ReInitProposal(r.ctx, &pb.ReInitProposalRequest{
			StateId: r.actor(s.Proposer).state, CipherSuite: cs, GroupId: gid, Extensions: extensions(s.Extensions)})
		if err != nil {
			return err
		}
		proposal = resp.Proposal
	}
	c := r.actor(s.Committer)
	cr, err := r.rpc(s.Committer).ReInitCommit(r.ctx, &pb.CommitRequest{StateId: c.state, ByReference: [][]byte{proposal}, ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return fmt.Errorf("%s commits the reinit: %w", s.Committer, err)
	}
	keyPackages := map[string][]byte{}
	for _, n := range everyone {
		a := r.actor(n)
		var hr *pb.HandleReInitCommitResponse
		if n == s.Committer {
			hr, err = r.rpc(n).HandlePendingReInitCommit(r.ctx, &pb.HandlePendingCommitRequest{StateId: a.state})
		} else {
			hr, err = r.rpc(n).HandleReInitCommit(r.ctx, &pb.HandleCommitRequest{StateId: a.state, Proposal: [][]byte{proposal}, Commit: cr.Commit})
		}
		if err != nil {
			return fmt.Errorf("%s handles the reinit commit: %w", n, err)
		}
		a.state, a.reinit = 0, hr.ReinitId
		keyPackages[n] = hr.KeyPackage
	}
	var kps [][]byte
	for _, n := range everyone {
		if n != s.Welcomer {
			kps = append(kps, keyPackages[n])
		}
	}
	w := r.actor(s.Welcomer)
	wr, err := r.rpc(s.Welcomer).ReInitWelcome(r.ctx, &pb.ReInitWelcomeRequest{ReinitId: w.reinit, KeyPackage: kps, ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return fmt.Errorf("%s creates the successor: %w", s.Welcomer, err)
	}
	w.state, w.reinit = wr.StateId, 0
	for _, n := range everyone {
		if n == s.Welcomer {
			continue
		}
		a := r.actor(n)
		jr, err := r.rpc(n).HandleReInitWelcome(r.ctx, &pb.HandleReInitWelcomeRequest{ReinitId: a.reinit, Welcome: wr.Welcome, RatchetTree: wr.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s joins the successor: %w", n, err)
		}
		a.state, a.reinit = jr.StateId, 0
	}
	return r.verify(everyone)
}

// branch: the actor branches a subgroup with the members, who join it
// with fresh KeyPackages.
func (r *runner) branch(s *stepJSON) error {
	var kps [][]byte
	txs := map[string]uint32{}
	for _, m := range s.Members {
		resp, err := r.rpc(m).CreateKeyPackage(r.ctx, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(m)})
		if err != nil {
			return err
		}
		kps = append(kps, resp.KeyPackage)
		txs[m] = resp.TransactionId
	}
	a := r.actor(s.Actor)
	br, err := r.rpc(s.Actor).CreateBranch(r.ctx, &pb.CreateBranchRequest{StateId: a.state, GroupId: randomBytes(16),
		Extensions: extensions(s.Extensions), KeyPackages: kps, ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return fmt.Errorf("%s branches: %w", s.Actor, err)
	}
	a.state = br.StateId
	for _, m := range s.Members {
		ma := r.actor(m)
		hr, err := r.rpc(m).HandleBranch(r.ctx, &pb.HandleBranchRequest{StateId: ma.state, TransactionId: txs[m], Welcome: br.Welcome, RatchetTree: br.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s joins the branch: %w", m, err)
		}
		ma.state = hr.StateId
	}
	return r.verify(append([]string{s.Actor}, s.Members...))
}

// unsupported lists the scripts that need what the mls package lacks
// (none at present); they must fail with codes.Unimplemented (never a fake
// success), and every other script must pass.
var unsupported = map[string]string{}

// playConfigs plays the named config files for every suite, with and
// without handshake encryption, between two in-process clients.
func playConfigs(t *testing.T, files []string, suiteFilter func(uint32) bool, modes []bool, oneSender bool) {
	dir := configsDir(t)
	clients := []pb.MLSClientClient{dial(t), dial(t)}
	suites, err := clients[0].SupportedCiphersuites(context.Background(), &pb.SupportedCiphersuitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(dir, file+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg configJSON
		if err := json.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		names := make([]string, 0, len(cfg.Scripts))
		for n := range cfg.Scripts {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, cs := range suites.Ciphersuites {
				if suiteFilter != nil && !suiteFilter(cs) {
					continue
				}
				for _, encrypt := range modes {
					t.Run(fmt.Sprintf("%s/%s/suite%d/encrypt=%v", file, name, cs, encrypt), func(t *testing.T) {
						r := newRunner(t, clients, cs, encrypt)
						r.oneSender = oneSender
						defer r.free()
						err := r.play(cfg.Scripts[name])
						why, known := unsupported[file+"/"+name]
						switch {
						case known && status.Code(err) == codes.Unimplemented:
							t.Logf("unsupported as expected (%s): %v", why, err)
						case known:
							t.Fatalf("listed as unsupported (%s) but got %v", why, err)
						case err != nil:
							t.Fatal(err)
						}
					})
				}
			}
		}
	}
}

func TestScenariosCore(t *testing.T) {
	playConfigs(t, []string{"welcome_join", "application", "commit", "external_join"}, nil, bothModes, false)
}

func TestScenariosExtended(t *testing.T) {
	playConfigs(t, []string{"external_proposals", "reinit", "branch"}, nil, bothModes, false)
}

var bothModes = []bool{false, true}

// TestScenariosDeepRandom plays the large random lifecycle (groups of
// dozens of members, 90 commits, external joins) in suite 1 with
// encrypted handshakes only: each run takes about 30 s on two cores; the
// other tests cover every suite and both modes.
func TestScenariosDeepRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("deep_random is slow; skipped with -short")
	}
	playConfigs(t, []string{"deep_random"}, func(cs uint32) bool { return cs == 1 }, []bool{true}, true)
}
