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

// Errors of the group layer (RFC 9420, Sections 10-14).
var (
	// ErrUnknownMember reports a leaf index, signature key or proposal
	// sender that is not a current member.
	ErrUnknownMember = errors.New("mls: unknown member")
	// ErrInvalidProposal reports a proposal, or a list of proposals, that
	// breaks RFC 9420, Section 12.2; the error is a *ProposalError.
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit reports a Commit that fails validation (Section
	// 12.4.2); the error is a *CommitError.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidKeyPackage reports a KeyPackage that fails Section 10.1.
	ErrInvalidKeyPackage = errors.New("mls: invalid key package")
	// ErrInvalidWelcome reports a Welcome or GroupInfo that cannot be used to join.
	ErrInvalidWelcome = errors.New("mls: invalid welcome")
	// ErrOwnCommit reports a Commit this member sent, received back: merge
	// the PendingCommit instead of processing it.
	ErrOwnCommit = errors.New("mls: own commit")
	// ErrOwnMessage reports a proposal or application message this member
	// sent, received back.
	ErrOwnMessage = errors.New("mls: own message")
	// ErrUnknownProposal reports a proposal reference that is not in the
	// epoch's proposal cache.
	ErrUnknownProposal = errors.New("mls: unknown proposal reference")
	// ErrUnknownPSK reports a PSK the PSK store or the retained epochs do not hold.
	ErrUnknownPSK = errors.New("mls: unknown pre-shared key")
	// ErrRemoved reports that this member was removed by the commit; there
	// is no next epoch to merge into.
	ErrRemoved = errors.New("mls: removed from group")
	// ErrAlreadyMerged reports a staged commit merged a second time.
	ErrAlreadyMerged = errors.New("mls: commit already merged")
	// ErrErased reports use of a Group after Erase.
	ErrErased = errors.New("mls: group state erased")
	// ErrInvalidState reports a serialised group state that does not decode
	// or is inconsistent; it also wraps ErrDecode.
	ErrInvalidState = errors.New("mls: invalid group state")
)

// ProposalError says why a proposal or proposal list is invalid. It
// matches ErrInvalidProposal with errors.Is.
type ProposalError struct {
	Index  int // position in the commit's proposal list, or -1
	Reason string
	Cause  error
}

func (e *ProposalError) Error() string {
	msg := "mls: invalid proposal"
	if e.Index >= 0 {
		msg += " " + strconv.Itoa(e.Index)
	}
	msg += ": " + e.Reason
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *ProposalError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrInvalidProposal, e.Cause}
	}
	return []error{ErrInvalidProposal}
}

// CommitError says why a Commit is invalid. It matches ErrInvalidCommit.
type CommitError struct {
	Reason string
	Cause  error
}

func (e *CommitError) Error() string {
	msg := "mls: invalid commit: " + e.Reason
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *CommitError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrInvalidCommit, e.Cause}
	}
	return []error{ErrInvalidCommit}
}
