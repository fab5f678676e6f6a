package chat

import "testing"

func TestCleanReplacesHiddenCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"victim\u200b": "victim\uFFFD", "\u202eevil": "\uFFFDevil", "\ufeffbob": "\uFFFDbob", "Zoë 李雷": "Zoë 李雷",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
