package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"grove/account"
	"grove/node/api"
	"grove/store"
)

// Daemon is what `grove init` and `grove up` run: a device that serves the
// local API. The real one is *node.Node; tests substitute their own.
type Daemon interface {
	api.Service
	// Start opens the device's store and network.
	Start(ctx context.Context) error
	// Close stops everything Start started.
	Close() error
	// Metrics returns the counters exported to Prometheus.
	Metrics() []Metric
}

// DaemonConfig is what the CLI passes to a DaemonFactory.
type DaemonConfig struct {
	Home      string
	Name      string   // set by init; empty for up (the device remembers it)
	Listen    []string // multiaddrs; empty means none (init) or the defaults (up)
	Bootstrap []string
	MDNS      bool
	Logger    *slog.Logger
	// StoreKey encrypts the device's database at rest (store.Options.Key);
	// nil keeps it in the clear.
	StoreKey []byte
	// DeviceName, Link and Restore: set by init --device/--link and
	// backup restore (node.Config has their meaning).
	DeviceName   string
	Link         string
	LinkProgress func(done, total int)
	Restore      *account.Backup
}

// DaemonFactory creates a Daemon that is not yet started.
type DaemonFactory func(cfg DaemonConfig) (Daemon, error)

// Metric is one Prometheus sample.
type Metric struct {
	Name  string  // e.g. grove_messages_in_total
	Help  string  // one line
	Type  string  // counter or gauge
	Value float64 // the sample
}

// DefaultListen are the addresses `grove up` listens on without --listen:
// every interface, ports chosen by the system at the first start (so that
// several daemons can run on one machine) and kept for later starts
// (ListenFile). Invite codes carry the actual addresses.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// Runner runs grove commands. Its zero value uses the process environment
// and has no daemon; Run uses the real daemon.
type Runner struct {
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
	// NewDaemon creates the daemon for init and up. Nil means this build
	// cannot run a daemon; init and up then fail.
	NewDaemon DaemonFactory
	// Location is the time zone of human output. Default time.Local.
	Location *time.Location
	// Now is the clock for relative times such as --since 24h. Default
	// time.Now.
	Now func() time.Time
	// Ready, if set, is called by up once the local API serves.
	Ready func(socket string)

	// Keyring is the OS keyring that may keep the store key. Nil means
	// the system's (Secret Service, Keychain, Credential Manager).
	Keyring Keyring
	// Notifier shows the daemon's desktop notifications. Nil means the
	// desktop's (notify.go), if it has one.
	Notifier Notifier

	// testingOnlyPlaintext keeps the database in the clear (the control
	// case of the disk scan tests).
	testingOnlyPlaintext bool
	// testingOnlyKDF replaces store.DefaultKDF (tests derive keys fast).
	testingOnlyKDF *store.KDFParams
	// testingOnlyDefaultListen replaces DefaultListen (tests listen on
	// loopback only).
	testingOnlyDefaultListen []string
	// testingOnlyBuildInfo replaces debug.ReadBuildInfo (test binaries
	// carry no VCS stamp).
	testingOnlyBuildInfo func() (*debug.BuildInfo, bool)
	// testingOnlyDetachEnv is added to the environment of the daemon up
	// --detach starts (the test binary runs as grove with it).
	testingOnlyDetachEnv []string
	// testingOnlyExecutable replaces os.Executable in service unit files.
	testingOnlyExecutable string
	// testingOnlyDefaultGUI replaces web.DefaultAddr as up's --gui default
	// (tests use "off", or port 0).
	testingOnlyDefaultGUI string
	// testingOnlyOpenURL replaces opening a browser in grove gui.
	testingOnlyOpenURL func(url string) error
}

// ExitCode maps Run's error to a process exit status: 0 for nil, 2 for
// usage errors, 1 for everything else.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(*usageError)):
		return 2
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errNoDaemon is returned when a command needs a running daemon.
type errNoDaemon struct{ home string }

func (e *errNoDaemon) Error() string {
	return fmt.Sprintf("daemon not running (start it with: grove up --home %s)", e.home)
}

// errNoHome is returned when the home directory does not exist: the
// device must be created before anything else.
func errNoHome(home string) error {
	return fmt.Errorf("no grove home at %s (create one with: grove init --home %s --name NAME)", home, home)
}

// errInterrupted replaces "context canceled" when the user interrupted a
// command (Ctrl-C cancels Run's context).
var errInterrupted = errors.New("interrupted")

// errHelp is returned by flag parsing for -h; help was printed, exit 0.
var errHelp = flag.ErrHelp

// env is the state of one Run.
type env struct {
	r      *Runner
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	home   string
}

// Run executes one grove command line (without the program name). Errors
// are printed to stderr as one line, "grove: …", and returned.
func (r *Runner) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{r: r, ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	err := e.run(args)
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = errInterrupted
	}
	if err != nil && !errors.Is(err, errHelp) {
		err = e.userError(err)
		fmt.Fprintf(stderr, "grove: %s\n", oneLine(err))
		return err
	}
	return nil
}

// oneLine formats err as a single line without a final period.
func oneLine(err error) string {
	var noDaemon *errNoDaemon
	if errors.As(err, &noDaemon) {
		return noDaemon.Error()
	}
	s := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	s = strings.TrimSuffix(s, ".")
	return sanitize(s)
}

func (r *Runner) getenv(k string) string {
	if r.Getenv != nil {
		return r.Getenv(k)
	}
	return os.Getenv(k)
}

func (r *Runner) loc() *time.Location {
	if r.Location != nil {
		return r.Location
	}
	return time.Local
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// defaultHome is $GROVE_HOME, else $XDG_DATA_HOME/grove, else
// ~/.local/share/grove (the XDG default).
func (r *Runner) defaultHome() string {
	if h := r.getenv("GROVE_HOME"); h != "" {
		return h
	}
	if x := r.getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "grove")
	}
	if h := r.getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "grove")
	}
	return ""
}

// command is one grove command.
type command struct {
	name    string // possibly two words: "group create"
	args    string // synopsis of the arguments
	summary string
	run     func(e *env, args []string) error
	detail  string // more for `grove help NAME`
}

var commands []command

func init() {
	commands = []command{
		{"init", "--name NAME | --link CODE [--device NAME] [--passphrase | --passphrase-file FILE | --key-file]", "create this device's identity in the home directory", (*env).cmdInit, `
--device NAME names this device within your account (default "device").
--link CODE makes this device another device of the account that printed
CODE (grove device link there): both screens show the same comparison
string; the device then joins the account's groups when the daemon runs.

The database is encrypted at rest with a random key, kept:
  --passphrase            sealed by a passphrase (asked twice; asked again at
                          every start of the daemon)
  --passphrase-file FILE  the same, the passphrase read from FILE (or
                          $GROVE_PASSPHRASE_FILE), for services
  --key-file              in DIR/store.key, protected by its file mode only
Without these, the key goes to the OS keyring when one is running, else to
DIR/store.key (with a warning).`},
		{"up", "[--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--mdns] [--metrics ADDR] [--gui ADDR|off] [--detach] [--notify=false]", "run the daemon", (*env).cmdUp, `
  --listen MULTIADDR     listen on MULTIADDR (repeatable); default
                         /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1,
                         with the ports chosen at the first start kept in
                         DIR/listen for later starts
  --bootstrap MULTIADDR  a /p2p/ address of a DHT bootstrap peer (repeatable);
                         none by default: invite codes carry addresses
  --mdns                 discover peers on the local network
  --metrics ADDR         serve Prometheus metrics on http://ADDR/metrics;
                         loopback addresses only, e.g. 127.0.0.1:9464
  --gui ADDR|off         serve the web client on http://ADDR (loopback only;
                         default 127.0.0.1:7768, skipped with a warning when
                         that port is taken); grove gui signs a browser in
  --detach               run in the background: logs go to DIR/grove.log; up
                         returns once the daemon serves and prints its pid
  --notify=false         no desktop notifications (also GROVE_NOTIFY=off);
                         by default a message mentioning you (@NAME) or
                         replying to you, in a group you have not muted,
                         shows one, through the
                         desktop's notification service (D-Bus, notify-send
                         or osascript) when there is one
  --passphrase-file FILE read the store key's passphrase from FILE (also
                         GROVE_PASSPHRASE_FILE); with --detach and neither,
                         up asks on the terminal and hands it to the daemon

The local API listens on a Unix socket (mode 0600): in $XDG_RUNTIME_DIR,
named after the home, where the session has one; else DIR/grove.sock.
Stop with Ctrl-C, SIGTERM or grove down.`},
		{"down", "[--timeout DURATION] [--json]", "stop the daemon and wait until it has exited", (*env).cmdDown, `
Asks the daemon through its API to stop, then waits (default 30s) until
its process has exited and its socket is gone. Succeeds, saying so, when
no daemon runs.`},
		{"service", "install|uninstall|show", "run the daemon as a systemd user service", (*env).cmdService, `
install writes ~/.config/systemd/user/grove.service (or under
$XDG_CONFIG_HOME), which runs grove up for DIR with this grove binary and
restarts it after a crash; enable it with systemctl --user enable --now
grove. uninstall removes that file; show prints it.`},
		{"passphrase change", "[--passphrase-file FILE] [--new-passphrase-file FILE]", "set or change the passphrase sealing the database key", (*env).cmdPassphraseChange, `
Asks for the current passphrase (if there is one) and the new one twice;
--passphrase-file and --new-passphrase-file read them from files instead.
The key itself does not change, so no data is rewritten. A key kept in the
OS keyring or in a key file is moved under the passphrase.`},
		{"status", "[--json]", "show this device", (*env).cmdStatus, ""},
		{"chat", "[GROUP]", "open the full-screen chat client", (*env).cmdChat, `
GROUP (name or id) opens first; default the first group. Type /help inside
for commands and keys; Ctrl-C quits. Needs a terminal and a running daemon.`},
		{"gui", "[--no-open] [--json]", "sign a browser in to the web client", (*env).cmdGUI, `
Prints a one-time sign-in link to the web client that grove up serves
(--gui) and opens it in the browser when there is a display. The link
works once, for two minutes; the browser session ends when the browser
closes or the daemon stops.`},
		{"group create", "NAME [--json]", "create a group with you as its admin", (*env).cmdGroupCreate, ""},
		{"group list", "[--json]", "list your groups", (*env).cmdGroupList, `
UNREAD counts messages from others since the group was last read (grove
log or the chat client); REACH is how many of the other members this device
is connected to now; STATE is ok, catching up, removed (this device was
removed: the history stays readable until you leave) or rejoin needed. A
group with no member reachable is named below the table, with how many of
your messages wait to be sent.`},
		{"group promote", "GROUP MEMBER [--timeout DURATION] [--json]", "make MEMBER an admin of GROUP (admins only)", (*env).cmdGroupPromote, `
Every member's device agrees on the change: it waits like remove.`},
		{"group demote", "GROUP MEMBER [--timeout DURATION] [--json]", "take the admin role from MEMBER (admins only)", (*env).cmdGroupDemote, `
A group keeps at least one admin: demoting the last one is refused.
Waits like remove.`},
		{"group rename", "GROUP NAME [--timeout DURATION] [--json]", "rename GROUP for every member (admins only)", (*env).cmdGroupRename, `
Every member sees the new name; a member that already has another group
of that name sees this one as "NAME (2)". Waits like remove.`},
		{"group mute", "GROUP [--json]", "show no notifications for GROUP on this device", (*env).cmdGroupMute, `
Unread messages are still counted (group list).`},
		{"group unmute", "GROUP [--json]", "show notifications for GROUP again", (*env).cmdGroupUnmute, ""},
		{"invite list", "[--json]", "list the invite codes you issued that can still be used", (*env).cmdInviteList, ""},
		{"invite revoke", "ID [--json]", "make an invite code unusable (ID from invite list)", (*env).cmdInviteRevoke, ""},
		{"invite", "GROUP [--expires DURATION] [--uses N] [--json]", "print an invite code for GROUP", (*env).cmdInvite, `
The code is valid for --expires (default 24h, at most 720h) and lets --uses
devices join (default 1, at most 1000). A group named list or revoke is
invited with: grove invite -- NAME.
Any member may invite. If you are not an admin, your device asks the
group's admins to add the joiner, so an admin's daemon must be running.`},
		{"join", "CODE [--timeout DURATION] [--json]", "join a group with an invite code", (*env).cmdJoin, `
CODE - reads the code from standard input (so that it stays out of the
shell history; a code copied where it wrapped may span lines).
Waits until the inviter's device welcomes this one, or until --timeout
(default 5m). How long that takes:
  - inviter is an admin: about two minutes (the change that adds you must
    become final everywhere before the welcome is sent);
  - inviter is not an admin: the same, once an admin's device is online
    to commit the change (progress says when none is);
  - inviter's device unreachable: fails once none of its addresses
    answers, saying so.
After a timeout, run join again with the same code. Progress goes to
standard error.`},
		{"send", "GROUP TEXT [--reply ID] [--file PATH] [--json]", "send TEXT to GROUP (TEXT - reads standard input)", (*env).cmdSend, `
Prints nothing when a member is reachable. With no member reachable the
message is queued and goes out once one is: send then prints "queued: no
member reachable". --json prints the message, with "queued":true then.
TEXT is UTF-8 text of at most 60000 bytes.
  --reply ID   reply to the message ID (as log --json shows it, or its
               first digits)
  --file PATH  send the file at PATH (at most 100 MiB; TEXT optional)`},
		{"react", "GROUP ID EMOJI [--remove] [--json]", "react to a message with an emoji", (*env).cmdReact, ""},
		{"edit", "GROUP ID TEXT [--json]", "replace the text of one of your messages", (*env).cmdEdit, ""},
		{"delete", "GROUP ID [--json]", "delete a message for everyone (yours, or any as an admin)", (*env).cmdDelete, `
Its text is purged from every member's device; the others see that a
message was deleted.`},
		{"files", "GROUP [--json]", "list the files sent in GROUP", (*env).cmdFiles, ""},
		{"save", "GROUP FILE-ID PATH [--json]", "fetch a file and write it to PATH", (*env).cmdSave, `
Fetches the chunks this device lacks from the members that hold them and
checks the file's hash before writing it.`},
		{"receipts", "on|off", "send read receipts from this device, or stop", (*env).cmdReceipts, ""},
		{"log", "GROUP [--json] [--limit N] [--follow]", "show the newest messages of GROUP and mark it read", (*env).cmdLog, `
--follow (-f) keeps printing new messages as they arrive, until Ctrl-C;
with --json it prints one JSON object per message and line.`},
		{"watch", "[--json]", "print new messages and events of every group as they arrive", (*env).cmdWatch, `
Prints messages and what a person notices (members joining and leaving,
settled forks, losing and regaining every member) until Ctrl-C. --json
prints every event, one JSON object per line, in the api.Event format.`},
		{"search", "QUERY [--group GROUP] [--from MEMBER] [--since TIME] [--until TIME] [--json]", "search the history on this device", (*env).cmdSearch, `
Only messages from MEMBER (a display name or peer id), at or after --since
and before --until. TIME is as for export: an RFC 3339 time, a date
(YYYY-MM-DD, local midnight) or a duration back from now (24h).`},
		{"members", "GROUP [--json]", "list the members of GROUP with their fingerprints", (*env).cmdMembers, ""},
		{"remove", "GROUP MEMBER [--timeout DURATION] [--json]", "remove MEMBER from GROUP (admins only)", (*env).cmdRemove, `
Waits until the group has confirmed the removal, or until --timeout
(default 30s; 0 does not wait), and says which epoch carried it or what it
still waits for. The removal stays requested after a timeout.`},
		{"rotate", "GROUP [--timeout DURATION] [--json]", "update your keys in GROUP", (*env).cmdRotate, `
Waits like remove, then prints the epoch that carries your new keys.`},
		{"leave", "GROUP [--json]", "leave GROUP and delete it from this device", (*env).cmdLeave, `
If you are the group's last admin, the admin role passes first to the
longest-standing remaining member; leave fails, changing nothing, if that
cannot be done (no other member reachable).`},
		{"peers", "[--json]", "list connected peers and how each is connected", (*env).cmdPeers, `
DIRECTION is outbound when this device dialled, inbound when the peer did;
TRANSPORT is tcp, quic or relay (through a relay peer).`},
		{"connect", "MULTIADDR [--json]", "connect to a peer by address", (*env).cmdConnect, `
MULTIADDR ends in /p2p/PEER_ID, e.g. /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…
(grove status on the other device lists its addresses). For peers that
invite codes and discovery do not find; the address is used for this
daemon's lifetime.`},
		{"export", "GROUP [--since TIME]", "write the history of GROUP as JSON lines", (*env).cmdExport, `
TIME is an RFC 3339 time, a date (YYYY-MM-DD, local midnight) or a duration
back from now (24h). One JSON object per message, oldest first.`},
		{"device link", "[--no-wait] [--json]", "print a one-time code that links a new device to your account", (*env).cmdDeviceLink, deviceLinkHelp},
		{"device list", "[--json]", "list the devices of your account", (*env).cmdDeviceList, ""},
		{"device revoke", "DEVICE [--json]", "revoke a lost device of your account everywhere", (*env).cmdDeviceRevoke, deviceRevokeHelp},
		{"group settings", "GROUP [--history-for-new-members 30d|off] [--timeout DURATION] [--json]", "show or change GROUP's settings (admins only)", (*env).cmdGroupSettings, groupSettingsHelp},
		{"account rotate", "[--json]", "replace your account key when it may have leaked", (*env).cmdAccountRotate, accountRotateHelp},
		{"backup create", "FILE [--passphrase-file FILE]", "write an encrypted backup of your account and history", (*env).cmdBackupCreate, backupCreateHelp},
		{"backup restore", "FILE [--passphrase-file FILE] [--device NAME] [--key-file]", "make this fresh home a device of a backed-up account", (*env).cmdBackupRestore, backupRestoreHelp},
		{"testnet", "run|demo [FLAGS]", "run many local nodes through a scenario (see grove testnet help)", (*env).cmdTestnet, ""},
		{"version", "[--json]", "show the version of this grove binary", (*env).cmdVersion, ""},
		{"help", "[COMMAND]", "show help", (*env).cmdHelp, ""},
	}
}

func (e *env) run(args []string) error {
	global := flag.NewFlagSet("grove", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	home := global.String("home", "", "")
	version := global.Bool("version", false, "")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.usage(e.stdout)
			return errHelp
		}
		return usagef("%v", err)
	}
	e.home = *home
	args = global.Args()
	if *version {
		return e.cmdVersion(args)
	}
	if len(args) == 0 {
		e.usage(e.stderr)
		return usagef("no command (see grove help)")
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		if args[0] == "group" {
			return usagef("unknown group command %q (want create, list, promote, demote, rename, settings, mute or unmute)", strings.Join(args[1:], " "))
		}
		if args[0] == "passphrase" {
			return usagef("unknown passphrase command %q (want change)", strings.Join(args[1:], " "))
		}
		return usagef("unknown command %q (see grove help)", args[0])
	}
	return cmd.run(e, rest)
}

// lookup finds the command named by the first one or two words of args.
func lookup(args []string) (command, []string, bool) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func (e *env) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: grove [--home DIR] COMMAND [ARGS]")
	fmt.Fprintln(w)
	// Synopses longer than the column get the summary on a line of its own,
	// so that the listing stays within 80 columns.
	const col = 40
	for _, c := range commands {
		syn := "  " + c.name + " " + c.args
		if len(syn) > col {
			fmt.Fprintf(w, "%s\n%*s%s\n", syn, col+2, "", c.summary)
		} else {
			fmt.Fprintf(w, "%-*s  %s\n", col, syn, c.summary)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "DIR defaults to $GROVE_HOME, else $XDG_DATA_HOME/grove, else ~/.local/share/grove.")
	fmt.Fprintln(w, "GROUP is a group name or id; MEMBER a name, peer id or fingerprint prefix.")
	fmt.Fprintln(w, "The daemon logs at info level; GROVE_LOG=debug (or warn, error) changes that.")
}

func (e *env) cmdHelp(args []string) error {
	if len(args) == 0 {
		e.usage(e.stdout)
		return nil
	}
	c, _, ok := lookup(args)
	if !ok {
		return usagef("unknown command %q", strings.Join(args, " "))
	}
	fmt.Fprintf(e.stdout, "usage: grove [--home DIR] %s %s\n\n%s\n%s", c.name, c.args, c.summary, detailText(c))
	return nil
}

func detailText(c command) string {
	if c.detail == "" {
		return ""
	}
	return c.detail + "\n"
}

// flags is a command's flag set; every command also accepts --home, so it
// may come after the command name too.
type flags struct {
	*flag.FlagSet
	e    *env
	name string
	home string
}

func (e *env) flags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &flags{FlagSet: fs, e: e, name: name}
	fs.StringVar(&f.home, "home", "", "")
	return f
}

// parse parses args, allowing flags before and after positional arguments
// (a "--" ends the flags), and checks the number of positional arguments.
func (f *flags) parse(args []string, minPos, maxPos int) ([]string, error) {
	var pos []string
	for {
		// Find an explicit "--" ourselves: flag.Parse consumes it silently.
		if len(args) > 0 && args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c, _, _ := lookup(strings.Fields(f.name))
				fmt.Fprintf(f.e.stdout, "usage: grove [--home DIR] %s %s\n\n%s\n%s", c.name, c.args, c.summary, detailText(c))
				return nil, errHelp
			}
			return nil, usagef("%s: %v", f.name, err)
		}
		rest := f.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if f.home != "" {
		f.e.home = f.home
	}
	if len(pos) < minPos || len(pos) > maxPos {
		c, _, _ := lookup(strings.Fields(f.name))
		return nil, usagef("usage: grove %s %s", c.name, c.args)
	}
	return pos, nil
}

// homeDir returns the home directory in use, as an absolute path.
func (e *env) homeDir() (string, error) {
	h := e.home
	if h == "" {
		h = e.r.defaultHome()
	}
	if h == "" {
		return "", errors.New("no home directory: set --home, $GROVE_HOME or $HOME")
	}
	abs, err := filepath.Abs(h)
	if err != nil {
		return "", fmt.Errorf("home directory: %w", err)
	}
	return abs, nil
}

// SocketName is the local API socket's file name in the home directory.
const SocketName = "grove.sock"

// dial connects to the daemon of the home directory.
func (e *env) dial() (*api.Client, error) {
	home, err := e.homeDir()
	if err != nil {
		return nil, err
	}
	c, err := api.Dial(e.ctx, e.socketPath(home))
	if err != nil {
		if errors.Is(err, api.ErrDaemonNotRunning) {
			if _, serr := os.Stat(home); errors.Is(serr, os.ErrNotExist) {
				return nil, errNoHome(home)
			}
			return nil, &errNoDaemon{home: home}
		}
		return nil, err
	}
	return c, nil
}

// withClient runs fn with a connection to the daemon.
func (e *env) withClient(fn func(c *api.Client) error) error {
	c, err := e.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}
