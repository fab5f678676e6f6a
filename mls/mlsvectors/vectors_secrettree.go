package mlsvectors

import (
	"errors"
	"fmt"

	. "grove/mls"
)

// --- secret-tree ---

type secretTreeVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	} `json:"leaves"`
}

func verifySecretTreeVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *secretTreeVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		sd := v.SenderData
		key, nonce, err := s.SenderDataKeyNonce(sd.SenderDataSecret, sd.Ciphertext)
		if err != nil {
			return err
		}
		errs := []error{expectEqual("sender_data key", key, sd.Key), expectEqual("sender_data nonce", nonce, sd.Nonce)}
		tree, err := s.NewSecretTree(v.EncryptionSecret, uint32(len(v.Leaves)), SecretTreeConfig{})
		if err != nil {
			return err
		}
		for i, gens := range v.Leaves {
			for _, g := range gens {
				for _, c := range []struct {
					typ        RatchetType
					key, nonce []byte
				}{
					{HandshakeRatchet, g.HandshakeKey, g.HandshakeNonce},
					{ApplicationRatchet, g.ApplicationKey, g.ApplicationNonce},
				} {
					err := tree.Open(LeafIndex(i), c.typ, g.Generation, func(key, nonce []byte) error {
						return errors.Join(
							expectEqual(fmt.Sprintf("leaf %d %s key %d", i, c.typ, g.Generation), key, c.key),
							expectEqual(fmt.Sprintf("leaf %d %s nonce %d", i, c.typ, g.Generation), nonce, c.nonce))
					})
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	})
}
