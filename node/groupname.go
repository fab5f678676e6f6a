package node

import (
	"errors"
	"strings"

	"grove/node/api"
)

// Group names are chosen on this device and shown in every list and log
// line, like display names: they follow the display-name rules (checkName),
// so a name cannot hide characters or rewrite the terminal, and they are
// unique among this device's groups, so that a name given on the command
// line means one group. (A joined group may still share a name with one
// created here; the user then names it by id.)

// checkGroupName reports why name cannot name a new group, as an API error
// in the user's terms.
func checkGroupName(name string) error {
	if err := checkName(name); err != nil {
		detail := strings.TrimPrefix(err.Error(), ErrBadName.Error()+": ")
		if !errors.Is(err, ErrBadName) {
			detail = err.Error()
		}
		return api.Errorf(api.CodeInvalidArgument, "group name %q is not allowed: %s", name, detail)
	}
	return nil
}

// groupNamed returns the group of this device (member or leaving) named
// name, or nil.
func (n *Node) groupNamed(name string) *groupActor {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.groups {
		if a.name == name {
			return a
		}
	}
	return nil
}
