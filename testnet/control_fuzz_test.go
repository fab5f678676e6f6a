package testnet

import (
	"errors"
	"maps"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

const fuzzPeer = "12D3KooWKsLtRsFZDCKpHttHStqHHVkuY3LSmtWDRdXUNWyww8kB"

// FuzzDecodePartition: a control line from stdin is parsed without panic,
// anything not accepted is ErrBadControl, and what is accepted encodes to
// a line that decodes to the same partition.
func FuzzDecodePartition(f *testing.F) {
	for _, s := range []string{"heal", "partition", "partition " + fuzzPeer + "=1", "partition " + fuzzPeer + "=-1",
		"partition x=1", "partition " + fuzzPeer, "partition " + fuzzPeer + "=99999999999999999999", "", "   ", "heal now"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := decodePartition(line)
		if err != nil {
			if !errors.Is(err, ErrBadControl) {
				t.Fatalf("%q: untyped error %v", line, err)
			}
			return
		}
		var p partition
		p.set(m)
		again, err := decodePartition(p.encode())
		if err != nil {
			t.Fatalf("%q: re-encoded %q does not decode: %v", line, p.encode(), err)
		}
		if len(m) == 0 && len(again) == 0 {
			return
		}
		if !maps.Equal(m, again) {
			t.Fatalf("%q: %v became %v", line, m, again)
		}
	})
}

// FuzzParseReady: a node process's ready line is parsed without panic;
// a rejected line is ErrNodeProcess, an accepted one names a peer whose
// addresses all belong to it.
func FuzzParseReady(f *testing.F) {
	for _, s := range []string{"ready " + fuzzPeer, "ready " + fuzzPeer + " /ip4/127.0.0.1/tcp/1/p2p/" + fuzzPeer,
		"ready " + fuzzPeer + " /ip4/127.0.0.1/tcp/1", "ready", "ready x", "", "hello " + fuzzPeer} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		id, addrs, err := parseReady(line)
		if err != nil {
			if !errors.Is(err, ErrNodeProcess) {
				t.Fatalf("%q: untyped error %v", line, err)
			}
			return
		}
		if id.Validate() != nil {
			t.Fatalf("%q: accepted invalid peer %q", line, id)
		}
		for _, a := range addrs {
			ai, err := peer.AddrInfoFromString(a)
			if err != nil || ai.ID != id {
				t.Fatalf("%q: accepted address %q (%v)", line, a, err)
			}
		}
	})
}
