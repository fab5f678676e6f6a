package mls

// Binary encodings of the wire structs that have no constructor of their
// own, so that an application (or a conformance checker) can decode and
// re-encode each message part (RFC 9420, Sections 6, 12 and 12.4.3). Each
// UnmarshalBinary rejects trailing bytes and, on error, leaves a value that
// must not be used.

// UnmarshalBinary decodes an MLSMessage.
func (m *MLSMessage) UnmarshalBinary(data []byte) error {
	*m = MLSMessage{}
	return unmarshalAll("MLSMessage", data, m.unmarshal)
}

// MarshalBinary encodes the PublicMessage (RFC 9420, Section 6.2).
func (pm *PublicMessage) MarshalBinary() ([]byte, error) { return marshal(pm.marshal) }

// UnmarshalBinary decodes a PublicMessage.
func (pm *PublicMessage) UnmarshalBinary(data []byte) error {
	*pm = PublicMessage{}
	return unmarshalAll("PublicMessage", data, pm.unmarshal)
}

// MarshalBinary encodes the PrivateMessage (RFC 9420, Section 6.3).
func (pm *PrivateMessage) MarshalBinary() ([]byte, error) { return marshal(pm.marshal) }

// UnmarshalBinary decodes a PrivateMessage.
func (pm *PrivateMessage) UnmarshalBinary(data []byte) error {
	*pm = PrivateMessage{}
	return unmarshalAll("PrivateMessage", data, pm.unmarshal)
}

// UnmarshalBinary decodes a Proposal (RFC 9420, Section 12.1), its type
// followed by its body.
func (p *Proposal) UnmarshalBinary(data []byte) error {
	*p = Proposal{}
	return unmarshalAll("Proposal", data, p.unmarshal)
}

// UnmarshalBinary decodes a Commit (RFC 9420, Section 12.4).
func (c *Commit) UnmarshalBinary(data []byte) error {
	*c = Commit{}
	return unmarshalAll("Commit", data, c.unmarshal)
}

// UnmarshalBinary decodes GroupSecrets (RFC 9420, Section 12.4.3).
func (gs *GroupSecrets) UnmarshalBinary(data []byte) error {
	*gs = GroupSecrets{}
	return unmarshalAll("GroupSecrets", data, gs.unmarshal)
}
