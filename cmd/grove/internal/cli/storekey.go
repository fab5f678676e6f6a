package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/charmbracelet/x/term"
	"github.com/zalando/go-keyring"

	"grove/store"
)

// The database is encrypted at rest with a random store key (see package
// store). Where the key is kept is chosen at init and recorded in
// HOME/store.key:
//
//   - with --passphrase (or --passphrase-file, GROVE_PASSPHRASE_FILE): the
//     key sealed under Argon2id of the passphrase, asked at every start;
//   - else in the OS keyring (Secret Service on Linux) when one runs;
//   - else in HOME/store.key itself, protected by its mode (0600) only:
//     init warns. Non-interactive setups (scripts, testnets, CI) get this.
//
// `grove passphrase change` reseals the same key under a new passphrase, so
// no database file is rewritten.

// StoreKeyFile is the name of the store key file in the home.
const StoreKeyFile = "store.key"

// keyringService is the service name of grove's keyring entries; the
// account is the home's absolute path, so each home has its own key.
const keyringService = "grove"

// Keyring is the OS keyring, a store of small secrets by service and
// account.
type Keyring interface {
	// Get returns the secret, errKeyringNoEntry, or an error wrapping
	// errKeyringUnavailable.
	Get(service, account string) (string, error)
	Set(service, account, secret string) error
	Delete(service, account string) error
}

var (
	errKeyringUnavailable = errors.New("no OS keyring is available")
	errKeyringNoEntry     = errors.New("no such keyring entry")
)

// systemKeyring is the Secret Service (Linux), Keychain (macOS) or
// Credential Manager (Windows), through go-keyring.
type systemKeyring struct{}

// available reports whether a keyring can be reached without side
// effects: on Linux, without a session bus, the D-Bus library would try to
// launch one.
func (systemKeyring) available() bool {
	if runtime.GOOS != "linux" {
		return true
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return true
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "bus")); err == nil {
			return true
		}
	}
	return false
}

func (k systemKeyring) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keyring.ErrNotFound):
		return errKeyringNoEntry
	}
	return fmt.Errorf("%w: %v", errKeyringUnavailable, err)
}

func (k systemKeyring) Get(service, account string) (string, error) {
	if !k.available() {
		return "", fmt.Errorf("%w (no D-Bus session)", errKeyringUnavailable)
	}
	s, err := keyring.Get(service, account)
	return s, k.wrap(err)
}

func (k systemKeyring) Set(service, account, secret string) error {
	if !k.available() {
		return fmt.Errorf("%w (no D-Bus session)", errKeyringUnavailable)
	}
	return k.wrap(keyring.Set(service, account, secret))
}

func (k systemKeyring) Delete(service, account string) error {
	if !k.available() {
		return fmt.Errorf("%w (no D-Bus session)", errKeyringUnavailable)
	}
	return k.wrap(keyring.Delete(service, account))
}

// NoKeyring is a Keyring that is never available: store keys go to key
// files. Tests use it to keep away from the desktop's keyring.
var NoKeyring Keyring = noKeyring{}

type noKeyring struct{}

func (noKeyring) Get(string, string) (string, error) { return "", errNoKeyring }
func (noKeyring) Set(string, string, string) error   { return errNoKeyring }
func (noKeyring) Delete(string, string) error        { return errNoKeyring }

var errNoKeyring = fmt.Errorf("%w (keyring turned off)", errKeyringUnavailable)

func (r *Runner) keyring() Keyring {
	if r.Keyring != nil {
		return r.Keyring
	}
	return systemKeyring{}
}

func (r *Runner) kdf() store.KDFParams {
	if r.testingOnlyKDF != nil {
		return *r.testingOnlyKDF
	}
	return store.DefaultKDF
}

// keyChoice is what the command line says about the store key.
type keyChoice struct {
	passphrase     bool   // init --passphrase: seal the new key under one
	keyFile        bool   // init --key-file: skip the keyring
	passphraseFile string // --passphrase-file, else $GROVE_PASSPHRASE_FILE
}

func (e *env) keyFlags(f *flags, forInit bool) *keyChoice {
	c := &keyChoice{}
	f.StringVar(&c.passphraseFile, "passphrase-file", "", "")
	if forInit {
		f.BoolVar(&c.passphrase, "passphrase", false, "")
		f.BoolVar(&c.keyFile, "key-file", false, "")
	}
	return c
}

func (c *keyChoice) file(e *env) string {
	if c.passphraseFile != "" {
		return c.passphraseFile
	}
	return e.r.getenv("GROVE_PASSPHRASE_FILE")
}

// storeKey returns the home's store key, unlocking it as the key file says.
// A home without a key file (a new one, or one from before encryption at
// rest) gets a new key, kept as c chooses; created is then its key file.
func (e *env) storeKey(home string, c *keyChoice) (key []byte, created *store.KeyFile, err error) {
	path := filepath.Join(home, StoreKeyFile)
	kf, err := store.ReadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A new key for an encrypted database would only lock it for good.
		enc, err := store.IsEncrypted(filepath.Join(home, "db"))
		if err != nil {
			return nil, nil, err
		}
		if enc {
			return nil, nil, fmt.Errorf("the database in %s is encrypted but its key file %s is missing; restore it from a backup", home, path)
		}
		return e.createStoreKey(home, c)
	}
	if err != nil {
		return nil, nil, keyFileError(path, err)
	}
	if c.passphrase || c.keyFile {
		return nil, nil, fmt.Errorf("this home already has a store key (kept by %v); to set a passphrase run: grove passphrase change", kf.Mode)
	}
	key, err = e.unlock(home, kf, c.file(e), "passphrase")
	return key, nil, err
}

func keyFileError(path string, err error) error {
	if errors.Is(err, store.ErrCorruptKeyFile) {
		return fmt.Errorf("the store key file %s is damaged; restore it from a backup (without it the database cannot be read)", path)
	}
	return fmt.Errorf("cannot read the store key file: %w", err)
}

// unlock returns the store key kf describes.
func (e *env) unlock(home string, kf *store.KeyFile, passFile, what string) ([]byte, error) {
	switch kf.Mode {
	case store.KeyInFile:
		return kf.Key, nil
	case store.KeyInKeyring:
		s, err := e.r.keyring().Get(keyringService, home)
		if errors.Is(err, errKeyringNoEntry) {
			return nil, fmt.Errorf("the store key of %s is not in the OS keyring (keyring entries are per home path: was the home moved or the entry deleted?)", home)
		}
		if err != nil {
			return nil, fmt.Errorf("the store key of %s is in the OS keyring, which cannot be reached: %v (unlock or start your keyring, then retry)", home, err)
		}
		key, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(key) != store.KeySize {
			return nil, fmt.Errorf("the store key of %s in the OS keyring is damaged", home)
		}
		return key, nil
	case store.KeyByPassphrase:
		pass, err := e.readPassphrase(what+" for "+home+": ", passFile, false)
		if err != nil {
			return nil, err
		}
		defer clear(pass)
		key, err := kf.Unseal(pass)
		if errors.Is(err, store.ErrWrongPassphrase) {
			return nil, errors.New("wrong passphrase")
		}
		return key, err
	}
	return nil, fmt.Errorf("unknown store key mode %v", kf.Mode)
}

func (e *env) createStoreKey(home string, c *keyChoice) ([]byte, *store.KeyFile, error) {
	key, err := store.NewStoreKey()
	if err != nil {
		return nil, nil, err
	}
	var kf *store.KeyFile
	inKeyring := false
	why := ""
	switch {
	case c.passphrase || c.file(e) != "":
		pass, err := e.readPassphrase("new passphrase for "+home+": ", c.file(e), true)
		if err != nil {
			return nil, nil, err
		}
		defer clear(pass)
		if kf, err = store.SealWithPassphrase(key, pass, e.r.kdf()); err != nil {
			return nil, nil, err
		}
	case !c.keyFile:
		err := e.r.keyring().Set(keyringService, home, base64.StdEncoding.EncodeToString(key))
		if err == nil {
			kf, inKeyring = &store.KeyFile{Mode: store.KeyInKeyring}, true
			break
		}
		why = err.Error() + ", so "
		fallthrough
	default:
		kf = &store.KeyFile{Mode: store.KeyInFile, Key: key}
	}
	if err := store.WriteKeyFile(filepath.Join(home, StoreKeyFile), kf); err != nil {
		if inKeyring {
			e.r.keyring().Delete(keyringService, home)
		}
		return nil, nil, err
	}
	if kf.Mode == store.KeyInFile {
		fmt.Fprintf(e.stderr, "grove: warning: %sthe database key is kept in %s: the data on disk is protected only by file permissions; set a passphrase with: grove passphrase change\n", why, filepath.Join(home, StoreKeyFile))
	}
	return key, kf, nil
}

// describeKey says in one line where a store key is kept.
func describeKey(home string, kf *store.KeyFile) string {
	switch kf.Mode {
	case store.KeyInKeyring:
		return "encrypted, key in the OS keyring"
	case store.KeyByPassphrase:
		return "encrypted, key sealed by your passphrase in " + filepath.Join(home, StoreKeyFile)
	}
	return "encrypted, key in " + filepath.Join(home, StoreKeyFile) + " (file permissions only)"
}

// maxPassphraseFile bounds how much of a passphrase file is read.
const maxPassphraseFile = 4096

// readPassphrase reads a passphrase from file (one line; a final newline is
// not part of it), else from the terminal, asking twice when confirm.
func (e *env) readPassphrase(prompt, file string, confirm bool) ([]byte, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the passphrase file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
		if err != nil {
			return nil, fmt.Errorf("cannot read the passphrase file: %w", err)
		}
		if len(b) > maxPassphraseFile {
			return nil, fmt.Errorf("the passphrase file %s is over %d bytes", file, maxPassphraseFile)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return nil, fmt.Errorf("the passphrase file %s is empty", file)
		}
		return b, nil
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(in.Fd()) {
		return nil, errors.New("a passphrase is needed: run this in a terminal, or give --passphrase-file FILE (or set GROVE_PASSPHRASE_FILE)")
	}
	fmt.Fprint(e.stderr, prompt)
	p, err := term.ReadPassword(in.Fd())
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprint(e.stderr, "again: ")
		again, err := term.ReadPassword(in.Fd())
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", err)
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passphrases do not match; nothing was changed")
		}
	}
	return p, nil
}

// openStore prepares the home's database for a daemon start: it unlocks
// (or creates) the store key and, once, encrypts a database written before
// encryption at rest.
func (e *env) openStore(home string, c *keyChoice) ([]byte, *store.KeyFile, error) {
	if e.r.testingOnlyPlaintext {
		return nil, nil, nil
	}
	key, created, err := e.storeKey(home, c)
	if err != nil {
		return nil, nil, err
	}
	migrated, err := store.EncryptDir(filepath.Join(home, "db"), key, e.logger(slog.LevelWarn))
	if errors.Is(err, store.ErrWrongKey) {
		return nil, nil, fmt.Errorf("the store key does not open the database in %s (was %s replaced, or the keyring entry?)", home, StoreKeyFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("encrypting the database: %w", err)
	}
	if migrated {
		fmt.Fprintf(e.stderr, "grove: the database in %s is now encrypted at rest (one-time conversion)\n", home)
	}
	return key, created, nil
}

func (e *env) cmdPassphraseChange(args []string) error {
	f := e.flags("passphrase change")
	c := e.keyFlags(f, false)
	newFile := f.String("new-passphrase-file", "", "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	home, err := e.homeDir()
	if err != nil {
		return err
	}
	path := filepath.Join(home, StoreKeyFile)
	kf, err := store.ReadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no store key yet (create one with: grove init --home %s --name NAME)", home, home)
	}
	if err != nil {
		return keyFileError(path, err)
	}
	key, err := e.unlock(home, kf, c.file(e), "current passphrase")
	if err != nil {
		return err
	}
	pass, err := e.readPassphrase("new passphrase: ", *newFile, true)
	if err != nil {
		return err
	}
	defer clear(pass)
	nkf, err := store.SealWithPassphrase(key, pass, e.r.kdf())
	if err != nil {
		return err
	}
	if err := store.WriteKeyFile(path, nkf); err != nil {
		return err
	}
	if kf.Mode == store.KeyInKeyring {
		if err := e.r.keyring().Delete(keyringService, home); err != nil {
			fmt.Fprintf(e.stderr, "grove: warning: the old copy of the key in the OS keyring was not removed: %v\n", err)
		}
	}
	fmt.Fprintf(e.stdout, "passphrase set: the store key is sealed by it in %s (the database was not rewritten)\n", path)
	return nil
}
