// Package mls implements the Messaging Layer Security protocol, RFC 9420.
//
// The package is pure and deterministic: it never touches the network, the
// disk, the clock or goroutines. Randomness is injected as an io.Reader, so a
// test can replay any operation from a seed, and the package can be checked
// byte for byte against the official interoperability test data.
//
// Map of the package to the RFC, one file per area:
//
//	codec.go         Section 2.1: TLS presentation language, variable-length headers
//	suite.go         Section 5.1: cipher suites, hash, KDF (ExpandWithLabel, DeriveSecret), AEAD
//	hpke.go          Section 5.1.3: HPKE, DeriveKeyPair (RFC 9180, Section 7.1.3), EncryptWithLabel
//	signature.go     Section 5.1.2: signature schemes, SignWithLabel / VerifyWithLabel
//	treemath.go      Appendix C: array-based tree arithmetic
//	framing.go       Section 6: Sender, FramedContent, AuthenticatedContent, PublicMessage, PrivateMessage, MLSMessage
//	protect.go       Sections 6.2-6.3: MessageProtector (membership tag, content and sender-data encryption)
//	keyschedule.go   Section 8: GroupContext, epoch secrets, exporter, external init, confirmation tag
//	transcript.go    Section 8.2: confirmed and interim transcript hashes
//	psk.go           Section 8.4: PreSharedKeyID, psk_secret
//	secrettree.go    Section 9: secret tree, sender ratchets, deletion schedule
//	keypackage.go    Section 10: KeyPackage, KeyPackageRef
//	proposal.go      Section 12.1: proposals, ProposalOrRef, ProposalRef
//	commit.go        Section 12.4: Commit
//	welcome.go       Section 12.4.3: GroupInfo, GroupSecrets, Welcome
//	credential.go    Sections 5.3, 7.2: credentials, capabilities, lifetimes, proposal types; CredentialPolicy (5.3.1, 7.9)
//	wire.go          binary encodings of message parts without a constructor of their own
//	leafnode.go      Section 7.2: LeafNode, LeafNodeTBS, signing per leaf_node_source
//	tree.go          Sections 4, 7.1, 7.7-7.9, 12.4.3.3: the ratchet tree, forks, tree and parent hashes, ratchet_tree extension
//	treevalidation.go Sections 7.3, 12.4.3.1: leaf node validation, validation of an imported tree
//	treekem.go       Sections 7.4-7.6: UpdatePath creation and processing
//
// The group layer (Sections 10-14), what an application uses:
//
//	group.go              Group (one member's state in one epoch), Config, CreateGroup (Section 11), members, exporter, Erase
//	keypackage_validate.go Section 10: NewKeyPackage (last_resort marking), ValidateKeyPackage (10.1)
//	proposals_apply.go    Sections 12.2-12.3: proposal-list validation and application, PSK resolution
//	commit_create.go      Sections 12.4.1, 12.4.3: Commit -> StagedCommit (pending until Merge), GroupInfo, Welcome
//	commit_process.go     Sections 6, 12.4.2: ProcessMessage (application data, proposals, staged commits), Propose
//	welcome_join.go       Section 12.4.3.1: JoinFromWelcome with full tree validation
//	external.go           Section 12.4.3.2: JoinExternal (external commits, resync)
//	reinit.go             Sections 11.2-11.3: ReInit and branch successors
//	groupstate.go         the versioned serialised state (MarshalBinary, UnmarshalGroup)
//
// Epochs are immutable values: Commit and ProcessMessage return a
// StagedCommit whose Merge yields the next epoch's Group, leaving the
// parent usable, so a fork-choice layer can hold sibling commits. A
// member's own commit received back is reported as ErrOwnCommit.
//
// What this package is not for: transport, storage, ordering of concurrent
// commits (see package commitorder) or any policy beyond what RFC 9420 says.
package mls
