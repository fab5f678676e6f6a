package node

import (
	"bytes"
	"testing"
	"time"

	"grove/commitorder"
)

// Each decoder: no panic on any input, and what decodes re-encodes to the
// same bytes.

func FuzzPayload(f *testing.F) {
	f.Add((&appPayload{Kind: kindText, Time: time.Unix(1, 2), Text: "hi"}).marshal())
	f.Add((&appPayload{Kind: kindIntent, Intent: intentLeave, Target: []byte("x")}).marshal())
	f.Add([]byte{1, 3})
	f.Add((&appPayload{Kind: kindIntent, Intent: intentJoin, KeyPackage: []byte{0, 1, 0, 5}}).marshal())
	f.Add((&appPayload{Kind: kindWelcome, Ref: [16]byte{7}, Welcome: []byte{0, 1, 0, 3}}).marshal())
	f.Add((&appPayload{Kind: kindIntent, Intent: intentCancelJoin, Target: make([]byte, 16)}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unmarshalPayload(data)
		if err != nil {
			return
		}
		if got := p.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
		}
	})
}

func FuzzTip(f *testing.F) {
	f.Add((&tip{Group: []byte("g"), Epoch: 3, SigKey: []byte("k"), Signature: []byte("s")}).marshal())
	f.Add(tipPrefix)
	f.Add((&tip{Version: tipV1, Group: []byte("g"), Epoch: 3, SigKey: []byte("k"), Signature: []byte("s")}).marshal())
	f.Add((&tip{Group: []byte("g"), SigKey: []byte("k"), Signature: []byte("s"), Addrs: [][]byte{{4, 127, 0, 0, 1, 6, 0x0f, 0xa1}, {}}}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unmarshalTip(data)
		if err != nil {
			return
		}
		if got := p.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs")
		}
		// Whatever the addresses hold, parsing them never panics and
		// keeps at most maxTipAddrs, none naming another peer.
		if got := tipAddrsFor("", p.Addrs); len(got) > maxTipAddrs {
			t.Fatalf("%d addresses kept", len(got))
		}
	})
}

func FuzzJoinRequest(f *testing.F) {
	f.Add((&joinRequest{KeyPackage: []byte{1, 2}}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unmarshalJoinRequest(data)
		if err != nil {
			return
		}
		if got := p.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzJoinResponse(f *testing.F) {
	f.Add((&joinResponse{Status: joinOK, Welcome: []byte{1}, Name: "n"}).marshal())
	f.Add((&joinResponse{Status: joinRejected, Reason: "no"}).marshal())
	f.Add((&joinResponse{Status: joinWaiting}).marshal())
	f.Add((&joinResponse{Status: joinWaiting, Reason: joinWaitNoAdmin}).marshal())
	f.Add((&joinResponse{Status: joinFailed, Reason: "leaving", Code: joinReasonInviterLeaving}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unmarshalJoinResponse(data)
		if err != nil {
			return
		}
		if got := p.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzSyncMessages(f *testing.F) {
	f.Add((&syncRequest{Group: []byte("g"), From: 7}).marshal())
	f.Add((&syncBatch{Messages: [][]byte{{1}, {2, 3}}}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := unmarshalSyncRequest(data); err == nil {
			if got := r.marshal(); !bytes.Equal(got, data) {
				t.Fatalf("request re-encoding differs")
			}
		}
		if b, err := unmarshalSyncBatch(data); err == nil {
			if got := b.marshal(); !bytes.Equal(got, data) {
				t.Fatalf("batch re-encoding differs")
			}
		}
	})
}

func FuzzInviteCode(f *testing.F) {
	f.Add((&invite{Group: []byte("group"), Peer: []byte("peer"), Expires: time.Unix(1700000000, 0), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}).encode())
	f.Add("grove-")
	f.Add("grove-aaaa")
	f.Fuzz(func(t *testing.T, code string) {
		iv, err := decodeInvite(code)
		if err != nil {
			return
		}
		again, err := decodeInvite(iv.encode())
		if err != nil {
			t.Fatalf("re-encoded code does not decode: %v", err)
		}
		if !bytes.Equal(again.Group, iv.Group) || again.Secret != iv.Secret || !again.Expires.Equal(iv.Expires) ||
			!bytes.Equal(again.Peer, iv.Peer) || len(again.Addrs) != len(iv.Addrs) {
			t.Fatalf("round trip changed the invite")
		}
	})
}

func FuzzIdentityAndPolicy(f *testing.F) {
	f.Add(memberIdentity{Name: "alice", Peer: "12D3KooWExample"}.marshal())
	f.Add((&policy{Admins: [][]byte{[]byte("a")}, RateLimit: 8}).marshal())
	f.Add((&policy{Admins: [][]byte{[]byte("a")}, RateLimit: 8, Name: "infra"}).marshal())
	f.Add([]byte{2, 8, 0, 0}) // version 2 with an empty name: not canonical
	f.Add((&policy{Admins: [][]byte{[]byte("a")}, RateLimit: 8, History: 30 * 24 * time.Hour}).marshal())
	f.Add((&policy{Admins: [][]byte{[]byte("a")}, Name: "x", Rotations: [][]byte{{1, 2, 3}}}).marshal())
	f.Add([]byte{3, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // version 3 with neither: not canonical
	f.Fuzz(func(t *testing.T, data []byte) {
		if id, err := parseIdentity(data); err == nil {
			if got := id.marshal(); !bytes.Equal(got, data) {
				t.Fatalf("identity re-encoding differs")
			}
		}
		if p, err := unmarshalPolicy(data); err == nil {
			if got := p.marshal(); !bytes.Equal(got, data) {
				t.Fatalf("policy re-encoding differs")
			}
		}
	})
}

// FuzzPendingInvite: the inviter's invite record comes from disk. Version
// 2, 3 (several uses) and 4 (dropped leaves) records re-encode byte for
// byte; version 1 records
// (before redeemer and delivered) still load, as unused or used-and-spent.
func FuzzPendingInvite(f *testing.F) {
	f.Add((&pendingInvite{group: "ab", expires: time.Unix(5, 0)}).marshal())
	f.Add((&pendingInvite{group: "ab", expires: time.Unix(5, 0), used: true, redeemer: []byte{1, 2}, delivered: true}).marshal())
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 2, 'a', 'b'})
	f.Add((&pendingInvite{group: "ab", expires: time.Unix(5, 0), uses: 3, used: true, redeemer: []byte{1},
		more: []redemption{{key: []byte{2}, delivered: true}}}).marshal())
	f.Add((&pendingInvite{group: "ab", expires: time.Unix(5, 0), used: true, redeemer: []byte{1}, delivered: true,
		dropped: []droppedLeaf{{key: []byte{1}, epoch: 7}}}).marshal())
	f.Add((&pendingInvite{group: "ab", expires: time.Unix(5, 0), uses: 3, used: true, redeemer: []byte{1},
		more: []redemption{{key: []byte{2}, delivered: true}}, dropped: []droppedLeaf{{key: []byte{2}, epoch: 9}}}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unmarshalPendingInvite(data)
		if err != nil {
			return
		}
		if data[0] >= pendingInviteVersion {
			if got := p.marshal(); !bytes.Equal(got, data) {
				t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
			}
		}
	})
}

// FuzzEnvelope: open never panics on hostile bytes, and what it returns
// seals again to an envelope of the same size that opens to the same
// payload (an envelope has one plaintext: zero padding only).
func FuzzEnvelope(f *testing.F) {
	k, err := newWireKeys([]byte("group"), bytes.Repeat([]byte{9}, groupSecretLen))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.seal([]byte("hello")))
	f.Add(k.seal(nil))
	f.Add(make([]byte, minEnvelope))
	f.Add([]byte{envelopeVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := k.open(data)
		if err != nil {
			return
		}
		again := k.seal(body)
		if len(again) != len(data) {
			t.Fatalf("payload of %d bytes: envelope %d bytes, resealed %d", len(body), len(data), len(again))
		}
		if got, err := k.open(again); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("resealed: %v", err)
		}
	})
}

// FuzzCommitAD: parseCommitAD never panics and what it accepts is the
// commitAD of what it returns, when the rank is a committer's.
func FuzzCommitAD(f *testing.F) {
	f.Add(commitAD(commitorder.EpochID{1}, commitorder.ClassAdd, "m"))
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, class, rank, ok := parseCommitAD(data)
		if !ok {
			return
		}
		if len(data) != 1+len(parent)+1+len(rank) || data[0] != commitADVersion || commitorder.Class(data[17]) != class {
			t.Fatalf("accepted %x", data)
		}
	})
}
