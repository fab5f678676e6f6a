package mls

import "golang.org/x/crypto/cryptobyte"

// Commit is RFC 9420, Section 12.4: the proposals it applies, inline or by
// reference, and an optional UpdatePath. Whether a path is required, and the
// validity of the proposal list (Section 12.2), is decided by the group layer.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath // nil when absent
}

func (c *Commit) marshal(b *cryptobyte.Builder) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range c.Proposals {
			c.Proposals[i].marshal(b)
		}
	})
	addOptional(b, c.Path != nil)
	if c.Path != nil {
		c.Path.marshal(b)
	}
}

func (c *Commit) unmarshal(s *cryptobyte.String) bool {
	*c = Commit{}
	var present bool
	if !readVectorElems(s, func(s *cryptobyte.String) bool {
		var p ProposalOrRef
		if !p.unmarshal(s) {
			return false
		}
		c.Proposals = append(c.Proposals, p)
		return true
	}) || !readOptional(s, &present) {
		return false
	}
	if present {
		c.Path = new(UpdatePath)
		return c.Path.unmarshal(s)
	}
	return true
}

// MarshalBinary encodes the Commit.
func (c *Commit) MarshalBinary() ([]byte, error) { return marshal(c.marshal) }

// UnmarshalCommit decodes one Commit, rejecting trailing bytes.
func UnmarshalCommit(data []byte) (*Commit, error) {
	c := new(Commit)
	if err := unmarshalAll("Commit", data, c.unmarshal); err != nil {
		return nil, err
	}
	return c, nil
}
