package mlsvectors

import (
	"errors"
	"fmt"

	. "grove/mls"
)

// --- key-schedule ---

type keyScheduleVector struct {
	CipherSuite       CipherSuite `json:"cipher_suite"`
	GroupID           hexBytes    `json:"group_id"`
	InitialInitSecret hexBytes    `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

func verifyKeyScheduleVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *keyScheduleVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		initSecret := []byte(v.InitialInitSecret)
		for i, ep := range v.Epochs {
			gc := GroupContext{
				Version:                 ProtocolVersionMLS10,
				CipherSuite:             v.CipherSuite,
				GroupID:                 v.GroupID,
				Epoch:                   uint64(i),
				TreeHash:                ep.TreeHash,
				ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
			}
			gcBytes, err := gc.MarshalBinary()
			if err != nil {
				return fmt.Errorf("epoch %d: %w", i, err)
			}
			if err := expectEqual("group_context", gcBytes, ep.GroupContext); err != nil {
				return fmt.Errorf("epoch %d: %w", i, err)
			}
			var back GroupContext
			if err := back.UnmarshalBinary(ep.GroupContext); err != nil {
				return fmt.Errorf("epoch %d: %w", i, err)
			}
			e, err := s.DeriveEpochSecrets(initSecret, ep.CommitSecret, ep.PSKSecret, gcBytes)
			if err != nil {
				return fmt.Errorf("epoch %d: %w", i, err)
			}
			errs := []error{
				expectEqual("joiner_secret", e.JoinerSecret, ep.JoinerSecret),
				expectEqual("welcome_secret", e.WelcomeSecret, ep.WelcomeSecret),
				expectEqual("init_secret", e.InitSecret, ep.InitSecret),
				expectEqual("sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret),
				expectEqual("encryption_secret", e.EncryptionSecret, ep.EncryptionSecret),
				expectEqual("exporter_secret", e.ExporterSecret, ep.ExporterSecret),
				expectEqual("epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator),
				expectEqual("external_secret", e.ExternalSecret, ep.ExternalSecret),
				expectEqual("confirmation_key", e.ConfirmationKey, ep.ConfirmationKey),
				expectEqual("membership_key", e.MembershipKey, ep.MembershipKey),
				expectEqual("resumption_psk", e.ResumptionPSK, ep.ResumptionPSK),
			}
			if w, err := s.WelcomeSecret(ep.JoinerSecret, ep.PSKSecret); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, expectEqual("welcome_secret from joiner", w, ep.WelcomeSecret))
			}
			if kp, err := s.ExternalKeyPair(e.ExternalSecret); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, expectEqual("external_pub", kp.PublicKey(), ep.ExternalPub))
				// Round trip of external init through the derived key pair.
				kemOut, joinerInit, err := s.ExternalInit(ep.ExternalPub, &vectorRand{})
				if err == nil {
					var memberInit []byte
					memberInit, err = s.ExternalInitSecret(kp, kemOut)
					errs = append(errs, expectEqual("external init secret", memberInit, joinerInit))
				}
				errs = append(errs, err)
			}
			x := ep.Exporter
			if out, err := s.Export(e.ExporterSecret, x.Label, x.Context, x.Length); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, expectEqual("exporter", out, x.Secret))
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("epoch %d: %w", i, err)
			}
			initSecret = e.InitSecret
		}
		return nil
	})
}

// --- psk_secret ---

type pskSecretVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

func verifyPSKSecretVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *pskSecretVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		psks := make([]PSKWithSecret, len(v.PSKs))
		for i, p := range v.PSKs {
			psks[i] = PSKWithSecret{
				ID:  PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: p.PSKID, PSKNonce: p.PSKNonce},
				PSK: p.PSK,
			}
		}
		got, err := s.PSKSecret(psks)
		if err != nil {
			return err
		}
		return expectEqual("psk_secret", got, v.PSKSecret)
	})
}
