package mlsvectors

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	. "grove/mls"
	"grove/mls/internal/treemath"
)

// VectorReport summarises the verification of one vector file.
type VectorReport struct {
	Kind   string
	Passed int
	Failed int
	// FirstFailure describes the first failing case, if any.
	FirstFailure error
	// Failures lists every failing case (case index and reason).
	Failures []error
}

// ErrUnknownVectorKind reports a vector file whose type is not supported.
var ErrUnknownVectorKind = errors.New("mlsvectors: unknown test-vector type")

// vectorVerifier checks every case of one vector file. It returns one entry
// per case (nil when the case passed), or an error when the file as a whole
// cannot be read.
type vectorVerifier func(data []byte) ([]error, error)

// vectorVerifiers maps a vector type, named as its file is, to its verifier.
var vectorVerifiers = map[string]vectorVerifier{
	"tree-math":          verifyTreeMathVectors,
	"crypto-basics":      verifyCryptoBasicsVectors,
	"deserialization":    verifyDeserializationVectors,
	"key-schedule":       verifyKeyScheduleVectors,
	"psk-secret":         verifyPSKSecretVectors,
	"secret-tree":        verifySecretTreeVectors,
	"transcript-hashes":  verifyTranscriptHashesVectors,
	"messages":           verifyMessagesVectors,
	"message-protection": verifyMessageProtectionVectors,
	"welcome":            verifyWelcomeVectors,
	"tree-operations":    verifyTreeOperationsVectors,
	"tree-validation":    verifyTreeValidationVectors,
	"treekem":            verifyTreeKEMVectors,

	"passive-client-welcome":         verifyPassiveClientVectors,
	"passive-client-handling-commit": verifyPassiveClientVectors,
	"passive-client-random":          verifyPassiveClientVectors,
}

// VectorKinds lists the supported vector types in sorted order.
func VectorKinds() []string {
	kinds := make([]string, 0, len(vectorVerifiers))
	for k := range vectorVerifiers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// VectorKindFromPath derives the vector type from a file name such as
// "path/to/secret-tree.json" (type "secret-tree"). Underscores and hyphens
// are interchangeable, as the official file names use both.
func VectorKindFromPath(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	base = strings.ReplaceAll(base, "_", "-")
	return base
}

// VerifyVectors checks every case in an official test-vector file of the
// given type.
func VerifyVectors(kind string, data []byte) (VectorReport, error) {
	kind = strings.ReplaceAll(kind, "_", "-")
	v, ok := vectorVerifiers[kind]
	if !ok {
		return VectorReport{Kind: kind}, fmt.Errorf("%w: %q", ErrUnknownVectorKind, kind)
	}
	results, err := v(data)
	if err != nil {
		return VectorReport{Kind: kind}, fmt.Errorf("mlsvectors: %s vectors: %w", kind, err)
	}
	rep := VectorReport{Kind: kind}
	for i, r := range results {
		if r == nil {
			rep.Passed++
			continue
		}
		rep.Failed++
		f := fmt.Errorf("case %d: %w", i, r)
		rep.Failures = append(rep.Failures, f)
		if rep.FirstFailure == nil {
			rep.FirstFailure = f
		}
	}
	return rep, nil
}

// hexBytes is binary data hex-encoded in JSON.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = b
	return nil
}

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// runCases decodes a JSON array into cases and checks each with check,
// recovering from panics so one broken case cannot hide the others.
func runCases[T any](data []byte, check func(c *T) error) ([]error, error) {
	var cases []T
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, fmt.Errorf("parsing JSON: %w", err)
	}
	out := make([]error, len(cases))
	for i := range cases {
		out[i] = func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return check(&cases[i])
		}()
	}
	return out, nil
}

func expectEqual(what string, got, want []byte) error {
	if string(got) != string(want) {
		return fmt.Errorf("%s: got %x, want %x", what, got, want)
	}
	return nil
}

// --- tree-math ---

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func verifyTreeMathVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *treeMathVector) error {
		n := v.NLeaves
		if got := treemath.NodeWidth(n); got != v.NNodes {
			return fmt.Errorf("n_nodes: got %d, want %d", got, v.NNodes)
		}
		if got := treemath.Root(n); got != v.Root {
			return fmt.Errorf("root: got %d, want %d", got, v.Root)
		}
		r := NodeIndex(treemath.Root(n))
		check := func(name string, want []*uint32, f func(x NodeIndex) (NodeIndex, bool)) error {
			if len(want) != int(v.NNodes) {
				return fmt.Errorf("%s: %d entries for %d nodes", name, len(want), v.NNodes)
			}
			for i, w := range want {
				got, ok := f(NodeIndex(i))
				switch {
				case w == nil && ok:
					return fmt.Errorf("%s[%d]: got %d, want none", name, i, got)
				case w != nil && !ok:
					return fmt.Errorf("%s[%d]: got none, want %d", name, i, *w)
				case w != nil && uint32(got) != *w:
					return fmt.Errorf("%s[%d]: got %d, want %d", name, i, got, *w)
				}
			}
			return nil
		}
		return errors.Join(
			check("left", v.Left, func(x NodeIndex) (NodeIndex, bool) {
				if x.IsLeaf() {
					return 0, false
				}
				return NodeIndex(treemath.Left(uint32(x))), true
			}),
			check("right", v.Right, func(x NodeIndex) (NodeIndex, bool) {
				if x.IsLeaf() {
					return 0, false
				}
				return NodeIndex(treemath.Right(uint32(x))), true
			}),
			check("parent", v.Parent, func(x NodeIndex) (NodeIndex, bool) {
				if x == r {
					return 0, false
				}
				return NodeIndex(treemath.Parent(uint32(x), n)), true
			}),
			check("sibling", v.Sibling, func(x NodeIndex) (NodeIndex, bool) {
				if x == r {
					return 0, false
				}
				return NodeIndex(treemath.Sibling(uint32(x), n)), true
			}),
		)
	})
}

// --- crypto-basics ---

type cryptoBasicsVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

// vectorRand is the randomness used when a vector check must create fresh
// values; vectors never pin those, so a fixed stream is enough.
type vectorRand struct{ ctr byte }

func (r *vectorRand) Read(p []byte) (int, error) {
	for i := range p {
		r.ctr = r.ctr*31 + 7
		p[i] = r.ctr
	}
	return len(p), nil
}

func verifyCryptoBasicsVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *cryptoBasicsVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		var errs []error
		errs = append(errs, expectEqual("ref_hash", s.RefHash(v.RefHash.Label, v.RefHash.Value), v.RefHash.Out))

		e := v.ExpandWithLabel
		out, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length)
		errs = append(errs, err, expectEqual("expand_with_label", out, e.Out))

		d := v.DeriveSecret
		out, err = s.DeriveSecret(d.Secret, d.Label)
		errs = append(errs, err, expectEqual("derive_secret", out, d.Out))

		t := v.DeriveTreeSecret
		out, err = s.DeriveTreeSecret(t.Secret, t.Label, t.Generation, t.Length)
		errs = append(errs, err, expectEqual("derive_tree_secret", out, t.Out))

		sg := v.SignWithLabel
		if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
			errs = append(errs, fmt.Errorf("sign_with_label: given signature: %w", err))
		}
		if key, err := s.ParseSigningKey(sg.Priv); err != nil {
			errs = append(errs, fmt.Errorf("sign_with_label: %w", err))
		} else {
			errs = append(errs, expectEqual("sign_with_label: public key from private", key.PublicKey(), sg.Pub))
			sig, err := key.SignWithLabel(sg.Label, sg.Content)
			if err == nil {
				err = s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sig)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("sign_with_label: fresh signature: %w", err))
			}
		}

		en := v.EncryptWithLabel
		if priv, err := s.ParseHPKEPrivateKey(en.Priv); err != nil {
			errs = append(errs, fmt.Errorf("encrypt_with_label: %w", err))
		} else {
			errs = append(errs, expectEqual("encrypt_with_label: public key from private", priv.PublicKey(), en.Pub))
			pt, err := s.DecryptWithLabel(priv, en.Label, en.Context, en.KEMOutput, en.Ciphertext)
			errs = append(errs, err, expectEqual("encrypt_with_label: given ciphertext", pt, en.Plaintext))
			kemOut, ct, err := s.EncryptWithLabel(en.Pub, en.Label, en.Context, en.Plaintext, &vectorRand{})
			if err == nil {
				pt, err = s.DecryptWithLabel(priv, en.Label, en.Context, kemOut, ct)
			}
			errs = append(errs, err, expectEqual("encrypt_with_label: fresh ciphertext", pt, en.Plaintext))
		}
		return errors.Join(errs...)
	})
}

// --- deserialization ---

type deserializationVector struct {
	Header hexBytes `json:"vlbytes_header"`
	Length uint32   `json:"length"`
}

func verifyDeserializationVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *deserializationVector) error {
		got, n, err := DecodeVarint(v.Header)
		if err != nil {
			return err
		}
		if n != len(v.Header) {
			return fmt.Errorf("header of %d bytes, decoded %d", len(v.Header), n)
		}
		if got != v.Length {
			return fmt.Errorf("length: got %d, want %d", got, v.Length)
		}
		// The encoder must produce the same minimal header.
		return expectEqual("re-encoded header", AppendVarint(nil, got), v.Header)
	})
}
