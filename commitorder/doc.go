// Package commitorder decides, identically on every member and without a
// server, which of several concurrent MLS Commits is canonical, and tells the
// node what to do about the others (RFC 9420, Section 14).
//
// Full rules, invariants and forward-secrecy costs are documented below the
// API summary; this is a placeholder completed in a later commit.
package commitorder
