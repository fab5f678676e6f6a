package p2p

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second load returned a different key")
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("peer id changed: %s vs %s", id1, id2)
	}
}

func TestIdentityCorruptFile(t *testing.T) {
	good, _, _ := crypto.GenerateEd25519Key(nil)
	goodBytes, _ := crypto.MarshalPrivateKey(good)
	rsa, _, _ := crypto.GenerateECDSAKeyPair(nil)
	rsaBytes, _ := crypto.MarshalPrivateKey(rsa)
	mismatched := append([]byte(nil), goodBytes...)
	mismatched[len(mismatched)-1] ^= 1 // flip a bit of the embedded public key

	tests := map[string][]byte{
		"empty":         {},
		"garbage":       []byte("not a key at all"),
		"truncated":     goodBytes[:len(goodBytes)-5],
		"wrong type":    rsaBytes,
		"halves differ": mismatched,
		"too large":     make([]byte, maxKeyFileSize+10),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIdentity(path)
			var kfe *KeyFileError
			if !errors.Is(err, ErrCorruptKey) || !errors.As(err, &kfe) {
				t.Fatalf("got %v, want *KeyFileError matching ErrCorruptKey", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(data) {
				t.Fatal("corrupt key file was modified")
			}
		})
	}
}

func TestIdentityRejectsOpenPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := LoadOrCreateIdentity(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(path); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("got %v, want ErrKeyPermissions", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := loopbackConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := map[string]func(*Config){
		"no listen":         func(c *Config) { c.Listen = nil },
		"bad listen":        func(c *Config) { c.Listen = []string{"not-an-addr"} },
		"bad bootstrap":     func(c *Config) { c.BootstrapPeers = []string{"/ip4/127.0.0.1/tcp/1"} },
		"low above high":    func(c *Config) { c.ConnLowWater, c.ConnHighWater = 50, 10 },
		"negative size":     func(c *Config) { c.MaxMessageSize = -1 },
		"negative timeout":  func(c *Config) { c.StreamTimeout = -time.Second },
		"frame over limit":  func(c *Config) { c.MaxFrameSize = MaxFrameSizeLimit + 1 },
		"heartbeat too low": func(c *Config) { c.HeartbeatInterval = time.Millisecond },
		"both reachability": func(c *Config) { c.ForcePrivateReachability, c.ForcePublicReachability = true, true },
	}
	for name, mod := range bad {
		t.Run(name, func(t *testing.T) {
			c := loopbackConfig()
			mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestHostStartsOnLoopbackAndConnects(t *testing.T) {
	checkLeaks(t)
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	var tcp, quic bool
	for _, addr := range a.AddrInfo().Addrs {
		s := addr.String()
		if !hasPrefix(s, "/ip4/127.0.0.1/") {
			t.Fatalf("listening on non-loopback address %s", s)
		}
		tcp = tcp || contains(s, "/tcp/")
		quic = quic || contains(s, "/quic-v1")
	}
	if !tcp || !quic {
		t.Fatalf("want TCP and QUIC listeners, got %v", a.AddrInfo().Addrs)
	}
	connect(t, a, b)
	select {
	case ev := <-b.Events():
		if ev.Peer != a.ID() || ev.Kind != PeerConnected {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connect event")
	}
	if got := a.Peers(); len(got) != 1 || got[0] != b.ID() {
		t.Fatalf("Peers = %v", got)
	}
	if as := a.PeerAddrs(b.ID()); len(as) == 0 || !hasPrefix(as[0].String(), "/ip4/127.0.0.1/") {
		t.Fatalf("PeerAddrs = %v", as)
	}
	if as := a.PeerAddrs(a.ID()); len(as) != 0 {
		t.Fatalf("PeerAddrs of an unconnected peer = %v", as)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case ev := <-b.Events():
		if ev.Peer != a.ID() || ev.Kind != PeerDisconnected {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no disconnect event")
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestAllOptionsStartAndStop starts a host with every optional service this
// package offers (mDNS aside, which runs only inside test namespaces) and
// checks that Close stops everything it started.
func TestAllOptionsStartAndStop(t *testing.T) {
	checkLeaks(t)
	relay := newTestHost(t, func(c *Config) { c.EnableRelayService = true; c.ForcePublicReachability = true })
	relayAddr := relay.AddrInfo().Addrs[0].String() + "/p2p/" + relay.ID().String()
	dir := t.TempDir()
	h := newTestHost(t, func(c *Config) {
		c.IdentityFile = filepath.Join(dir, "id.key")
		c.PeerstoreFile = filepath.Join(dir, "peers.json")
		c.PeerstoreSaveInterval = 50 * time.Millisecond
		c.EnableDHT = true
		c.BootstrapPeers = []string{relayAddr}
		c.EnableHolePunching = true
		c.EnableAutoNAT = true
		c.StaticRelays = []string{relayAddr}
		c.ForcePrivateReachability = true
	})
	if _, err := h.Subscribe(GroupID("g"), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "periodic peer file save", func() bool {
		known, err := loadPeerFile(filepath.Join(dir, "peers.json"), 10)
		return err == nil && len(known) == 1 && known[0].ID == relay.ID()
	})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// The AutoNAT service runs only when reachability is not forced.
	natSvc := newTestHost(t, func(c *Config) { c.EnableAutoNAT = true; c.EnableHolePunching = true })
	connect(t, natSvc, relay)
	if err := natSvc.Close(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	b, _ := crypto.MarshalPrivateKey(k)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01, 0x12, 0x40})
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := parseIdentity("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrCorruptKey) {
				t.Fatalf("error %v does not match ErrCorruptKey", err)
			}
			return
		}
		again, err := crypto.MarshalPrivateKey(key)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted key does not re-encode to its input")
		}
	})
}
