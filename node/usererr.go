package node

import (
	"errors"
	"fmt"
	"strings"

	"grove/node/api"
)

// Errors a person causes (a mistyped invite code, a second init with another
// name) are reported in their terms: what went wrong and what to do, without
// the package prefixes the node's internal errors carry.

// AlreadyNamedError is returned by Start when Config.Name differs from the
// name this device's home already holds: the home belongs to another
// identity, which a second init must not overwrite.
type AlreadyNamedError struct {
	Name string // the name the home holds
	Want string // the name asked for
}

func (e *AlreadyNamedError) Error() string {
	return fmt.Sprintf("%v: this device is already named %q", ErrInvalidConfig, e.Name)
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) hold.
func (e *AlreadyNamedError) Unwrap() error { return ErrInvalidConfig }

// badInviteError turns decodeInvite's error into the API error a user reads:
// the code was damaged in copying, or is no invite code at all.
func badInviteError(err error) error {
	detail := strings.TrimPrefix(err.Error(), ErrBadInvite.Error()+": ")
	switch {
	case !errors.Is(err, ErrBadInvite):
		return api.Errorf(api.CodeInvalidArgument, "invite code: %v", err)
	case strings.HasPrefix(detail, "missing"):
		return api.Errorf(api.CodeInvalidArgument, "that is not a grove invite code (invite codes start with %q)", invitePrefix)
	case strings.HasPrefix(detail, "checksum mismatch"):
		return api.Errorf(api.CodeInvalidArgument, "that invite code is damaged or mistyped (checksum mismatch): copy it again")
	case strings.HasPrefix(detail, "version"):
		return api.Errorf(api.CodeInvalidArgument, "that invite code comes from a newer or older grove (%s): update grove or ask for a new code", detail)
	}
	return api.Errorf(api.CodeInvalidArgument, "that invite code is damaged or mistyped (%s): copy it again", detail)
}
