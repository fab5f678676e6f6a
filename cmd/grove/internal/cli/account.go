package cli

import (
	"context"
	"fmt"

	"grove/node"
	"grove/node/api"
)

const accountRotateHelp = `
Use it when your account key may have leaked: a lost device, a backup whose
passphrase may be known. Revoke lost devices first (grove device revoke):
the rotation keeps every device that is not revoked. A new key replaces the
old one; your kept devices keep working and get the new key when they are
next online; your groups learn it through a commit by an admin,
and from then on refuse any device that the old key certifies. Make a new
backup afterwards: old backups hold the old key.`

func (e *env) cmdAccountRotate(args []string) error {
	f := e.flags("account rotate")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		res, err := api.Accounts(c).AccountRotate(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(res)
		}
		fmt.Fprintf(e.stdout, "account key rotated: %s is now %s (%d devices kept)\n", res.Old, res.New, res.Devices)
		fmt.Fprintln(e.stdout, "make a new backup: older ones hold the replaced key")
		return nil
	})
}

// The served daemon passes the account API through when its daemon has it.
var _ api.Accounts = (*servedDaemon)(nil)

func (s *servedDaemon) AccountRotate(ctx context.Context) (api.AccountRotation, error) {
	a, ok := s.Daemon.(api.Accounts)
	if !ok {
		return api.AccountRotation{}, api.Errorf(api.CodeUnavailable, "this daemon cannot rotate an account key")
	}
	return a.AccountRotate(ctx)
}

const groupSettingsHelp = `
Without flags, shows the group's settings. --history-for-new-members takes a
number of days (30d), hours (12h) or off: when set, the member that adds
someone sends them the group's messages of that period, marked as from
before they joined (admins only; every member reads the setting from the
group). Off by default: new members read only what is sent after they join.
Only the messages are sent, never the group's keys.`

func (e *env) cmdGroupSettings(args []string) error {
	f := e.flags("group settings")
	history := f.String("history-for-new-members", "", "")
	timeout := f.Duration("timeout", DefaultChangeTimeout, "")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *history == "" {
		return e.withClient(func(c *api.Client) error {
			gs, err := c.Groups(e.ctx)
			if err != nil {
				return err
			}
			for _, g := range gs {
				if g.Name == pos[0] || g.ID == pos[0] {
					if *asJSON {
						return e.json(struct {
							HistoryForNewMembers string `json:"history_for_new_members"`
						}{node.FormatHistory(g.HistoryForNewMembers)})
					}
					fmt.Fprintf(e.stdout, "history for new members: %s\n", node.FormatHistory(g.HistoryForNewMembers))
					return nil
				}
			}
			return api.Errorf(api.CodeNotFound, "no group %q", pos[0])
		})
	}
	d, err := node.ParseHistory(*history)
	if err != nil {
		return usagef("%v", err)
	}
	done := fmt.Sprintf("new members of %s get %s of history", sanitize(pos[0]), node.FormatHistory(d))
	if d == 0 {
		done = fmt.Sprintf("new members of %s get no history", sanitize(pos[0]))
	}
	return e.change(api.ChangeRequest{Group: pos[0], Kind: api.ChangeHistory, History: d}, *timeout, *asJSON, done)
}
