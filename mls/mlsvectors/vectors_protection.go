package mlsvectors

import (
	"errors"
	"fmt"

	. "grove/mls"
)

// --- message-protection ---

type messageProtectionVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                hexBytes    `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes    `json:"signature_priv"`
	SignaturePub            hexBytes    `json:"signature_pub"`
	EncryptionSecret        hexBytes    `json:"encryption_secret"`
	SenderDataSecret        hexBytes    `json:"sender_data_secret"`
	MembershipKey           hexBytes    `json:"membership_key"`
	Proposal                hexBytes    `json:"proposal"`
	ProposalPub             hexBytes    `json:"proposal_pub"`
	ProposalPriv            hexBytes    `json:"proposal_priv"`
	Commit                  hexBytes    `json:"commit"`
	CommitPub               hexBytes    `json:"commit_pub"`
	CommitPriv              hexBytes    `json:"commit_priv"`
	Application             hexBytes    `json:"application"`
	ApplicationPriv         hexBytes    `json:"application_priv"`
}

func verifyMessageProtectionVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *messageProtectionVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		gc := &GroupContext{
			Version: ProtocolVersionMLS10, CipherSuite: v.CipherSuite, GroupID: v.GroupID,
			Epoch: v.Epoch, TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
		}
		sigKey, err := s.ParseSigningKey(v.SignaturePriv)
		if err != nil {
			return err
		}
		verKey, err := s.ParseVerifyingKey(v.SignaturePub)
		if err != nil {
			return err
		}
		keyFor := func(ac *AuthenticatedContent) (*VerifyingKey, error) {
			if ac.Content.Sender.Type != SenderTypeMember || ac.Content.Sender.LeafIndex != 1 {
				return nil, fmt.Errorf("sender %+v: %w", ac.Content.Sender, ErrUnknownSender)
			}
			return verKey, nil
		}
		// Each message gets fresh secret trees, one for the sender's side
		// and one for the receiver's, as the vectors protect each with
		// leaf 1's ratchets from the start.
		protector := func() (*MessageProtector, error) {
			tree, err := s.NewSecretTree(v.EncryptionSecret, 2, SecretTreeConfig{})
			if err != nil {
				return nil, err
			}
			return s.NewMessageProtector(gc, tree, v.SenderDataSecret, v.MembershipKey)
		}
		// bodyOf encodes the content the way the vector's raw field is encoded.
		bodyOf := func(ac *AuthenticatedContent) ([]byte, error) {
			switch ac.Content.ContentType {
			case ContentTypeProposal:
				return ac.Content.Proposal.MarshalBinary()
			case ContentTypeCommit:
				return ac.Content.Commit.MarshalBinary()
			}
			return ac.Content.ApplicationData, nil
		}
		check := func(name string, ct ContentType, raw, pubMsg, privMsg []byte) error {
			var errs []error
			content := FramedContent{Sender: MemberSender(1), ContentType: ct}
			switch ct {
			case ContentTypeProposal:
				p, err := UnmarshalProposal(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				content.Proposal = p
			case ContentTypeCommit:
				c, err := UnmarshalCommit(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				content.Commit = c
			default:
				content.ApplicationData = raw
			}
			var confirmationTag []byte

			// The given PublicMessage verifies and carries the raw value.
			if pubMsg != nil {
				p, err := protector()
				if err != nil {
					return err
				}
				m, err := UnmarshalMLSMessage(pubMsg)
				if err == nil && m.PublicMessage == nil {
					err = errors.New("not a PublicMessage")
				}
				if err != nil {
					return fmt.Errorf("%s_pub: %w", name, err)
				}
				ac, err := p.UnprotectPublic(m.PublicMessage, keyFor)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_pub: %w", name, err))
				} else {
					body, err := bodyOf(ac)
					errs = append(errs, err, expectEqual(name+"_pub content", body, raw))
					confirmationTag = ac.Auth.ConfirmationTag
				}
			}

			// Protecting as a PublicMessage verifies (application data must fail).
			{
				p, err := protector()
				if err != nil {
					return err
				}
				ac, err := p.NewAuthenticatedContent(WireFormatPublicMessage, content, sigKey)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				ac.Auth.ConfirmationTag = confirmationTag
				pm, err := p.ProtectPublic(ac)
				if ct == ContentTypeApplication {
					if err == nil {
						errs = append(errs, fmt.Errorf("%s: protecting application data as a PublicMessage succeeded", name))
					}
				} else if err != nil {
					errs = append(errs, fmt.Errorf("%s: protect public: %w", name, err))
				} else {
					enc, err := pm.MarshalBinary()
					if err == nil {
						var back PublicMessage
						if err = back.UnmarshalBinary(enc); err == nil {
							_, err = p.UnprotectPublic(&back, keyFor)
						}
					}
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: fresh PublicMessage: %w", name, err))
					}
				}
			}

			// The given PrivateMessage decrypts to the raw value.
			{
				p, err := protector()
				if err != nil {
					return err
				}
				m, err := UnmarshalMLSMessage(privMsg)
				if err == nil && m.PrivateMessage == nil {
					err = errors.New("not a PrivateMessage")
				}
				if err != nil {
					return fmt.Errorf("%s_priv: %w", name, err)
				}
				ac, err := p.UnprotectPrivate(m.PrivateMessage, keyFor)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_priv: %w", name, err))
				} else {
					body, err := bodyOf(ac)
					errs = append(errs, err, expectEqual(name+"_priv content", body, raw))
					if ct == ContentTypeCommit && confirmationTag == nil {
						confirmationTag = ac.Auth.ConfirmationTag
					}
				}
			}

			// Protecting as a PrivateMessage decrypts with a separate tree.
			{
				sender, err := protector()
				if err != nil {
					return err
				}
				receiver, err := protector()
				if err != nil {
					return err
				}
				ac, err := sender.NewAuthenticatedContent(WireFormatPrivateMessage, content, sigKey)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				ac.Auth.ConfirmationTag = confirmationTag
				pm, err := sender.ProtectPrivate(ac, 7, &vectorRand{})
				if err == nil {
					var enc []byte
					if enc, err = pm.MarshalBinary(); err == nil {
						var back PrivateMessage
						if err = back.UnmarshalBinary(enc); err == nil {
							var got *AuthenticatedContent
							if got, err = receiver.UnprotectPrivate(&back, keyFor); err == nil {
								body, err2 := bodyOf(got)
								err = errors.Join(err2, expectEqual(name+" fresh private content", body, raw))
							}
						}
					}
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: fresh PrivateMessage: %w", name, err))
				}
			}
			return errors.Join(errs...)
		}
		return errors.Join(
			check("proposal", ContentTypeProposal, v.Proposal, v.ProposalPub, v.ProposalPriv),
			check("commit", ContentTypeCommit, v.Commit, v.CommitPub, v.CommitPriv),
			check("application", ContentTypeApplication, v.Application, nil, v.ApplicationPriv),
		)
	})
}
