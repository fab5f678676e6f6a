package cli

import (
	"fmt"

	"grove/node/api"
)

// Managing a group from the command line: promote, demote and rename are
// changes the group agrees on (committed like a removal, so they wait the
// same way: change), mute and unmute are settings of this device.

func (e *env) cmdGroupPromote(args []string) error {
	return e.adminChange("group promote", api.ChangePromote, args, "%s is now an admin of %s")
}

func (e *env) cmdGroupDemote(args []string) error {
	return e.adminChange("group demote", api.ChangeDemote, args, "%s is no longer an admin of %s")
}

func (e *env) adminChange(name string, kind api.ChangeKind, args []string, done string) error {
	f := e.flags(name)
	timeout := f.Duration("timeout", DefaultChangeTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return err
	}
	return e.change(api.ChangeRequest{Group: pos[0], Kind: kind, Member: pos[1]}, *timeout, *asJSON,
		fmt.Sprintf(done, sanitize(pos[1]), sanitize(pos[0])))
}

func (e *env) cmdGroupRename(args []string) error {
	f := e.flags("group rename")
	timeout := f.Duration("timeout", DefaultChangeTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return err
	}
	return e.change(api.ChangeRequest{Group: pos[0], Kind: api.ChangeRename, Name: pos[1]}, *timeout, *asJSON,
		fmt.Sprintf("renamed %s to %s", sanitize(pos[0]), sanitize(pos[1])))
}

func (e *env) cmdGroupMute(args []string) error { return e.mute("group mute", api.ChangeMute, args) }
func (e *env) cmdGroupUnmute(args []string) error {
	return e.mute("group unmute", api.ChangeUnmute, args)
}

func (e *env) mute(name string, kind api.ChangeKind, args []string) error {
	f := e.flags(name)
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ch, err := c.RequestChange(e.ctx, api.ChangeRequest{Group: pos[0], Kind: kind})
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(ch)
		}
		if kind == api.ChangeMute {
			fmt.Fprintf(e.stdout, "muted %s: no notifications from it on this device\n", sanitize(pos[0]))
		} else {
			fmt.Fprintf(e.stdout, "unmuted %s\n", sanitize(pos[0]))
		}
		return nil
	})
}
