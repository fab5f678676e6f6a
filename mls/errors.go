package mls

import "errors"

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
