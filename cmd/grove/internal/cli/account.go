package cli

import (
	"context"
	"fmt"

	"grove/node/api"
)

const accountRotateHelp = `
Use it when your account key may have leaked: a lost device that was not
revoked in time, a backup whose passphrase may be known. A new key replaces
it; your devices that are not revoked keep working and get the new key when
they are next online; your groups learn it through a commit by an admin,
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
