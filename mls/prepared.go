package mls

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// Application messages in three steps, for a receiver that checks
// signatures on other goroutines than the one that owns the group
// (RFC 9420, Section 6.3, split where the state is touched):
//
//  1. PrepareApplication, on the group's goroutine: the sender data and
//     content are decrypted with the content key left in the secret
//     tree, and the sender's signature key is looked up. Nothing in the
//     group changes.
//  2. PreparedMessage.Verify, on any goroutine: the signature over the
//     FramedContentTBS (Section 6.1), the costly step. It reads only
//     what the PreparedMessage holds.
//  3. ApplyPrepared, on the group's goroutine, after Verify: the content
//     key is consumed, so a second copy of the message fails with
//     ErrReplay as with ProcessMessage.
//
// The result equals ProcessMessage's for the same message, and a
// message that fails any step leaves the group as it was. Between 1 and
// 3 the group may process other messages: keys are a function of the
// epoch and generation, so the key step 3 consumes is the one step 1
// decrypted with (checked), unless another copy consumed it first.

// PreparedMessage is an application message decrypted by
// PrepareApplication, its signature not yet checked and its key not yet
// consumed.
type PreparedMessage struct {
	msg   *MessageProtector // its epoch's; ApplyPrepared checks the group still has it
	ac    *AuthenticatedContent
	vk    *VerifyingKey
	gcEnc []byte // its epoch's GroupContext, copied: the epoch may be erased meanwhile
	gen   uint32
	key   [sha256.Size]byte // hash of the content key and nonce used

	verified  bool
	verifyErr error
}

// PrepareApplication decrypts an application PrivateMessage of this epoch
// or a retained past one without consuming its key or checking its
// signature (step 1 above). Errors are ProcessMessage's for the same
// message, but for the signature; a message that is not an application
// PrivateMessage gives ErrInvalidMessage (use ProcessMessage).
func (g *Group) PrepareApplication(data []byte) (*PreparedMessage, error) {
	if g.erased {
		return nil, ErrErased
	}
	if len(data) > maxMessageSize {
		return nil, fmt.Errorf("mls: message of %d bytes: %w", len(data), ErrTooLarge)
	}
	m, err := UnmarshalMLSMessage(data)
	if err != nil {
		return nil, err
	}
	if m.Version != g.ctx.Version {
		return nil, fmt.Errorf("mls: message version %d: %w", m.Version, ErrInvalidMessage)
	}
	if m.WireFormat != WireFormatPrivateMessage || m.PrivateMessage.ContentType != ContentTypeApplication {
		return nil, fmt.Errorf("mls: prepare: not an application PrivateMessage: %w", ErrInvalidMessage)
	}
	pm := m.PrivateMessage
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		return nil, fmt.Errorf("mls: message for group %x: %w", pm.GroupID, ErrWrongGroup)
	}
	msg, tree := g.protectorOf(pm.Epoch)
	if msg == nil {
		return nil, fmt.Errorf("mls: message for epoch %d in epoch %d: %w", pm.Epoch, g.ctx.Epoch, ErrWrongEpoch)
	}
	leaf, err := msg.peekSender(pm)
	if err != nil {
		return nil, err
	}
	if leaf == g.own {
		return nil, ErrOwnMessage
	}
	// The leaf's ratchets may be derived now for the first time; that is
	// undone too, so the group is exactly as it was (ApplyPrepared
	// derives them again).
	done := msg.tree.snapshotLeaf(leaf)
	defer done(true)
	var key [sha256.Size]byte
	peek := func(leaf LeafIndex, typ RatchetType, gen uint32, use func(key, nonce []byte) error) error {
		return msg.tree.peek(leaf, typ, gen, func(k, n []byte) error {
			key = keyHash(k, n)
			return use(k, n)
		})
	}
	ac, vk, gen, err := msg.decryptPrivate(pm, g.senderKey(tree), peek, nil)
	if err != nil {
		return nil, err
	}
	return &PreparedMessage{msg: msg, ac: ac, vk: vk, gcEnc: bytes.Clone(msg.groupContextEnc), gen: gen, key: key}, nil
}

// protectorOf returns the message protector and ratchet tree of epoch
// (this one or a retained past one), or nil.
func (g *Group) protectorOf(epoch uint64) (*MessageProtector, *RatchetTree) {
	if epoch == g.ctx.Epoch {
		return g.msg, g.tree
	}
	for _, p := range g.past {
		if p.ctx.Epoch == epoch {
			return p.msg, p.tree
		}
	}
	return nil, nil
}

func keyHash(key, nonce []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(key)
	h.Write(nonce)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Verify checks the message's signature (step 2 above); safe on any
// goroutine, once. ErrInvalidSignature if it does not verify.
func (p *PreparedMessage) Verify() error {
	p.verifyErr = p.ac.verifySignature(p.vk, p.gcEnc)
	p.verified = true
	return p.verifyErr
}

// ApplyPrepared consumes the key of a message g prepared and Verify
// accepted (step 3 above) and returns it processed, as ProcessMessage
// would have. The caller must order Verify before this call (a channel,
// say). Errors: Verify's, ErrWrongEpoch if its epoch is no longer
// retained, ErrReplay if its key was consumed meanwhile; the group is
// then unchanged.
func (g *Group) ApplyPrepared(p *PreparedMessage) (*ProcessedMessage, error) {
	if g.erased {
		return nil, ErrErased
	}
	if !p.verified {
		return nil, fmt.Errorf("mls: apply a prepared message before its signature is checked: %w", ErrInvalidMessage)
	}
	if p.verifyErr != nil {
		return nil, p.verifyErr
	}
	c := &p.ac.Content
	if msg, _ := g.protectorOf(c.Epoch); msg != p.msg || msg == nil {
		return nil, fmt.Errorf("mls: prepared message of epoch %d not retained: %w", c.Epoch, ErrWrongEpoch)
	}
	leaf := c.Sender.LeafIndex
	done := p.msg.tree.snapshotLeaf(leaf)
	err := p.msg.tree.Open(leaf, ApplicationRatchet, p.gen, func(k, n []byte) error {
		if h := keyHash(k, n); subtle.ConstantTimeCompare(h[:], p.key[:]) != 1 {
			return fmt.Errorf("mls: prepared message key changed: %w", ErrDecrypt)
		}
		return nil
	})
	done(err != nil)
	if err != nil {
		return nil, err
	}
	return &ProcessedMessage{
		Kind: KindApplication, Epoch: c.Epoch, Sender: c.Sender,
		AuthenticatedData: c.AuthenticatedData, ApplicationData: c.ApplicationData,
	}, nil
}
