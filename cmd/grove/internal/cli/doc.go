// Package cli implements the grove command: argument parsing, the commands
// that talk to a running daemon through the local API (package node/api),
// and the daemon itself (`grove up`), which it runs through a DaemonFactory
// so that everything but the real node can be tested with a fake.
//
// It is not the daemon's logic (package node) nor the API transport
// (node/api); it only turns command lines into API calls and API answers
// into terse, aligned text or stable JSON.
package cli
