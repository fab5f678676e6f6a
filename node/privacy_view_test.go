package node

import (
	"context"
	"crypto/cipher"
	"errors"
	"testing"

	"grove/p2p"
)

// What TestOutsiderAndRemovedMemberLearnNothing needs to know of the
// wire format: the group's real topic name and what a removed member can
// open. (Kept apart so that the test can be run against other wire
// formats.)

// leakedTopic is the real topic name of group at n.
func leakedTopic(t *testing.T, n *Node, group string) string {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	return p2p.TopicName(a.wire.topic)
}

// removedKeys is what a removed member keeps: the group's envelope key
// and the sealing keys of the epochs it held.
type removedKeys struct {
	wire *wireKeys
	keys []cipher.AEAD
}

// learn takes what n knows of group now (nothing if n no longer has it).
func (k *removedKeys) learn(ctx context.Context, n *Node, group string) {
	a, err := n.lookup(group)
	if err != nil {
		return
	}
	a.do(ctx, func() error {
		k.wire = a.wire
		for eid, g := range a.epochs {
			a.epochKey(eid, g)
		}
		for _, e := range a.epochKeys {
			k.keys = append(k.keys, e.aead)
		}
		return nil
	})
}

// view returns what the removed member reads of a payload: the payload,
// what its envelope holds, and what any of its epoch keys opens.
func (k *removedKeys) view(payload []byte) [][]byte {
	out := [][]byte{payload}
	if k.wire == nil {
		return out
	}
	body, err := k.wire.open(payload)
	if err != nil {
		return out
	}
	out = append(out, body)
	for _, key := range k.keys {
		if _, inner, err := unseal(key, body); !errors.Is(err, errUnsealed) && err == nil {
			out = append(out, inner)
		}
	}
	return out
}

// bucketSize reports whether n is a size the envelope pads to.
func bucketSize(n int) bool {
	if n >= bigBucket {
		return n%bigBucket == 0
	}
	return n >= minEnvelope && n&(n-1) == 0
}

// removedViewOpens: removedKeys.view opens envelopes and seals.
const removedViewOpens = true
