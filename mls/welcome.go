package mls

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// GroupInfo is RFC 9420, Section 12.4.3: the signed state a new member needs
// to join, sent encrypted in a Welcome or in the clear for external joins.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          LeafIndex
	Signature       []byte
}

// marshalTBS writes GroupInfoTBS, every field but the signature.
func (gi *GroupInfo) marshalTBS(b *cryptobyte.Builder) {
	gi.GroupContext.marshal(b)
	gi.Extensions.marshal(b)
	addVarBytes(b, gi.ConfirmationTag)
	b.AddUint32(uint32(gi.Signer))
}

func (gi *GroupInfo) marshal(b *cryptobyte.Builder) {
	gi.marshalTBS(b)
	addVarBytes(b, gi.Signature)
}

func (gi *GroupInfo) unmarshal(s *cryptobyte.String) bool {
	*gi = GroupInfo{}
	return gi.GroupContext.unmarshal(s) &&
		gi.Extensions.unmarshal(s) &&
		readVarBytes(s, &gi.ConfirmationTag) &&
		s.ReadUint32((*uint32)(&gi.Signer)) &&
		readVarBytes(s, &gi.Signature)
}

// MarshalBinary encodes the GroupInfo.
func (gi *GroupInfo) MarshalBinary() ([]byte, error) { return marshal(gi.marshal) }

// UnmarshalGroupInfo decodes one GroupInfo, rejecting trailing bytes.
func UnmarshalGroupInfo(data []byte) (*GroupInfo, error) {
	gi := new(GroupInfo)
	if err := unmarshalAll("GroupInfo", data, gi.unmarshal); err != nil {
		return nil, err
	}
	return gi, nil
}

const groupInfoTBSLabel = "GroupInfoTBS"

// Sign sets the signature over GroupInfoTBS (RFC 9420, Section 12.4.3).
func (gi *GroupInfo) Sign(key *SigningKey) error {
	tbs, err := marshal(gi.marshalTBS)
	if err != nil {
		return fmt.Errorf("mls: signing group info: %w", err)
	}
	sig, err := key.SignWithLabel(groupInfoTBSLabel, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing group info: %w", err)
	}
	gi.Signature = sig
	return nil
}

// VerifySignature checks the signature with the signer's public key, which
// the caller looks up in the ratchet tree at gi.Signer.
func (gi *GroupInfo) VerifySignature(s *Suite, signerKey []byte) error {
	tbs, err := marshal(gi.marshalTBS)
	if err != nil {
		return fmt.Errorf("mls: group info: %w", err)
	}
	if err := s.VerifyWithLabel(signerKey, groupInfoTBSLabel, tbs, gi.Signature); err != nil {
		return fmt.Errorf("mls: group info signature: %w", err)
	}
	return nil
}

// PathSecret is RFC 9420, Section 12.4.3.1.
type PathSecret struct {
	PathSecret []byte
}

// GroupSecrets is RFC 9420, Section 12.4.3.1: what a Welcome encrypts to
// each new member. It holds secrets; Erase it once the member has joined.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret // nil when absent
	PSKs         []PreSharedKeyID
}

// Erase zeroes the joiner secret and path secret.
func (gs *GroupSecrets) Erase() {
	clear(gs.JoinerSecret)
	if gs.PathSecret != nil {
		clear(gs.PathSecret.PathSecret)
	}
}

func (gs *GroupSecrets) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, gs.JoinerSecret)
	addOptional(b, gs.PathSecret != nil)
	if gs.PathSecret != nil {
		addVarBytes(b, gs.PathSecret.PathSecret)
	}
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range gs.PSKs {
			gs.PSKs[i].marshal(b)
		}
	})
}

func (gs *GroupSecrets) unmarshal(s *cryptobyte.String) bool {
	*gs = GroupSecrets{}
	var present bool
	if !readVarBytes(s, &gs.JoinerSecret) || !readOptional(s, &present) {
		return false
	}
	if present {
		gs.PathSecret = new(PathSecret)
		if !readVarBytes(s, &gs.PathSecret.PathSecret) {
			return false
		}
	}
	return readVectorElems(s, func(s *cryptobyte.String) bool {
		var p PreSharedKeyID
		if !p.unmarshal(s) {
			return false
		}
		gs.PSKs = append(gs.PSKs, p)
		return true
	})
}

// MarshalBinary encodes the GroupSecrets.
func (gs *GroupSecrets) MarshalBinary() ([]byte, error) { return marshal(gs.marshal) }

// UnmarshalGroupSecrets decodes one GroupSecrets, rejecting trailing bytes.
func UnmarshalGroupSecrets(data []byte) (*GroupSecrets, error) {
	gs := new(GroupSecrets)
	if err := unmarshalAll("GroupSecrets", data, gs.unmarshal); err != nil {
		return nil, err
	}
	return gs, nil
}

// EncryptedGroupSecrets is RFC 9420, Section 12.4.3.1.
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, e.NewMember)
	e.EncryptedGroupSecrets.marshal(b)
}

func (e *EncryptedGroupSecrets) unmarshal(s *cryptobyte.String) bool {
	*e = EncryptedGroupSecrets{}
	return readVarBytes(s, &e.NewMember) && e.EncryptedGroupSecrets.unmarshal(s)
}

// Welcome is RFC 9420, Section 12.4.3.1.
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (w *Welcome) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(w.CipherSuite))
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range w.Secrets {
			w.Secrets[i].marshal(b)
		}
	})
	addVarBytes(b, w.EncryptedGroupInfo)
}

func (w *Welcome) unmarshal(s *cryptobyte.String) bool {
	*w = Welcome{}
	return s.ReadUint16((*uint16)(&w.CipherSuite)) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var e EncryptedGroupSecrets
			if !e.unmarshal(s) {
				return false
			}
			w.Secrets = append(w.Secrets, e)
			return true
		}) &&
		readVarBytes(s, &w.EncryptedGroupInfo)
}

// MarshalBinary encodes the Welcome.
func (w *Welcome) MarshalBinary() ([]byte, error) { return marshal(w.marshal) }

// UnmarshalWelcome decodes one Welcome, rejecting trailing bytes.
func UnmarshalWelcome(data []byte) (*Welcome, error) {
	w := new(Welcome)
	if err := unmarshalAll("Welcome", data, w.unmarshal); err != nil {
		return nil, err
	}
	return w, nil
}

// Find returns the entry of the Welcome addressed to the KeyPackage with the
// given reference, or nil.
func (w *Welcome) Find(keyPackageRef []byte) *EncryptedGroupSecrets {
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, keyPackageRef) {
			return &w.Secrets[i]
		}
	}
	return nil
}

const welcomeLabel = "Welcome"

// EncryptGroupSecrets encrypts GroupSecrets to a new member's init key
// (RFC 9420, Section 12.4.3.1):
//
//	encrypted_group_secrets = EncryptWithLabel(init_key, "Welcome", encrypted_group_info, group_secrets)
func (s *Suite) EncryptGroupSecrets(initKey, encryptedGroupInfo []byte, gs *GroupSecrets, rand io.Reader) (HPKECiphertext, error) {
	plain, err := gs.MarshalBinary()
	if err != nil {
		return HPKECiphertext{}, err
	}
	defer clear(plain)
	kemOut, ct, err := s.EncryptWithLabel(initKey, welcomeLabel, encryptedGroupInfo, plain, rand)
	if err != nil {
		return HPKECiphertext{}, err
	}
	return HPKECiphertext{KEMOutput: kemOut, Ciphertext: ct}, nil
}

// DecryptGroupSecrets is the new member's side of EncryptGroupSecrets. The
// caller erases the result once it has joined.
func (s *Suite) DecryptGroupSecrets(initPriv *HPKEPrivateKey, encryptedGroupInfo []byte, ct *HPKECiphertext) (*GroupSecrets, error) {
	plain, err := s.DecryptWithLabel(initPriv, welcomeLabel, encryptedGroupInfo, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: group secrets: %w", err)
	}
	defer clear(plain)
	return UnmarshalGroupSecrets(plain)
}

// EncryptGroupInfo encrypts a signed GroupInfo under welcome_key and
// welcome_nonce with empty associated data (RFC 9420, Section 12.4.3.1).
func (s *Suite) EncryptGroupInfo(welcomeSecret []byte, gi *GroupInfo) ([]byte, error) {
	key, nonce, err := s.WelcomeKeyNonce(welcomeSecret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := gi.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return aead.Seal(plain[:0], nonce, plain, nil), nil
}

// DecryptGroupInfo decrypts the encrypted_group_info of a Welcome. The
// signature and confirmation tag are checked by the caller, which knows the
// signer's key and the epoch's confirmation key.
func (s *Suite) DecryptGroupInfo(welcomeSecret, encryptedGroupInfo []byte) (*GroupInfo, error) {
	key, nonce, err := s.WelcomeKeyNonce(welcomeSecret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, encryptedGroupInfo, nil)
	if err != nil {
		return nil, fmt.Errorf("mls: group info: %w", ErrDecrypt)
	}
	return UnmarshalGroupInfo(plain)
}
