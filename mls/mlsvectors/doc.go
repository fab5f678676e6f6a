// Package mlsvectors checks Grove's mls package against the official MLS
// interoperability test vectors (mlswg/mls-implementations,
// test-vectors.md): VerifyVectors runs every case of one vector file and
// reports which failed. The mls tests and cmd/mlsvectors both use it, so a
// vector file is checked by the same code either way.
//
// It uses only mls's exported API (and mls/internal/treemath, the tree
// arithmetic mls is built on), so that mls itself carries no
// vector-checking code. It dot-imports mls because the checks read as the
// RFC's and the vectors' names for mls's types, as they did when the code
// lived inside mls.
package mlsvectors
