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
