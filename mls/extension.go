package mls

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ProtocolVersion is the MLS protocol version (RFC 9420, Section 6).
type ProtocolVersion uint16

// ProtocolVersionMLS10 is mls10, the only version defined.
const ProtocolVersionMLS10 ProtocolVersion = 1

// ExtensionType identifies an extension (RFC 9420, Section 17.3).
type ExtensionType uint16

// Extension types defined by RFC 9420, Section 17.3.
const (
	ExtensionApplicationID          ExtensionType = 0x0001
	ExtensionRatchetTree            ExtensionType = 0x0002
	ExtensionRequiredCapabilities   ExtensionType = 0x0003
	ExtensionExternalPub            ExtensionType = 0x0004
	ExtensionExternalSenders        ExtensionType = 0x0005
	extensionTypeDefaultUpperBound  ExtensionType = 0x0005
	extensionTypePrivateUseStart    ExtensionType = 0xf000
	extensionTypeGreaseMask         ExtensionType = 0x0f0f
	extensionTypeGreasePatternValue ExtensionType = 0x0a0a
)

// IsDefault reports whether t is one of the RFC's default extension types,
// which members support without listing them in capabilities (Section 7.2).
func (t ExtensionType) IsDefault() bool { return t >= 1 && t <= extensionTypeDefaultUpperBound }

// IsGREASE reports whether t is a GREASE value (RFC 9420, Section 13.5).
func (t ExtensionType) IsGREASE() bool {
	return t&extensionTypeGreaseMask == extensionTypeGreasePatternValue && t>>8 == t&0xff
}

// Extension is RFC 9420, Section 13: { ExtensionType extension_type;
// opaque extension_data<V>; }.
type Extension struct {
	Type ExtensionType
	Data []byte
}

func (e *Extension) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(e.Type))
	addVarBytes(b, e.Data)
}

func (e *Extension) unmarshal(s *cryptobyte.String) bool {
	var t uint16
	if !s.ReadUint16(&t) || !readVarBytes(s, &e.Data) {
		return false
	}
	e.Type = ExtensionType(t)
	return true
}

// Extensions is a list of extensions, Extension extensions<V>.
type Extensions []Extension

func (es Extensions) marshal(b *cryptobyte.Builder) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range es {
			es[i].marshal(b)
		}
	})
}

func (es *Extensions) unmarshal(s *cryptobyte.String) bool {
	var out Extensions
	ok := readVectorElems(s, func(s *cryptobyte.String) bool {
		var e Extension
		if !e.unmarshal(s) {
			return false
		}
		out = append(out, e)
		return true
	})
	*es = out
	return ok
}

// Find returns the extension of type t, if present.
func (es Extensions) Find(t ExtensionType) (Extension, bool) {
	for _, e := range es {
		if e.Type == t {
			return e, true
		}
	}
	return Extension{}, false
}

// checkUnique rejects lists that repeat an extension type: RFC 9420,
// Section 13.4 forbids more than one extension of any type in a list.
func (es Extensions) checkUnique() error {
	seen := make(map[ExtensionType]bool, len(es))
	for _, e := range es {
		if seen[e.Type] {
			return fmt.Errorf("mls: extension 0x%04x repeated: %w", uint16(e.Type), ErrDecode)
		}
		seen[e.Type] = true
	}
	return nil
}

// Equal reports whether two lists are identical, in order.
func (es Extensions) Equal(other Extensions) bool {
	if len(es) != len(other) {
		return false
	}
	for i := range es {
		if es[i].Type != other[i].Type || !bytes.Equal(es[i].Data, other[i].Data) {
			return false
		}
	}
	return true
}
