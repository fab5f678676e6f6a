package mlsvectors

import (
	"errors"
	"fmt"

	. "grove/mls"
)

// --- transcript-hashes ---

type transcriptHashesVector struct {
	CipherSuite                  CipherSuite `json:"cipher_suite"`
	ConfirmationKey              hexBytes    `json:"confirmation_key"`
	AuthenticatedContent         hexBytes    `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexBytes    `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexBytes    `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexBytes    `json:"interim_transcript_hash_after"`
}

func verifyTranscriptHashesVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *transcriptHashesVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		ac, err := UnmarshalAuthenticatedContent(v.AuthenticatedContent)
		if err != nil {
			return err
		}
		if ac.Content.ContentType != ContentTypeCommit {
			return fmt.Errorf("authenticated_content holds %v, want commit", ac.Content.ContentType)
		}
		reenc, err := ac.MarshalBinary()
		if err != nil {
			return err
		}
		confirmed, err := s.ConfirmedTranscriptHash(v.InterimTranscriptHashBefore, ac)
		if err != nil {
			return err
		}
		interim, err := s.InterimTranscriptHash(confirmed, ac.Auth.ConfirmationTag)
		if err != nil {
			return err
		}
		return errors.Join(
			expectEqual("re-encoded authenticated_content", reenc, v.AuthenticatedContent),
			s.VerifyConfirmationTag(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag),
			expectEqual("confirmed_transcript_hash_after", confirmed, v.ConfirmedTranscriptHashAfter),
			expectEqual("interim_transcript_hash_after", interim, v.InterimTranscriptHashAfter),
		)
	})
}

// --- messages ---

type messagesVector struct {
	MLSWelcome                     hexBytes `json:"mls_welcome"`
	MLSGroupInfo                   hexBytes `json:"mls_group_info"`
	MLSKeyPackage                  hexBytes `json:"mls_key_package"`
	RatchetTree                    hexBytes `json:"ratchet_tree"`
	GroupSecrets                   hexBytes `json:"group_secrets"`
	AddProposal                    hexBytes `json:"add_proposal"`
	UpdateProposal                 hexBytes `json:"update_proposal"`
	RemoveProposal                 hexBytes `json:"remove_proposal"`
	PreSharedKeyProposal           hexBytes `json:"pre_shared_key_proposal"`
	ReInitProposal                 hexBytes `json:"re_init_proposal"`
	ExternalInitProposal           hexBytes `json:"external_init_proposal"`
	GroupContextExtensionsProposal hexBytes `json:"group_context_extensions_proposal"`
	Commit                         hexBytes `json:"commit"`
	PublicMessageApplication       hexBytes `json:"public_message_application"`
	PublicMessageProposal          hexBytes `json:"public_message_proposal"`
	PublicMessageCommit            hexBytes `json:"public_message_commit"`
	PrivateMessage                 hexBytes `json:"private_message"`
}

// binaryCodec is a wire struct with its encoding pair.
type binaryCodec interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTripVector decodes data into v (which rejects trailing bytes) and
// checks that re-encoding reproduces it.
func roundTripVector(name string, data []byte, v binaryCodec) error {
	if err := v.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	enc, err := v.MarshalBinary()
	if err != nil {
		return fmt.Errorf("%s: re-encoding: %w", name, err)
	}
	return expectEqual(name+" re-encoded", enc, data)
}

func verifyMessagesVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *messagesVector) error {
		mls := func(name string, data []byte, wf WireFormat, ct ContentType) error {
			var m MLSMessage
			if err := roundTripVector(name, data, &m); err != nil {
				return err
			}
			if m.WireFormat != wf {
				return fmt.Errorf("%s: wire format %d, want %d", name, m.WireFormat, wf)
			}
			if ct != 0 && m.PublicMessage.Content.ContentType != ct {
				return fmt.Errorf("%s: content type %v, want %v", name, m.PublicMessage.Content.ContentType, ct)
			}
			return nil
		}
		proposal := func(name string, data []byte, t ProposalType) error {
			// The vectors hold the proposal bodies without the type
			// prefix; a Proposal is the type followed by the body.
			full := append([]byte{byte(t >> 8), byte(t)}, data...)
			return roundTripVector(name, full, new(Proposal))
		}
		// The ratchet tree's node encoding does not depend on the suite;
		// decoding needs one only to bind the tree to it.
		tree := func() error {
			s, err := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
			if err != nil {
				return err
			}
			t, err := UnmarshalRatchetTree(s, v.RatchetTree)
			if err != nil {
				return fmt.Errorf("ratchet_tree: %w", err)
			}
			enc, err := t.MarshalBinary()
			if err != nil {
				return fmt.Errorf("ratchet_tree: re-encoding: %w", err)
			}
			return expectEqual("ratchet_tree re-encoded", enc, v.RatchetTree)
		}
		return errors.Join(
			mls("mls_welcome", v.MLSWelcome, WireFormatWelcome, 0),
			mls("mls_group_info", v.MLSGroupInfo, WireFormatGroupInfo, 0),
			mls("mls_key_package", v.MLSKeyPackage, WireFormatKeyPackage, 0),
			tree(),
			roundTripVector("group_secrets", v.GroupSecrets, new(GroupSecrets)),
			proposal("add_proposal", v.AddProposal, ProposalTypeAdd),
			proposal("update_proposal", v.UpdateProposal, ProposalTypeUpdate),
			proposal("remove_proposal", v.RemoveProposal, ProposalTypeRemove),
			proposal("pre_shared_key_proposal", v.PreSharedKeyProposal, ProposalTypePSK),
			proposal("re_init_proposal", v.ReInitProposal, ProposalTypeReInit),
			proposal("external_init_proposal", v.ExternalInitProposal, ProposalTypeExternalInit),
			proposal("group_context_extensions_proposal", v.GroupContextExtensionsProposal, ProposalTypeGroupContextExtensions),
			roundTripVector("commit", v.Commit, new(Commit)),
			mls("public_message_application", v.PublicMessageApplication, WireFormatPublicMessage, ContentTypeApplication),
			mls("public_message_proposal", v.PublicMessageProposal, WireFormatPublicMessage, ContentTypeProposal),
			mls("public_message_commit", v.PublicMessageCommit, WireFormatPublicMessage, ContentTypeCommit),
			mls("private_message", v.PrivateMessage, WireFormatPrivateMessage, 0),
		)
	})
}

// --- welcome ---

type welcomeVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	InitPriv    hexBytes    `json:"init_priv"`
	SignerPub   hexBytes    `json:"signer_pub"`
	KeyPackage  hexBytes    `json:"key_package"`
	Welcome     hexBytes    `json:"welcome"`
}

func verifyWelcomeVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *welcomeVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		kpMsg, err := UnmarshalMLSMessage(v.KeyPackage)
		if err != nil || kpMsg.KeyPackage == nil {
			return fmt.Errorf("key_package: %v", err)
		}
		wMsg, err := UnmarshalMLSMessage(v.Welcome)
		if err != nil || wMsg.Welcome == nil {
			return fmt.Errorf("welcome: %v", err)
		}
		w := wMsg.Welcome
		if w.CipherSuite != v.CipherSuite || kpMsg.KeyPackage.CipherSuite != v.CipherSuite {
			return fmt.Errorf("cipher suite mismatch")
		}
		ref, err := s.KeyPackageRef(kpMsg.KeyPackage)
		if err != nil {
			return err
		}
		entry := w.Find(ref)
		if entry == nil {
			return fmt.Errorf("no entry for key package %x", ref)
		}
		initPriv, err := s.ParseHPKEPrivateKey(v.InitPriv)
		if err != nil {
			return err
		}
		gs, err := s.DecryptGroupSecrets(initPriv, w.EncryptedGroupInfo, &entry.EncryptedGroupSecrets)
		if err != nil {
			return err
		}
		welcomeSecret, err := s.WelcomeSecret(gs.JoinerSecret, nil)
		if err != nil {
			return err
		}
		gi, err := s.DecryptGroupInfo(welcomeSecret, w.EncryptedGroupInfo)
		if err != nil {
			return err
		}
		if err := gi.VerifySignature(s, v.SignerPub); err != nil {
			return err
		}
		gcEnc, err := gi.GroupContext.MarshalBinary()
		if err != nil {
			return err
		}
		ep, err := s.EpochSecretsFromJoiner(gs.JoinerSecret, nil, gcEnc)
		if err != nil {
			return err
		}
		if err := s.VerifyConfirmationTag(ep.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
			return err
		}
		// Re-encrypting reproduces a GroupInfo the joiner can read.
		enc, err := s.EncryptGroupInfo(welcomeSecret, gi)
		if err != nil {
			return err
		}
		return expectEqual("re-encrypted group info", enc, w.EncryptedGroupInfo)
	})
}
