package mls

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Benchmarks of the primitives of suites 0x0001 and 0x0003 and of
// application-message protection. BenchmarkProtect runs protect/unprotect
// next to the primitives they are made of ("floor-*"), in the same run, so
// the overhead ratio (protect / (sign + AEAD + KDF)) can be read off
// directly.

var benchSuites = []CipherSuite{
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
}

var benchSizes = []int{100, 1024}

func benchSuite(b *testing.B, cs CipherSuite) *Suite {
	s, err := cs.Suite()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkPrimitives(b *testing.B) {
	for _, cs := range benchSuites {
		s := benchSuite(b, cs)
		b.Run(fmt.Sprintf("suite=%#04x", uint16(cs)), func(b *testing.B) {
			seed := bytes.Repeat([]byte{7}, s.HashSize())
			priv, err := s.DeriveKeyPair(seed)
			if err != nil {
				b.Fatal(err)
			}
			sig, err := s.GenerateSigningKey(&fixedRand{})
			if err != nil {
				b.Fatal(err)
			}
			ver, _ := s.ParseVerifyingKey(sig.PublicKey())
			b.Run("DeriveKeyPair", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.DeriveKeyPair(seed); err != nil {
						b.Fatal(err)
					}
				}
			})
			pk, _ := s.kem.UnmarshalBinaryPublicKey(priv.PublicKey())
			b.Run("DH/Encap", func(b *testing.B) {
				for b.Loop() {
					if _, _, err := s.kem.Encapsulate(pk); err != nil {
						b.Fatal(err)
					}
				}
			})
			ct, _, _ := s.kem.Encapsulate(pk)
			b.Run("DH/Decap", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.kem.Decapsulate(priv.key, ct); err != nil {
						b.Fatal(err)
					}
				}
			})
			for _, n := range benchSizes {
				msg := make([]byte, n)
				b.Run(fmt.Sprintf("HPKE/Seal/%dB", n), func(b *testing.B) {
					b.SetBytes(int64(n))
					for b.Loop() {
						if _, _, err := s.EncryptWithLabel(priv.PublicKey(), "bench", nil, msg, &fixedRand{}); err != nil {
							b.Fatal(err)
						}
					}
				})
				kemOut, hct, _ := s.EncryptWithLabel(priv.PublicKey(), "bench", nil, msg, &fixedRand{})
				b.Run(fmt.Sprintf("HPKE/Open/%dB", n), func(b *testing.B) {
					b.SetBytes(int64(n))
					for b.Loop() {
						if _, err := s.DecryptWithLabel(priv, "bench", nil, kemOut, hct); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("Sign/%dB", n), func(b *testing.B) {
					for b.Loop() {
						if _, err := sig.SignWithLabel("bench", msg); err != nil {
							b.Fatal(err)
						}
					}
				})
				signature, _ := sig.SignWithLabel("bench", msg)
				b.Run(fmt.Sprintf("Verify/%dB", n), func(b *testing.B) {
					for b.Loop() {
						if err := ver.VerifyWithLabel("bench", msg, signature); err != nil {
							b.Fatal(err)
						}
					}
				})
				key := make([]byte, s.AEADKeySize())
				nonce := make([]byte, s.AEADNonceSize())
				b.Run(fmt.Sprintf("AEAD/Seal/%dB", n), func(b *testing.B) {
					b.SetBytes(int64(n))
					for b.Loop() {
						a, _ := s.NewAEAD(key)
						a.Seal(nil, nonce, msg, nil)
					}
				})
				a, _ := s.NewAEAD(key)
				sealed := a.Seal(nil, nonce, msg, nil)
				b.Run(fmt.Sprintf("AEAD/Open/%dB", n), func(b *testing.B) {
					b.SetBytes(int64(n))
					for b.Loop() {
						a, _ := s.NewAEAD(key)
						if _, err := a.Open(nil, nonce, sealed, nil); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("Hash/%dB", n), func(b *testing.B) {
					b.SetBytes(int64(n))
					for b.Loop() {
						s.Hash(msg)
					}
				})
			}
			b.Run("ExpandWithLabel", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.ExpandWithLabel(seed, "key", []byte{0, 0, 0, 1}, s.AEADKeySize()); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkProtect measures application-message protection against its
// floor, all in one run:
//
//	protect   ≈ floor-sign   + floor-aead-seal + floor-kdf
//	unprotect ≈ floor-verify + floor-aead-open + floor-kdf
//
// floor-kdf is the five derivations of one message (ratchet key, nonce and
// next secret; sender-data key and nonce); the AEAD floors include both the
// content and the sender-data AEAD with their key setup.
func BenchmarkProtect(b *testing.B) {
	for _, cs := range benchSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("suite=%#04x/%dB", uint16(cs), n), func(b *testing.B) {
				benchProtect(b, cs, n)
			})
		}
	}
}

func benchProtect(b *testing.B, cs CipherSuite, n int) {
	data := bytes.Repeat([]byte{'m'}, n)
	fx := newProtectFixture(b, cs, 8)
	s := fx.suite
	const leaf = 3
	signer := fx.signers[leaf]
	ver, _ := fx.keyFor(&AuthenticatedContent{Content: FramedContent{Sender: MemberSender(leaf)}})

	b.Run("protect", func(b *testing.B) {
		b.SetBytes(int64(n))
		for b.Loop() {
			if _, err := fx.sender.ProtectApplication(leaf, signer, data, nil, 0, &fixedRand{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unprotect", func(b *testing.B) {
		b.SetBytes(int64(n))
		// Messages must be fresh generations, so they are made up front
		// by a separate sender whose ratchet matches the receiver's.
		gcEnc, _ := fx.gc.MarshalBinary()
		ep, _ := s.DeriveEpochSecrets(make([]byte, s.HashSize()), nil, nil, gcEnc)
		mk := func() *MessageProtector {
			tree, _ := s.NewSecretTree(ep.EncryptionSecret, 8, SecretTreeConfig{})
			p, _ := s.NewMessageProtector(fx.gc, tree, ep.SenderDataSecret, ep.MembershipKey)
			return p
		}
		sender, receiver := mk(), mk()
		msgs := make([]*PrivateMessage, b.N)
		for i := range msgs {
			pm, err := sender.ProtectApplication(leaf, signer, data, nil, 0, &fixedRand{})
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = pm
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := receiver.UnprotectPrivate(msgs[i], fx.keyFor); err != nil {
				b.Fatal(err)
			}
		}
	})

	// The primitives, on inputs of exactly the sizes protect uses.
	ac, err := fx.sender.NewAuthenticatedContent(WireFormatPrivateMessage, FramedContent{
		Sender: MemberSender(leaf), ContentType: ContentTypeApplication, ApplicationData: data}, signer)
	if err != nil {
		b.Fatal(err)
	}
	tbs, _ := marshal(func(bb *cryptobyte.Builder) { ac.marshalTBS(bb, fx.sender.groupContextEnc) })
	pb := cryptobyte.NewBuilder(nil)
	ac.Content.marshalBody(pb)
	ac.Auth.marshal(pb, ac.Content.ContentType)
	plaintext, _ := pb.Bytes()
	aad, _ := privateContentAAD(ac.Content.GroupID, ac.Content.Epoch, ContentTypeApplication, nil)
	sdAAD, _ := senderDataAAD(ac.Content.GroupID, ac.Content.Epoch, ContentTypeApplication)
	sdPlain := make([]byte, 12)
	secret := bytes.Repeat([]byte{9}, s.HashSize())
	key, nonce := make([]byte, s.AEADKeySize()), make([]byte, s.AEADNonceSize())
	a, _ := s.NewAEAD(key)
	ct := a.Seal(nil, nonce, plaintext, aad)
	sdCT := a.Seal(nil, nonce, sdPlain, sdAAD)

	floorSeal := func() {
		a, _ := s.NewAEAD(key)
		a.Seal(nil, nonce, plaintext, aad)
		a2, _ := s.NewAEAD(key)
		a2.Seal(nil, nonce, sdPlain, sdAAD)
	}
	floorOpen := func() {
		a, _ := s.NewAEAD(key)
		if _, err := a.Open(nil, nonce, ct, aad); err != nil {
			b.Fatal(err)
		}
		a2, _ := s.NewAEAD(key)
		if _, err := a2.Open(nil, nonce, sdCT, sdAAD); err != nil {
			b.Fatal(err)
		}
	}
	floorKDF := func() {
		sample := ct[:s.HashSize()]
		s.DeriveTreeSecret(secret, "key", 1, s.AEADKeySize())
		s.DeriveTreeSecret(secret, "nonce", 1, s.AEADNonceSize())
		s.DeriveTreeSecret(secret, "secret", 1, s.HashSize())
		s.ExpandWithLabel(secret, "key", sample, s.AEADKeySize())
		s.ExpandWithLabel(secret, "nonce", sample, s.AEADNonceSize())
	}

	// The interleaved benchmarks alternate the operation with its floor in
	// every iteration and measure both in thread CPU time, so both see the
	// same conditions and time spent waiting for a core is not counted; on a
	// shared, busy machine this ratio is far steadier than comparing
	// separate runs.
	b.Run("interleaved-protect", func(b *testing.B) {
		var op, floor time.Duration
		clock := newThreadClock()
		for b.Loop() {
			t0 := clock.now()
			if _, err := fx.sender.ProtectApplication(leaf, signer, data, nil, 0, &fixedRand{}); err != nil {
				b.Fatal(err)
			}
			t1 := clock.now()
			if _, err := signer.SignWithLabel(framedContentTBSLabel, tbs); err != nil {
				b.Fatal(err)
			}
			floorSeal()
			floorKDF()
			t2 := clock.now()
			op += t1 - t0
			floor += t2 - t1
		}
		b.ReportMetric(float64(op.Nanoseconds())/float64(b.N), "op-ns")
		b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns")
		b.ReportMetric(float64(op)/float64(floor), "ratio")
	})
	b.Run("interleaved-unprotect", func(b *testing.B) {
		gcEnc, _ := fx.gc.MarshalBinary()
		ep, _ := s.DeriveEpochSecrets(make([]byte, s.HashSize()), nil, nil, gcEnc)
		mk := func() *MessageProtector {
			tree, _ := s.NewSecretTree(ep.EncryptionSecret, 8, SecretTreeConfig{})
			p, _ := s.NewMessageProtector(fx.gc, tree, ep.SenderDataSecret, ep.MembershipKey)
			return p
		}
		sender, receiver := mk(), mk()
		msgs := make([]*PrivateMessage, b.N)
		for i := range msgs {
			pm, err := sender.ProtectApplication(leaf, signer, data, nil, 0, &fixedRand{})
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = pm
		}
		var op, floor time.Duration
		clock := newThreadClock()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := clock.now()
			if _, err := receiver.UnprotectPrivate(msgs[i], fx.keyFor); err != nil {
				b.Fatal(err)
			}
			t1 := clock.now()
			if err := ver.VerifyWithLabel(framedContentTBSLabel, tbs, ac.Auth.Signature); err != nil {
				b.Fatal(err)
			}
			floorOpen()
			floorKDF()
			t2 := clock.now()
			op += t1 - t0
			floor += t2 - t1
		}
		b.ReportMetric(float64(op.Nanoseconds())/float64(b.N), "op-ns")
		b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns")
		b.ReportMetric(float64(op)/float64(floor), "ratio")
	})

	b.Run("floor-sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := signer.SignWithLabel(framedContentTBSLabel, tbs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-verify", func(b *testing.B) {
		for b.Loop() {
			if err := ver.VerifyWithLabel(framedContentTBSLabel, tbs, ac.Auth.Signature); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-aead-seal", func(b *testing.B) {
		for b.Loop() {
			a, _ := s.NewAEAD(key)
			a.Seal(nil, nonce, plaintext, aad)
			a2, _ := s.NewAEAD(key)
			a2.Seal(nil, nonce, sdPlain, sdAAD)
		}
	})
	b.Run("floor-aead-open", func(b *testing.B) {
		for b.Loop() {
			a, _ := s.NewAEAD(key)
			if _, err := a.Open(nil, nonce, ct, aad); err != nil {
				b.Fatal(err)
			}
			a2, _ := s.NewAEAD(key)
			if _, err := a2.Open(nil, nonce, sdCT, sdAAD); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-kdf", func(b *testing.B) {
		sample := ct[:s.HashSize()]
		for b.Loop() {
			s.DeriveTreeSecret(secret, "key", 1, s.AEADKeySize())
			s.DeriveTreeSecret(secret, "nonce", 1, s.AEADNonceSize())
			s.DeriveTreeSecret(secret, "secret", 1, s.HashSize())
			s.ExpandWithLabel(secret, "key", sample, s.AEADKeySize())
			s.ExpandWithLabel(secret, "nonce", sample, s.AEADNonceSize())
		}
	})
}

// fixedRand is a cheap deterministic byte stream for benchmarks, whose
// results do not depend on the randomness.
type fixedRand struct{ ctr byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		r.ctr = r.ctr*31 + 7
		p[i] = r.ctr
	}
	return len(p), nil
}
