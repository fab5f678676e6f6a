package cli

import (
	"fmt"
	"io"
	"os"
)

// restrictHome makes the grove home owner-only (0700): it holds the device's
// keys, its database and the control socket. A home created by an older
// version or by hand may be readable by other users; say so and fix it.
func restrictHome(home string, stderr io.Writer) error {
	info, err := os.Stat(home)
	if err != nil {
		return err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		fmt.Fprintf(stderr, "grove: warning: %s was open to other users (mode %#o), restricting it to 0700\n", home, perm)
		if err := os.Chmod(home, 0o700); err != nil {
			return fmt.Errorf("cannot restrict %s to its owner: %w", home, err)
		}
	}
	return nil
}
