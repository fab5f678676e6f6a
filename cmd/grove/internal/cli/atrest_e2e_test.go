package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/store"
)

// TestHomeOnDiskHoldsNoPlaintext is the end-to-end proof of encryption at
// rest: a real daemon (init with a passphrase, up, a group, messages) and a
// scan of every file under its home, WAL included, while it runs and after
// it stops, for the device and group names, the message texts and the
// store key. The same run with encryption off finds them, so the scan can
// fail.
func TestHomeOnDiskHoldsNoPlaintext(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon; skipped with -short")
	}
	for _, encrypt := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			mark := func(p string) string {
				b := make([]byte, 8)
				rand.Read(b)
				return p + hex.EncodeToString(b)
			}
			name, group := mark("dev"), mark("grp")
			texts := []string{"hello " + mark("msg") + " world", mark("secret")}
			pass := writePass(t, "correct horse")
			d := &device{t: t, name: name, home: filepath.Join(shortTempDir(t), "h"),
				runner: &Runner{NewDaemon: fastDaemon, Getenv: func(string) string { return "" }, Location: time.UTC,
					Keyring: &fakeKeyring{unavailable: true}, testingOnlyKDF: &fastKDF, testingOnlyPlaintext: !encrypt, testingOnlyDefaultGUI: "off"}}
			d.ok("init", "--name", name, "--passphrase-file", pass)
			d.upInProcess("--passphrase-file", pass)
			d.ok("group", "create", group)
			for _, m := range texts {
				d.ok("send", group, m)
			}
			waitUntil(t, 30*time.Second, "the messages in the log", func() bool {
				return strings.Join(d.logTexts(group), "|") == strings.Join(texts, "|")
			})
			// texts[0][6:25] is the message's unique word ("msg" and 16 hex
			// digits) alone: in a clear home, sstables are Snappy-compressed,
			// and a later copy of the word (the view after the index, or the
			// reverse) is stored as a back-reference, so a marker that also
			// spans the next word may exist nowhere contiguously once the WAL
			// is gone (CI saw it after a stop); the word's first occurrence
			// in a block is always stored literally.
			markers := [][]byte{[]byte(name), []byte(group), []byte(texts[0][6:25]), []byte(texts[1])}
			if encrypt {
				kf := readKeyFile(t, d.home)
				key, err := kf.Unseal([]byte("correct horse"))
				if err != nil {
					t.Fatal(err)
				}
				markers = append(markers, key)
			}
			scan := func(when string) {
				t.Helper()
				var found []int
				for i, m := range markers {
					if homeHolds(t, d.home, m) {
						found = append(found, i)
					}
				}
				if encrypt && len(found) != 0 {
					t.Errorf("%s: markers %v in the clear on disk", when, found)
				}
				if !encrypt && len(found) != len(markers) {
					t.Errorf("%s: clear home shows only markers %v of %d: the scan proves nothing", when, found, len(markers))
				}
			}
			scan("running")
			d.stop()
			scan("stopped")
			if encrypt {
				if _, err := store.Open(store.Options{Dir: filepath.Join(d.home, "db")}); err == nil {
					t.Fatal("the database opens without its key")
				}
			}
		})
	}
}
