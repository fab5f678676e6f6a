package testnet

import (
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/p2p"
)

// TestFaultNetForwardsKeeper: the node finds the host's keeper by type
// assertion on its network; on a faultNet it must still find it, or an
// in-process testnet node never redials a dropped connection (it did not:
// TestHealAfterLinkCut had no link back two minutes after a cut).
func TestFaultNetForwardsKeeper(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := p2p.New(p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	other, err := p2p.New(p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var nw p2p.Network = &faultNet{Network: h, part: &partition{}}
	k, ok := nw.(p2p.Keeper)
	if !ok {
		t.Fatal("faultNet hides the host's keeper")
	}
	k.KeepConnected("g", []peer.ID{other.ID()})
	if s := k.KeepStatus("g"); s.Wanted != 1 {
		t.Fatalf("KeepStatus through faultNet = %+v, want 1 peer wanted", s)
	}
	if s := h.KeepStatus("g"); s.Wanted != 1 {
		t.Fatalf("the host's own KeepStatus = %+v: KeepConnected was not forwarded", s)
	}
	if _, ok := nw.(interface{ PeerConns(peer.ID) []p2p.ConnInfo }); !ok {
		t.Fatal("faultNet hides PeerConns")
	}
}
