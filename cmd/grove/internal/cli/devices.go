package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"grove/account"
	"grove/node/api"
)

const deviceLinkHelp = `
On the new device run: grove init --link CODE [--device NAME]. The code is
valid once, for 10 minutes. Unless --no-wait, this command waits for the new
device and prints the comparison string the new device shows too: if the
two differ, revoke the new device.`

const deviceRevokeHelp = `
DEVICE is a name or an id from grove device list. Works while the device is
offline: its leaves are removed from every group (by this device where it is
an admin, else by an admin at its request) and every member is told, signed
by your account, to refuse it from then on.`

const backupCreateHelp = `
The file holds your account key, your device list and the history on this
device, encrypted with a passphrase (age, scrypt); never the group keys. The
passphrase is asked twice, or read from --passphrase-file FILE.`

const backupRestoreHelp = `
Run on a fresh home instead of init: the home becomes a new device of the
account in FILE, with its history. Once its daemon runs, it gets back into
the groups your account administers by itself (two members must vouch for
the group's state); for the others use grove device link on another device
of yours, or an invite from a member.`

// devices returns the daemon's device API.
func devices(c *api.Client) api.Devices { return c }

func (e *env) cmdDeviceLink(args []string) error {
	f := e.flags("device link")
	noWait := f.Bool("no-wait", false, "")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		// Subscribed first, so that a link made at once is not missed.
		var evs <-chan api.Event
		if !*noWait {
			var err error
			if evs, err = c.Subscribe(ctx); err != nil {
				return err
			}
		}
		lc, err := devices(c).DeviceLink(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := e.json(lc); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(e.stdout, "%s\n", lc.Code)
			fmt.Fprintf(e.stderr, "on the new device: grove init --link CODE --device NAME (valid until %s)\n", e.time(lc.Expires))
		}
		if *noWait {
			return nil
		}
		timer := time.NewTimer(time.Until(lc.Expires))
		defer timer.Stop()
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					return errors.New("the daemon stopped before a device was linked")
				}
				if ev.Kind == api.EventDeviceLinked {
					fmt.Fprintf(e.stdout, "linked %s\n", sanitize(ev.Detail))
					return nil
				}
			case <-timer.C:
				return errors.New("the link code expired unused")
			case <-e.ctx.Done():
				return e.ctx.Err()
			}
		}
	})
}

func (e *env) cmdDeviceList(args []string) error {
	f := e.flags("device list")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		ds, err := devices(c).DeviceList(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(ds))
		}
		t := &table{}
		t.row("ID", "NAME", "FINGERPRINT", "GROUPS", "LAST SEEN")
		for _, d := range ds {
			name := sanitize(d.Name)
			if d.Self {
				name += " (this device)"
			}
			seen := "never"
			switch {
			case d.Revoked:
				seen = "revoked"
			case d.Online:
				seen = "now"
			case !d.LastSeen.IsZero():
				seen = e.time(d.LastSeen)
			}
			t.row(d.ID, name, d.Fingerprint, fmt.Sprint(d.Groups), seen)
		}
		t.write(e.stdout)
		return nil
	})
}

func (e *env) cmdDeviceRevoke(args []string) error {
	f := e.flags("device revoke")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		d, err := devices(c).DeviceRevoke(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(d)
		}
		fmt.Fprintf(e.stdout, "revoked %s (%s); its removal from your groups is requested\n", sanitize(d.Name), d.ID)
		return nil
	})
}

func (e *env) cmdBackupCreate(args []string) error {
	f := e.flags("backup create")
	passFile := f.String("passphrase-file", "", "")
	workFactor := f.Int("work-factor", 0, "") // tests only: scrypt log2(N)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	pass, err := e.readPassphrase("backup passphrase: ", *passFile, true)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		res, err := devices(c).BackupCreate(e.ctx, api.BackupRequest{Path: path, Passphrase: string(pass), WorkFactor: *workFactor})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s: %d messages in %d groups, %d devices\n", res.Path, res.Messages, res.Groups, res.Devices)
		return nil
	})
}

func (e *env) cmdBackupRestore(args []string) error {
	f := e.flags("backup restore")
	passFile := f.String("passphrase-file", "", "")
	device := f.String("device", "", "")
	keyFile := f.Bool("key-file", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if e.r.NewDaemon == nil {
		return errNoDaemonSupport
	}
	home, err := e.homeDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(home, "db")); err == nil {
		return fmt.Errorf("backup restore: %s already holds a device; restore into a fresh home (--home DIR)", home)
	}
	in, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	defer in.Close()
	pass, err := e.readPassphrase("backup passphrase: ", *passFile, false)
	if err != nil {
		return err
	}
	b, err := account.ReadBackup(in, string(pass))
	switch {
	case errors.Is(err, account.ErrWrongPassphrase):
		return errors.New("backup restore: wrong passphrase for this backup")
	case errors.Is(err, account.ErrDamagedBackup):
		return fmt.Errorf("backup restore: %s is damaged or not a grove backup (%s)", pos[0], strings.TrimPrefix(err.Error(), account.ErrDamagedBackup.Error()+": "))
	case err != nil:
		return fmt.Errorf("backup restore: %w", err)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	if err := restrictHome(home, e.stderr); err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	key, _, err := e.openStore(home, &keyChoice{keyFile: *keyFile})
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	d, err := e.r.NewDaemon(DaemonConfig{Home: home, Logger: e.logger(slog.LevelWarn), StoreKey: key, DeviceName: *device, Restore: b})
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	if err := d.Start(e.ctx); err != nil {
		d.Close()
		return fmt.Errorf("backup restore: %w", err)
	}
	st, err := d.Status(e.ctx)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	fmt.Fprintf(e.stdout, "restored %s in %s: %d messages of %d groups\n", sanitize(st.Name), home, len(b.Messages), len(b.Groups))
	if len(b.Groups) > 0 {
		fmt.Fprintf(e.stdout, "once the daemon runs, it gets back into the groups your account administers by itself; for the others, use grove device link on another of your devices, or an invite\n")
	}
	fmt.Fprintf(e.stdout, "start the daemon with: grove up --home %s\n", home)
	return nil
}

// printLinked prints what init --link showed: the account and the
// comparison string to check against the other device's.
func (e *env) printLinked(d Daemon) {
	l, ok := d.(interface{ LinkResult() (string, string) })
	if !ok {
		return
	}
	if acct, cmp := l.LinkResult(); cmp != "" {
		fmt.Fprintf(e.stdout, "linked to the account of %s; comparison %s (the other device shows the same)\n", sanitize(acct), cmp)
	}
	if h, ok := d.(interface{ LinkHistory() (int, error) }); ok {
		switch n, err := h.LinkHistory(); {
		case err != nil:
			fmt.Fprintf(e.stdout, "history not received: %v\n", err)
		case n == 1:
			fmt.Fprintf(e.stdout, "history: 1 message, shown once the groups are joined\n")
		case n > 1:
			fmt.Fprintf(e.stdout, "history: %d messages, shown once the groups are joined\n", n)
		}
	}
}

// linkProgress prints a linked device's history transfer ("catching up
// 12000/40000") on standard error, at most every 500 messages and at the
// end.
func (e *env) linkProgress() func(done, total int) {
	last := 0
	return func(done, total int) {
		if done-last >= 500 || done == total {
			last = done
			fmt.Fprintf(e.stderr, "catching up %d/%d\n", done, total)
		}
	}
}

// The served daemon passes the device API through when its daemon has it.
var _ api.Devices = (*servedDaemon)(nil)

func (s *servedDaemon) devices() (api.Devices, error) {
	d, ok := s.Daemon.(api.Devices)
	if !ok {
		return nil, api.Errorf(api.CodeUnavailable, "this daemon has no accounts")
	}
	return d, nil
}

func (s *servedDaemon) DeviceLink(ctx context.Context) (api.LinkCode, error) {
	d, err := s.devices()
	if err != nil {
		return api.LinkCode{}, err
	}
	return d.DeviceLink(ctx)
}

func (s *servedDaemon) DeviceList(ctx context.Context) ([]api.Device, error) {
	d, err := s.devices()
	if err != nil {
		return nil, err
	}
	return d.DeviceList(ctx)
}

func (s *servedDaemon) DeviceRevoke(ctx context.Context, device string) (api.Device, error) {
	d, err := s.devices()
	if err != nil {
		return api.Device{}, err
	}
	return d.DeviceRevoke(ctx, device)
}

func (s *servedDaemon) BackupCreate(ctx context.Context, req api.BackupRequest) (api.BackupResult, error) {
	d, err := s.devices()
	if err != nil {
		return api.BackupResult{}, err
	}
	return d.BackupCreate(ctx, req)
}
