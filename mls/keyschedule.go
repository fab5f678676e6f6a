package mls

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// GroupContext is RFC 9420, Section 8.1: the summary of a group's state that
// every member agrees on, mixed into the key schedule of each epoch.
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (gc *GroupContext) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(gc.Version))
	b.AddUint16(uint16(gc.CipherSuite))
	addVarBytes(b, gc.GroupID)
	b.AddUint64(gc.Epoch)
	addVarBytes(b, gc.TreeHash)
	addVarBytes(b, gc.ConfirmedTranscriptHash)
	gc.Extensions.marshal(b)
}

func (gc *GroupContext) unmarshal(s *cryptobyte.String) bool {
	*gc = GroupContext{}
	var version, suite uint16
	if !s.ReadUint16(&version) || !s.ReadUint16(&suite) ||
		!readVarBytes(s, &gc.GroupID) || !s.ReadUint64(&gc.Epoch) ||
		!readVarBytes(s, &gc.TreeHash) || !readVarBytes(s, &gc.ConfirmedTranscriptHash) ||
		!gc.Extensions.unmarshal(s) {
		return false
	}
	gc.Version, gc.CipherSuite = ProtocolVersion(version), CipherSuite(suite)
	return true
}

// MarshalBinary encodes the GroupContext.
func (gc *GroupContext) MarshalBinary() ([]byte, error) { return marshal(gc.marshal) }

// UnmarshalBinary decodes a GroupContext and rejects trailing bytes.
func (gc *GroupContext) UnmarshalBinary(data []byte) error {
	return unmarshalAll("GroupContext", data, gc.unmarshal)
}

// Clone returns a deep copy, so that the next epoch's context can be built
// without aliasing the current one.
func (gc *GroupContext) Clone() *GroupContext {
	c := *gc
	c.GroupID = bytes.Clone(gc.GroupID)
	c.TreeHash = bytes.Clone(gc.TreeHash)
	c.ConfirmedTranscriptHash = bytes.Clone(gc.ConfirmedTranscriptHash)
	c.Extensions = make(Extensions, len(gc.Extensions))
	for i, e := range gc.Extensions {
		c.Extensions[i] = Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return &c
}

// EpochSecrets holds the secrets of one epoch derived by the key schedule
// (RFC 9420, Section 8, Table 4). It retains every derived secret until
// Erase is called; the group layer is expected to keep the instance only
// for the current epoch (and a bounded number of past epochs, if any) and to
// erase it when the epoch is dropped.
//
// JoinerSecret and WelcomeSecret are needed only by the committer, to build
// the Welcome of the commit that created the epoch; EraseJoiner drops them
// once the Welcome is sent. EncryptionSecret is the root of the secret tree
// and should be erased (EraseEncryptionSecret) once the tree is built from it.
type EpochSecrets struct {
	JoinerSecret  []byte
	WelcomeSecret []byte

	SenderDataSecret   []byte
	EncryptionSecret   []byte
	ExporterSecret     []byte
	ExternalSecret     []byte
	ConfirmationKey    []byte
	MembershipKey      []byte
	ResumptionPSK      []byte
	EpochAuthenticator []byte
	// InitSecret is init_secret_[n], the input to the next epoch's key schedule.
	InitSecret []byte
}

// Erase zeroes every secret the struct holds.
func (e *EpochSecrets) Erase() {
	for _, p := range []*[]byte{
		&e.JoinerSecret, &e.WelcomeSecret, &e.SenderDataSecret, &e.EncryptionSecret,
		&e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey, &e.MembershipKey,
		&e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	} {
		clear(*p)
		*p = nil
	}
}

// EraseJoiner zeroes the joiner and welcome secrets once the Welcome that
// needs them has been built.
func (e *EpochSecrets) EraseJoiner() {
	clear(e.JoinerSecret)
	clear(e.WelcomeSecret)
	e.JoinerSecret, e.WelcomeSecret = nil, nil
}

// EraseEncryptionSecret zeroes the encryption secret once a SecretTree has
// been built from it.
func (e *EpochSecrets) EraseEncryptionSecret() {
	clear(e.EncryptionSecret)
	e.EncryptionSecret = nil
}

// zeroIfEmpty returns a Nh-byte zero vector when secret is absent, as the
// key schedule specifies for a missing commit_secret or psk_secret
// (RFC 9420, Sections 8 and 8.4).
func (s *Suite) zeroIfEmpty(secret []byte) []byte {
	if len(secret) == 0 {
		return make([]byte, s.nh)
	}
	return secret
}

// JoinerSecret derives joiner_secret from init_secret_[n-1], commit_secret
// and the encoded GroupContext_[n] (RFC 9420, Section 8). A nil commitSecret
// stands for the all-zero vector.
func (s *Suite) JoinerSecret(initSecret, commitSecret, groupContext []byte) ([]byte, error) {
	prk := s.Extract(initSecret, s.zeroIfEmpty(commitSecret))
	defer clear(prk)
	return s.ExpandWithLabel(prk, "joiner", groupContext, s.nh)
}

// WelcomeSecret derives welcome_secret from joiner_secret and psk_secret
// (RFC 9420, Section 8). A nil pskSecret stands for the all-zero vector.
func (s *Suite) WelcomeSecret(joinerSecret, pskSecret []byte) ([]byte, error) {
	prk := s.Extract(joinerSecret, s.zeroIfEmpty(pskSecret))
	defer clear(prk)
	return s.DeriveSecret(prk, "welcome")
}

// WelcomeKeyNonce derives welcome_key and welcome_nonce, which encrypt the
// GroupInfo in a Welcome (RFC 9420, Section 12.4.3.1).
func (s *Suite) WelcomeKeyNonce(welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = s.ExpandWithLabel(welcomeSecret, "key", nil, s.nk); err != nil {
		return nil, nil, err
	}
	if nonce, err = s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.nn); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}

// DeriveEpochSecrets runs the key schedule of RFC 9420, Section 8, for a
// member that knows init_secret_[n-1] and commit_secret (a nil commitSecret
// or pskSecret is the all-zero vector). groupContext is the encoded
// GroupContext_[n] of the new epoch.
func (s *Suite) DeriveEpochSecrets(initSecret, commitSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	joiner, err := s.JoinerSecret(initSecret, commitSecret, groupContext)
	if err != nil {
		return nil, err
	}
	return s.EpochSecretsFromJoiner(joiner, pskSecret, groupContext)
}

// EpochSecretsFromJoiner continues the key schedule from joiner_secret, as a
// new member joining by Welcome does (RFC 9420, Section 8). The returned
// struct takes ownership of joinerSecret.
func (s *Suite) EpochSecretsFromJoiner(joinerSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	prk := s.Extract(joinerSecret, s.zeroIfEmpty(pskSecret))
	defer clear(prk)
	e := &EpochSecrets{JoinerSecret: joinerSecret}
	var err error
	if e.WelcomeSecret, err = s.DeriveSecret(prk, "welcome"); err != nil {
		return nil, err
	}
	epochSecret, err := s.ExpandWithLabel(prk, "epoch", groupContext, s.nh)
	if err != nil {
		return nil, err
	}
	// epoch_secret itself is not retained: every secret the protocol uses
	// is derived from it here (RFC 9420, Section 8, Table 4).
	defer clear(epochSecret)
	for _, d := range []struct {
		label string
		out   *[]byte
	}{
		{"sender data", &e.SenderDataSecret},
		{"encryption", &e.EncryptionSecret},
		{"exporter", &e.ExporterSecret},
		{"external", &e.ExternalSecret},
		{"confirm", &e.ConfirmationKey},
		{"membership", &e.MembershipKey},
		{"resumption", &e.ResumptionPSK},
		{"authentication", &e.EpochAuthenticator},
		{"init", &e.InitSecret},
	} {
		if *d.out, err = s.DeriveSecret(epochSecret, d.label); err != nil {
			e.Erase()
			return nil, err
		}
	}
	return e, nil
}

// Export is MLS-Exporter (RFC 9420, Section 8.5):
//
//	MLS-Exporter(Label, Context, Length) =
//	    ExpandWithLabel(DeriveSecret(exporter_secret, Label),
//	                    "exported", Hash(Context), Length)
func (s *Suite) Export(exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	derived, err := s.DeriveSecret(exporterSecret, label)
	if err != nil {
		return nil, err
	}
	defer clear(derived)
	return s.ExpandWithLabel(derived, "exported", s.Hash(context), length)
}

// ExternalKeyPair derives the epoch's external HPKE key pair from
// external_secret (RFC 9420, Section 8.3); its public key is published in the
// external_pub GroupInfo extension.
func (s *Suite) ExternalKeyPair(externalSecret []byte) (*HPKEPrivateKey, error) {
	return s.DeriveKeyPair(externalSecret)
}

// externalInitLabel is the HPKE exporter context of external initialisation.
const externalInitLabel = "MLS 1.0 external init secret"

// ExternalInit is the joiner's side of RFC 9420, Section 8.3: it encapsulates
// to the group's external_pub and returns the kem_output for the
// ExternalInit proposal and the init_secret of the new epoch.
func (s *Suite) ExternalInit(externalPub []byte, rand io.Reader) (kemOutput, initSecret []byte, err error) {
	pk, err := s.kem.UnmarshalBinaryPublicKey(externalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external_pub: %w: %v", ErrInvalidKey, err)
	}
	sender, err := s.hpke.NewSender(pk, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	enc, sealer, err := sender.Setup(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	return enc, sealer.Export([]byte(externalInitLabel), uint(s.nh)), nil
}

// ExternalInitSecret is the members' side of RFC 9420, Section 8.3: it
// recovers init_secret from the kem_output of an ExternalInit proposal.
func (s *Suite) ExternalInitSecret(externalPriv *HPKEPrivateKey, kemOutput []byte) ([]byte, error) {
	if externalPriv == nil || externalPriv.key == nil {
		return nil, fmt.Errorf("mls: external init: no private key: %w", ErrInvalidKey)
	}
	receiver, err := s.hpke.NewReceiver(externalPriv.key, nil)
	if err != nil {
		return nil, fmt.Errorf("mls: external init: %w", err)
	}
	opener, err := receiver.Setup(kemOutput)
	if err != nil {
		return nil, fmt.Errorf("mls: external init kem_output: %w: %v", ErrDecrypt, err)
	}
	return opener.Export([]byte(externalInitLabel), uint(s.nh)), nil
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash)
// (RFC 9420, Section 6.1).
func (s *Suite) ConfirmationTag(confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.MAC(confirmationKey, confirmedTranscriptHash)
}

// VerifyConfirmationTag checks a confirmation tag in constant time.
func (s *Suite) VerifyConfirmationTag(confirmationKey, confirmedTranscriptHash, tag []byte) error {
	if !equalConstantTime(s.ConfirmationTag(confirmationKey, confirmedTranscriptHash), tag) {
		return ErrInvalidConfirmationTag
	}
	return nil
}

// ExternalPubExtension encodes the external_pub GroupInfo extension,
// struct { HPKEPublicKey external_pub; } (RFC 9420, Section 12.4.3.2).
func ExternalPubExtension(externalPub []byte) (Extension, error) {
	data, err := marshal(func(b *cryptobyte.Builder) { addVarBytes(b, externalPub) })
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: ExtensionExternalPub, Data: data}, nil
}

// ParseExternalPub decodes the external_pub extension data.
func ParseExternalPub(ext Extension) ([]byte, error) {
	if ext.Type != ExtensionExternalPub {
		return nil, fmt.Errorf("mls: extension 0x%04x is not external_pub: %w", uint16(ext.Type), ErrDecode)
	}
	var pub []byte
	if err := unmarshalAll("ExternalPub", ext.Data, func(s *cryptobyte.String) bool { return readVarBytes(s, &pub) }); err != nil {
		return nil, err
	}
	return pub, nil
}
