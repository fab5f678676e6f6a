package p2p

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestTransportOf(t *testing.T) {
	for addr, want := range map[string]string{
		"/ip4/127.0.0.1/tcp/4001":         "tcp",
		"/ip4/127.0.0.1/udp/4001/quic-v1": "quic",
		"/ip6/::1/tcp/4001/ws":            "ws",
		"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit": "relay",
		"/ip4/127.0.0.1/udp/4001": "udp",
	} {
		if got := TransportOf(ma.StringCast(addr)); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
	if got := TransportOf(nil); got != "" {
		t.Errorf("nil: %q", got)
	}
}
