package mls

import (
	"errors"
	"strconv"
)

// Sentinel errors. Callers test for them with errors.Is; the returned error
// usually wraps one of these with context.
var (
	// ErrDecode reports malformed, truncated or trailing input.
	ErrDecode = errors.New("mls: malformed encoding")
	// ErrUnsupportedCipherSuite reports a cipher suite this package does not implement.
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")
	// ErrInvalidKey reports a public or private key that does not parse for its suite.
	ErrInvalidKey = errors.New("mls: invalid key")
	// ErrInvalidSignature reports a signature that does not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
	// ErrDecrypt reports an AEAD or HPKE decryption failure.
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrTooLarge reports a vector longer than the encoding or a configured limit allows.
	ErrTooLarge = errors.New("mls: value too large")
)

// Errors of the key schedule, secret tree and message framing (RFC 9420,
// Sections 6, 8 and 9).
var (
	// ErrReplay reports a message whose key was already used or has been
	// deleted under the secret tree's deletion schedule (RFC 9420, Section 9.2).
	ErrReplay = errors.New("mls: message key already used or deleted")
	// ErrGenerationTooFar reports a generation beyond the configured window
	// ahead of the sender's ratchet; deriving it would let a sender force
	// unbounded work.
	ErrGenerationTooFar = errors.New("mls: generation too far ahead")
	// ErrWrongEpoch reports a message for an epoch other than the current one.
	ErrWrongEpoch = errors.New("mls: wrong epoch")
	// ErrWrongGroup reports a message for another group.
	ErrWrongGroup = errors.New("mls: wrong group")
	// ErrUnknownSender reports a sender that is not (or no longer) in the group.
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrInvalidMembershipTag reports a PublicMessage whose membership tag does not verify.
	ErrInvalidMembershipTag = errors.New("mls: invalid membership tag")
	// ErrInvalidConfirmationTag reports a confirmation tag that does not verify.
	ErrInvalidConfirmationTag = errors.New("mls: invalid confirmation tag")
	// ErrInvalidMessage reports a message that decodes but breaks a framing
	// rule (wrong sender type for its wire format, bad padding, nonzero
	// reserved fields, application data in a PublicMessage, ...).
	ErrInvalidMessage = errors.New("mls: invalid message")
)

// Sentinels of the ratchet tree and TreeKEM (RFC 9420, Sections 7 and 12.4.3.1).
var (
	// ErrInvalidTree reports a ratchet tree that fails validation; the
	// error is a *TreeValidationError that also wraps a more specific sentinel.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrTreeHash reports a tree hash that does not match the expected one.
	ErrTreeHash = errors.New("mls: tree hash mismatch")
	// ErrParentHash reports a parent node or leaf whose parent hash chain is broken.
	ErrParentHash = errors.New("mls: parent hash invalid")
	// ErrUnmergedLeaves reports inconsistent or unsorted unmerged_leaves.
	ErrUnmergedLeaves = errors.New("mls: unmerged leaves inconsistent")
	// ErrDuplicateKey reports an encryption or signature key that appears twice in the tree.
	ErrDuplicateKey = errors.New("mls: duplicate key in tree")
	// ErrInvalidLeafNode reports a LeafNode that fails validation (Section 7.3).
	ErrInvalidLeafNode = errors.New("mls: invalid leaf node")
	// ErrInvalidUpdatePath reports an UpdatePath that does not fit the tree or does not verify.
	ErrInvalidUpdatePath = errors.New("mls: invalid update path")
	// ErrNoPrivateKey reports that the receiver holds no key able to decrypt an UpdatePath.
	ErrNoPrivateKey = errors.New("mls: no private key for update path")
	// ErrBlankLeaf reports an operation on a blank or out-of-range leaf.
	ErrBlankLeaf = errors.New("mls: blank or unknown leaf")
)

// TreeValidationError names the node where a ratchet tree failed validation
// and why. It matches ErrInvalidTree, its Kind sentinel and its Cause with
// errors.Is.
type TreeValidationError struct {
	Node   NodeIndex
	Kind   error // ErrTreeHash, ErrParentHash, ErrUnmergedLeaves, ErrDuplicateKey, ErrInvalidLeafNode, ErrInvalidKey or ErrDecode
	Reason string
	Cause  error // optional underlying error
}

func (e *TreeValidationError) Error() string {
	msg := "mls: invalid ratchet tree at node " + strconv.FormatUint(uint64(e.Node), 10) + ": " + e.Reason
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *TreeValidationError) Unwrap() []error {
	errs := []error{ErrInvalidTree, e.Kind}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}
