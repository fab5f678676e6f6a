package mlsvectors

import (
	"bytes"
	"fmt"
	"time"

	. "grove/mls"
)

// --- passive-client-welcome, passive-client-handling-commit, passive-client-random ---
//
// One format for the three files (test-vectors.md, "Passive Client
// Scenarios"): join from a Welcome, then follow every epoch's proposals and
// commit, comparing epoch authenticators.

type passiveClientVector struct {
	CipherSuite  CipherSuite `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func verifyPassiveClientVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *passiveClientVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		m, err := UnmarshalMLSMessage(v.KeyPackage)
		if err != nil || m.KeyPackage == nil {
			return fmt.Errorf("key_package: %v", err)
		}
		sig, err := s.ParseSigningKey(v.SignaturePriv)
		if err != nil {
			return err
		}
		enc, err := s.ParseHPKEPrivateKey(v.EncryptionPriv)
		if err != nil {
			return err
		}
		init, err := s.ParseHPKEPrivateKey(v.InitPriv)
		if err != nil {
			return err
		}
		kp := m.KeyPackage
		if !bytes.Equal(sig.PublicKey(), kp.LeafNode.SignatureKey) || !bytes.Equal(enc.PublicKey(), kp.LeafNode.EncryptionKey) || !bytes.Equal(init.PublicKey(), kp.InitKey) {
			return fmt.Errorf("private keys do not match the key package")
		}
		psks := MapPSKStore{}
		for _, p := range v.ExternalPSKs {
			psks[string(p.PSKID)] = p.PSK
		}
		// The lifetimes of the KeyPackages the vectors add all contain
		// the Unix epoch, so the lifetime checks stay on.
		now := time.Unix(0, 0)
		g, err := JoinFromWelcome(&JoinParams{
			Welcome:     v.Welcome,
			KeyPackage:  &KeyPackageBundle{KeyPackage: *kp, InitKey: init, EncryptionKey: enc, SigningKey: sig},
			RatchetTree: v.RatchetTree,
			PSKs:        psks,
			Now:         now,
		})
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if err := expectEqual("initial epoch authenticator", g.EpochAuthenticator(), v.InitialEpochAuthenticator); err != nil {
			return err
		}
		opts := ProcessOptions{Now: now}
		for i, e := range v.Epochs {
			for j, p := range e.Proposals {
				pm, err := g.ProcessMessage(p, opts)
				if err != nil {
					return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
				}
				if pm.Kind != KindProposal {
					return fmt.Errorf("epoch %d proposal %d: kind %d", i, j, pm.Kind)
				}
			}
			pm, err := g.ProcessMessage(e.Commit, opts)
			if err != nil {
				return fmt.Errorf("epoch %d commit: %w", i, err)
			}
			if pm.Kind != KindCommit {
				return fmt.Errorf("epoch %d commit: kind %d", i, pm.Kind)
			}
			next, err := pm.Commit.Merge()
			if err != nil {
				return fmt.Errorf("epoch %d merge: %w", i, err)
			}
			g = next
			if err := expectEqual(fmt.Sprintf("epoch %d authenticator", i), g.EpochAuthenticator(), e.EpochAuthenticator); err != nil {
				return err
			}
		}
		return nil
	})
}
