package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// RFC 9420, Section 8.2: the transcript hashes chain every commit into the
// group state.
//
//	confirmed_transcript_hash_[epoch] =
//	    Hash(interim_transcript_hash_[epoch - 1] || ConfirmedTranscriptHashInput_[epoch])
//	interim_transcript_hash_[epoch] =
//	    Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput_[epoch])

// ConfirmedTranscriptHash computes confirmed_transcript_hash_[epoch] from the
// previous interim hash and the commit's AuthenticatedContent, whose
// ConfirmedTranscriptHashInput is { wire_format; content; signature<V> }.
func (s *Suite) ConfirmedTranscriptHash(interimBefore []byte, commit *AuthenticatedContent) ([]byte, error) {
	if commit.Content.ContentType != ContentTypeCommit {
		return nil, fmt.Errorf("mls: transcript hash over %v content: %w", commit.Content.ContentType, ErrInvalidMessage)
	}
	input, err := marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(commit.WireFormat))
		commit.Content.marshal(b)
		addVarBytes(b, commit.Auth.Signature)
	})
	if err != nil {
		return nil, fmt.Errorf("mls: ConfirmedTranscriptHashInput: %w", err)
	}
	h := s.newHash()
	h.Write(interimBefore)
	h.Write(input)
	return h.Sum(nil), nil
}

// InterimTranscriptHash computes interim_transcript_hash_[epoch] from the
// confirmed hash and the commit's confirmation tag
// (InterimTranscriptHashInput is { MAC confirmation_tag; }).
func (s *Suite) InterimTranscriptHash(confirmed, confirmationTag []byte) ([]byte, error) {
	if len(confirmationTag) > maxVarint {
		return nil, fmt.Errorf("mls: confirmation tag: %w", ErrTooLarge)
	}
	h := s.newHash()
	h.Write(confirmed)
	var hdr [4]byte
	h.Write(appendVarint(hdr[:0], uint32(len(confirmationTag))))
	h.Write(confirmationTag)
	return h.Sum(nil), nil
}
