package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// socketPath is where the daemon of home serves the local API. Where the
// session has a runtime directory ($XDG_RUNTIME_DIR: owned by the user,
// 0700, on tmpfs and emptied at logout) the socket lives there, named
// after the home, so that a socket left by a crash never outlives the
// session, the home can sit on a filesystem without sockets (a network
// mount), and the path stays under the 108 bytes a socket address allows
// however deep the home is. Without one, or when it is not a private
// directory of ours, the socket is SocketName in the home.
func (e *env) socketPath(home string) string {
	if dir := e.r.getenv("XDG_RUNTIME_DIR"); privateRuntimeDir(dir) {
		abs, err := filepath.Abs(home)
		if err == nil {
			sum := sha256.Sum256([]byte(filepath.Clean(abs)))
			return filepath.Join(dir, "grove-"+hex.EncodeToString(sum[:8])+".sock")
		}
	}
	return filepath.Join(home, SocketName)
}

// privateRuntimeDir reports whether dir is an absolute path to a
// directory only its owner, this user, may enter.
func privateRuntimeDir(dir string) bool {
	if dir == "" || !filepath.IsAbs(dir) {
		return false
	}
	info, err := os.Stat(dir)
	if err != nil || !info.IsDir() || info.Mode().Perm()&0o077 != 0 {
		return false
	}
	return ownedByMe(info)
}
