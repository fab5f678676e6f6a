// People and devices (package account has the design): this device's
// account and certificate, the credential identity that carries it
// (identity version 2), checking other members' certificates, admin rights
// by account, and the account's device list. Linking is in link.go,
// revocation in revoke.go.

package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/account"
	"grove/mls"
	"grove/store"
)

// Settings of the account.
const (
	settingAccountKey  = "account.key"         // the account key's seed
	settingDevices     = "account.devices"     // vec(certificate)*, ours first
	settingRevocations = "account.revocations" // vec(revocation)*, any account's
	settingRevokedSelf = "account.revoked-self"
	defaultDeviceName  = "device"
)

// devState is what the node knows about accounts. A home made before
// accounts has no key and keeps its identity version 1.
type devState struct {
	mu      sync.Mutex
	key     *account.Key
	cert    *account.Certificate   // ours
	devices []*account.Certificate // the account's devices known here, ours first
	revoked account.Revocations
	// rotations: the account rotations known here, any account's
	// (accountrotate.go).
	rotations account.Rotations
	links     map[[8]byte]*pendingLink // link codes issued and not yet used (link.go)
	used      map[[8]byte]bool         // link codes used, so a replay is told so
	// selfRevoked: our own account revoked this device; it no longer
	// links devices or signs for the account.
	selfRevoked bool
	linked      *linkResult // the link made at this start (link.go)
	// lastSeen: when each peer was last connected (DeviceList).
	lastSeen map[peer.ID]time.Time
	// adoptMu serialises adoptGroup (join.go): a restored device's own
	// rejoin (accountjoin.go) may race a join of the same group.
	adoptMu sync.Mutex
}

// loadAccount returns this device's identity. A home with an account key
// gets identity version 2 with its certificate; a fresh home (no key, no
// group yet) makes an account, or takes one by linking (cfg.Link) or from a
// backup (cfg.Restore); an older home with groups keeps version 1, since
// changing the identity would make it somebody else in its groups.
func (n *Node) loadAccount(name string) (memberIdentity, error) {
	self := memberIdentity{Name: name, Peer: n.net.ID()}
	if err := n.loadRevocations(); err != nil {
		return self, err
	}
	if err := n.loadRotations(); err != nil {
		return self, err
	}
	if _, err := n.db.Setting(settingRevokedSelf); err == nil {
		n.dev.selfRevoked = true
	}
	seed, err := n.db.Setting(settingAccountKey)
	switch {
	case err == nil && (n.cfg.Link != "" || n.cfg.Restore != nil):
		clear(seed)
		return self, fmt.Errorf("%w: this home already holds a device of an account: link or restore into a fresh home", ErrInvalidConfig)
	case err == nil:
		k, err := account.ParseKey(seed)
		clear(seed)
		if err != nil {
			return self, fmt.Errorf("node: stored account key: %w", store.ErrCorrupt)
		}
		n.dev.key = k
		if n.dev.devices, err = n.readDevices(); err != nil {
			return self, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return self, fmt.Errorf("node: read account key: %w", err)
	default:
		groups, err := n.db.Groups()
		if err != nil {
			return self, fmt.Errorf("node: list groups: %w", err)
		}
		if len(groups) > 0 {
			return self, nil // an identity-1 home: see above
		}
		if err := n.makeAccount(name); err != nil {
			return self, err
		}
	}
	for _, c := range n.dev.devices {
		if c.Binds(n.sig.PublicKey(), []byte(n.net.ID())) == nil {
			n.dev.cert = c
		}
	}
	if n.dev.cert == nil {
		// The peer key changed under the home (a lost peer.key, or a
		// test's in-memory network): the account certifies the device's
		// keys as they are now.
		acctName := name
		if len(n.dev.devices) > 0 {
			acctName = n.dev.devices[0].Device.AccountName
		}
		d := n.deviceFor(acctName)
		for _, c := range n.dev.devices {
			if bytes.Equal(c.Device.SignatureKey, d.SignatureKey) {
				d.Name = c.Device.Name
			}
		}
		c, err := n.dev.key.Certify(d)
		if err != nil {
			return self, fmt.Errorf("node: certify this device: %w", err)
		}
		n.dev.cert = c
		n.dev.devices = append([]*account.Certificate{c}, n.dev.devices...)
		if err := n.writeDevices(); err != nil {
			return self, err
		}
	}
	self.Name, self.Cert = n.dev.cert.Device.AccountName, n.dev.cert
	// After a rotation the credential keeps carrying the certificate of
	// the key it was made under (accountrotate.go).
	ic, err := n.identityCert()
	if err != nil {
		return self, err
	}
	if ic != nil && ic.Binds(n.sig.PublicKey(), []byte(n.net.ID())) == nil {
		self.Name, self.Cert = ic.Device.AccountName, ic
	}
	return self, nil
}

// makeAccount gives a fresh home its account: linked from another device,
// restored from a backup, or new.
func (n *Node) makeAccount(name string) error {
	switch {
	case n.cfg.Link != "":
		return n.linkFresh()
	case n.cfg.Restore != nil:
		return n.restoreAccount(n.cfg.Restore)
	}
	k, err := account.Generate(rand.Reader)
	if err != nil {
		return err
	}
	c, err := k.Certify(n.deviceFor(name))
	if err != nil {
		return fmt.Errorf("node: certify this device: %w", err)
	}
	return n.saveAccount(k, []*account.Certificate{c}, nil)
}

// deviceFor describes this device for a certificate of accountName.
func (n *Node) deviceFor(accountName string) account.Device {
	dn := n.cfg.DeviceName
	if dn == "" {
		dn = defaultDeviceName
	}
	return account.Device{
		AccountName: accountName, Name: dn, SignatureKey: n.sig.PublicKey(),
		Peer: []byte(n.net.ID()), Created: n.cfg.Clock.Now(),
	}
}

// saveAccount stores the account key, its devices (ours first) and the
// revocations in one go.
func (n *Node) saveAccount(k *account.Key, devices []*account.Certificate, revs []*account.Revocation) error {
	seed := k.Bytes()
	defer clear(seed)
	if err := n.db.SetSetting(settingAccountKey, seed); err != nil {
		return fmt.Errorf("node: save account key: %w", err)
	}
	n.dev.key = k
	n.dev.devices = devices
	if err := n.writeDevices(); err != nil {
		return err
	}
	for _, r := range revs {
		if _, err := n.dev.revoked.Add(r, r.Account); err != nil {
			return fmt.Errorf("node: account revocation: %w", err)
		}
	}
	return n.writeRevocations()
}

func (n *Node) readDevices() ([]*account.Certificate, error) {
	raw, err := n.db.Setting(settingDevices)
	if err != nil {
		return nil, fmt.Errorf("node: read device list: %w", err)
	}
	var out []*account.Certificate
	r := rbuf{b: raw}
	for len(r.b) > 0 && r.err == nil {
		c, err := account.ParseCertificate(r.vec(maxIdentity, "device"))
		if err != nil {
			return nil, fmt.Errorf("node: stored device list: %w", store.ErrCorrupt)
		}
		out = append(out, c)
	}
	if r.err != nil {
		return nil, fmt.Errorf("node: stored device list: %w", store.ErrCorrupt)
	}
	return out, nil
}

// writeDevices stores n.dev.devices; the caller holds n.dev.mu or runs
// before Start returns.
func (n *Node) writeDevices() error {
	var w wbuf
	for _, c := range n.dev.devices {
		w.vec(c.Marshal())
	}
	if err := n.db.SetSetting(settingDevices, w.b); err != nil {
		return fmt.Errorf("node: save device list: %w", err)
	}
	return nil
}

func (n *Node) loadRevocations() error {
	raw, err := n.db.Setting(settingRevocations)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: read revocations: %w", err)
	}
	r := rbuf{b: raw}
	for len(r.b) > 0 && r.err == nil {
		rv, err := account.ParseRevocation(r.vec(1024, "revocation"))
		if err != nil {
			return fmt.Errorf("node: stored revocations: %w", store.ErrCorrupt)
		}
		if _, err := n.dev.revoked.Add(rv, rv.Account); err != nil {
			return fmt.Errorf("node: stored revocations: %w", store.ErrCorrupt)
		}
	}
	return nil
}

func (n *Node) writeRevocations() error {
	var w wbuf
	for _, r := range n.dev.revoked.List() {
		w.vec(r.Marshal())
	}
	if err := n.db.SetSetting(settingRevocations, w.b); err != nil {
		return fmt.Errorf("node: save revocations: %w", err)
	}
	return nil
}

// ---- other members' devices ----

// ErrDeviceCertificate is wrapped when a member's device certificate does
// not hold: not signed by the account it names, or not for the leaf that
// carries it.
var ErrDeviceCertificate = errors.New("node: device certificate refused")

// verifyDevice parses identity and, when it carries a device certificate,
// checks it against the leaf's signature key: signed by the account it
// names and certifying this very key and peer id. A certificate copied from
// another member's leaf, or signed by another account than it names, is
// refused. The certificate it returns names the key.
func verifyDevice(identity, sigKey []byte) (memberIdentity, error) {
	mi, err := parseIdentity(identity)
	if err != nil {
		return mi, err
	}
	if mi.Cert != nil {
		// The identity leaves the key out: the certificate is over the
		// leaf's own key, so one copied to another leaf does not verify.
		mi.Cert.Device.SignatureKey = bytes.Clone(sigKey)
		if err := mi.Cert.Verify(); err != nil {
			return mi, fmt.Errorf("%w: %w", ErrDeviceCertificate, err)
		}
	}
	return mi, nil
}

// memberAccount is the current account key of member m of g when its
// identity carries a certificate that holds for its leaf and that the
// account rotations in g's policy accept, else nil.
func memberAccount(g *mls.Group, m mls.Member) account.PublicKey {
	return memberAccountIn(groupRotations(g), m)
}

// memberAccountIn is memberAccount under the rotations rots.
func memberAccountIn(rots *account.Rotations, m mls.Member) account.PublicKey {
	mi, err := verifyDevice(m.Identity, m.SignatureKey)
	if err != nil || mi.Cert == nil {
		return nil
	}
	k, err := rots.Accept(mi.Cert)
	if err != nil {
		return nil
	}
	return k
}

// ---- admin rights belong to the account ----

// adminAccounts lists the accounts of the admins in g's policy: a device
// certified by one of them is an admin too. Read from the group state
// alone, so every member judges commits alike.
func adminAccounts(g *mls.Group, admins [][]byte) []account.PublicKey {
	rots := groupRotations(g)
	var out []account.PublicKey
	for _, ad := range admins {
		for _, m := range g.Members() {
			if bytes.Equal(m.Identity, ad) {
				if k := memberAccountIn(rots, m); k != nil {
					out = append(out, k)
				}
			}
		}
	}
	return out
}

// groupAdmins returns the identities that may add and remove in g: the
// policy's admins and every member certified by an admin's account. Empty
// means everyone may.
func groupAdmins(g *mls.Group) [][]byte {
	admins := groupPolicy(g).Admins
	accts := adminAccounts(g, admins)
	if len(accts) == 0 {
		return admins
	}
	rots := groupRotations(g)
	out := slices.Clone(admins)
	for _, m := range g.Members() {
		if slices.ContainsFunc(out, func(b []byte) bool { return bytes.Equal(b, m.Identity) }) {
			continue
		}
		if k := memberAccountIn(rots, m); k != nil && slices.ContainsFunc(accts, k.Equal) {
			out = append(out, m.Identity)
		}
	}
	return out
}

// isGroupAdmin reports whether identity may add and remove in g.
func isGroupAdmin(g *mls.Group, identity []byte) bool {
	admins := groupAdmins(g)
	return len(admins) == 0 || slices.ContainsFunc(admins, func(b []byte) bool { return bytes.Equal(b, identity) })
}

// ---- revoked devices (enforced locally; see revoke.go) ----

// revokedIdentity reports whether identity carries a certificate that a
// known revocation covers, or that a known rotation of its account key
// does not keep (accountrotate.go).
func (n *Node) revokedIdentity(identity []byte) bool {
	mi, err := parseIdentity(identity)
	if err != nil || mi.Cert == nil {
		return false
	}
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if _, err := n.dev.rotations.Accept(mi.Cert); err != nil {
		return true
	}
	return n.dev.revoked.RevokedUnder(mi.Cert, &n.dev.rotations) != nil
}

// revokedPeer reports whether p is a device some known revocation covers.
func (n *Node) revokedPeer(p peer.ID) bool {
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	for _, r := range n.dev.revoked.List() {
		if string(r.Peer) == string(p) {
			return true
		}
	}
	return false
}

// deviceName and accountFingerprint describe an identity's certificate,
// empty without one.
func (m memberIdentity) deviceName() string {
	if m.Cert == nil {
		return ""
	}
	return m.Cert.Device.Name
}

func (m memberIdentity) accountFingerprint() string {
	if m.Cert == nil {
		return ""
	}
	return m.Cert.Account.Fingerprint()
}

// validDeviceName checks a device name: a name as names.go wants it, of
// at most maxDeviceNameLen bytes.
func validDeviceName(name string) error {
	if err := checkName(name); err != nil || len(name) > maxDeviceNameLen {
		return fmt.Errorf("device name %q cannot be used (use 1 to %d bytes of visible letters, digits, punctuation and spaces)", name, maxDeviceNameLen)
	}
	return nil
}
