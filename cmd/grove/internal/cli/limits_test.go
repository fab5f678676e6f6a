package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// TestMessageSizeLimit checks that the limit the CLI and the API state is
// the one that holds end to end: a message of exactly api.MaxTextBytes
// reaches the other member; one byte more is refused, with the limit named,
// by the CLI and by the daemon's API, and so is text that is not UTF-8.
func TestMessageSizeLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, true)

	longest := strings.Repeat("x", api.MaxTextBytes-2) + "é" // 2 bytes of UTF-8
	if _, errOut, err := alice.run(longest+"\n", "send", "ops", "-"); err != nil {
		t.Fatalf("send of %d bytes: %v %s", len(longest), err, errOut)
	}
	alice.ok("send", "ops", "after")
	waitUntil(t, 30*time.Second, "bob to receive the longest message", func() bool {
		texts := bob.logTexts("ops")
		return len(texts) == 2 && texts[0] == longest && texts[1] == "after"
	})

	tooLong := "grove: send: message of 60001 bytes is longer than the limit of 60000 bytes\n"
	if got := alice.fail("", "send", "ops", longest+"x"); got != tooLong {
		t.Errorf("argument of 60001 bytes: stderr %q, want %q", got, tooLong)
	}
	for _, n := range []int{api.MaxTextBytes + 1, 65508, 65536, 65537, 1 << 20} {
		got := alice.fail(strings.Repeat("y", n), "send", "ops", "-")
		if want := "grove: send: message longer than the limit of 60000 bytes\n"; got != want {
			t.Errorf("stdin of %d bytes: stderr %q, want %q", n, got, want)
		}
	}
	if got, want := alice.fail("ok\xff\xfe", "send", "ops", "-"), "grove: send: message is not UTF-8 text (send text, not binary data)\n"; got != want {
		t.Errorf("binary stdin: stderr %q, want %q", got, want)
	}

	// The daemon enforces the same limit for any client, with an
	// invalid-argument error rather than an internal one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := api.Dial(ctx, filepath.Join(alice.home, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{api.MaxTextBytes + 1, 65508, 65536, 65537} {
		_, err := c.Send(ctx, "ops", strings.Repeat("z", n))
		if !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "longer than the limit of 60000 bytes") {
			t.Errorf("API send of %d bytes: %v", n, err)
		}
	}
	if got := bob.logTexts("ops"); len(got) != 2 {
		t.Errorf("bob has %d messages after the refused ones, want 2", len(got))
	}
}
