package cli

import (
	"errors"
	"fmt"
	"regexp"
	"syscall"

	"grove/node"
)

// userError restates err in the user's terms where the daemon or a library
// phrased it for programmers: a condition the user can act on gets a
// sentence saying what happened and what to do, and the package prefixes
// of internal errors ("node: ", "store: ") are dropped, since they name
// code, not anything the user knows.
func (e *env) userError(err error) error {
	home, _ := e.homeDir()
	var named *node.AlreadyNamedError
	switch {
	case errors.As(err, new(*errNoDaemon)), errors.As(err, new(*usageError)):
		return err
	case errors.As(err, &named):
		return &userErr{err, fmt.Sprintf("%s already holds the device %q; init does not rename or replace it (use another --home for a second device)", home, named.Name)}
	case errors.Is(err, syscall.EWOULDBLOCK):
		// The store's lock file is held: another process has this home's
		// database open, which only a daemon does for long.
		return &userErr{err, fmt.Sprintf("another grove daemon is already running for this home (%s): stop it first (grove down)", home)}
	}
	if s := packagePrefix.ReplaceAllString(err.Error(), "${1}"); s != err.Error() {
		return &userErr{err, s}
	}
	return err
}

// packagePrefix matches the package names Grove's internal errors start
// with, where they appear as a prefix of the message or of a wrapped part.
var packagePrefix = regexp.MustCompile(`(^|: )(node|store|api|mls|p2p|commitorder|pebble): `)

// userErr is an error restated for the user; errors.Is and As still see
// the original.
type userErr struct {
	err error
	msg string
}

func (u *userErr) Error() string { return u.msg }
func (u *userErr) Unwrap() error { return u.err }
