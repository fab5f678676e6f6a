package cli

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
)

func TestDedupHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newDedupHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	peerLog := log.With("peer", "12D3KooWbob")
	for range 5 {
		peerLog.Info("dial failed", "err", "connection refused")
	}
	log.Info("dial failed", "err", "connection refused") // another logger's attrs: another line
	for range 3 {
		log.Warn("disk nearly full")
	}
	log.Info("grove up")
	log.Info("grove up", "n", 2)
	// The time is left out of the comparison.
	got := regexp.MustCompile(`time=\S+ `).ReplaceAllString(buf.String(), "")
	want := "" +
		"level=INFO msg=\"dial failed\" peer=12D3KooWbob err=\"connection refused\"\n" +
		"level=INFO msg=\"dial failed\" peer=12D3KooWbob err=\"connection refused\" repeated=4\n" +
		"level=INFO msg=\"dial failed\" err=\"connection refused\"\n" +
		"level=WARN msg=\"disk nearly full\"\n" +
		"level=WARN msg=\"disk nearly full\"\n" +
		"level=WARN msg=\"disk nearly full\"\n" +
		"level=INFO msg=\"grove up\"\n" +
		"level=INFO msg=\"grove up\" n=2\n"
	if got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}
