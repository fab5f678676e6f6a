package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// PSKType is RFC 9420, Section 8.4.
type PSKType uint8

// PSK types (RFC 9420, Section 8.4).
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// ResumptionPSKUsage is RFC 9420, Section 8.4.
type ResumptionPSKUsage uint8

// Resumption PSK usages (RFC 9420, Section 8.4).
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReInit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names one PSK injected into the key schedule
// (RFC 9420, Section 8.4). PSKID is set for external PSKs; Usage, PSKGroupID
// and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	PSKType PSKType

	PSKID []byte // external

	Usage      ResumptionPSKUsage // resumption
	PSKGroupID []byte
	PSKEpoch   uint64

	PSKNonce []byte
}

func (p *PreSharedKeyID) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.PSKType))
	switch p.PSKType {
	case PSKTypeExternal:
		addVarBytes(b, p.PSKID)
	case PSKTypeResumption:
		b.AddUint8(uint8(p.Usage))
		addVarBytes(b, p.PSKGroupID)
		b.AddUint64(p.PSKEpoch)
	default:
		b.SetError(fmt.Errorf("mls: PreSharedKeyID of type %d: %w", p.PSKType, ErrInvalidMessage))
		return
	}
	addVarBytes(b, p.PSKNonce)
}

func (p *PreSharedKeyID) unmarshal(s *cryptobyte.String) bool {
	*p = PreSharedKeyID{}
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	p.PSKType = PSKType(t)
	switch p.PSKType {
	case PSKTypeExternal:
		if !readVarBytes(s, &p.PSKID) {
			return false
		}
	case PSKTypeResumption:
		var usage uint8
		if !s.ReadUint8(&usage) || usage < 1 || usage > 3 ||
			!readVarBytes(s, &p.PSKGroupID) || !s.ReadUint64(&p.PSKEpoch) {
			return false
		}
		p.Usage = ResumptionPSKUsage(usage)
	default:
		return false
	}
	return readVarBytes(s, &p.PSKNonce)
}

// PSKWithSecret pairs a PreSharedKeyID with the PSK value it names, as the
// caller resolved it (from application storage for external PSKs, from the
// resumption_psk of the named epoch for resumption PSKs).
type PSKWithSecret struct {
	ID  PreSharedKeyID
	PSK []byte
}

// pskLabel encodes PSKLabel (RFC 9420, Section 8.4).
func pskLabel(id *PreSharedKeyID, index, count uint16) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		id.marshal(b)
		b.AddUint16(index)
		b.AddUint16(count)
	})
}

// PSKSecret chains the given PSKs into psk_secret (RFC 9420, Section 8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i] = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, KDF.Nh)
//	psk_secret_[0] = 0
//	psk_secret_[i] = KDF.Extract(psk_input_[i-1], psk_secret_[i-1])
//
// With no PSKs the result is the all-zero vector of length Nh. Intermediate
// values are zeroed before returning.
func (s *Suite) PSKSecret(psks []PSKWithSecret) ([]byte, error) {
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("mls: %d PSKs: %w", len(psks), ErrTooLarge)
	}
	secret := make([]byte, s.nh)
	for i := range psks {
		label, err := pskLabel(&psks[i].ID, uint16(i), uint16(len(psks)))
		if err != nil {
			clear(secret)
			return nil, err
		}
		extracted := s.Extract(nil, psks[i].PSK)
		input, err := s.ExpandWithLabel(extracted, "derived psk", label, s.nh)
		clear(extracted)
		if err != nil {
			clear(secret)
			return nil, err
		}
		next := s.Extract(input, secret)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}
