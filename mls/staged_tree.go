package mls

import "fmt"

// NextRatchetTree encodes the ratchet tree of the epoch a staged commit
// creates (optional<Node> ratchet_tree<V>, RFC 9420, Section 12.4.3.3), for
// committers that deliver the tree to joiners out of band instead of in the
// Welcome's GroupInfo (CommitOptions.OmitRatchetTree).
func (sc *StagedCommit) NextRatchetTree() ([]byte, error) {
	if sc.next == nil {
		return nil, fmt.Errorf("mls: staged commit discarded: %w", ErrAlreadyMerged)
	}
	return sc.next.tree.MarshalBinary()
}
