package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunReportsPassAndFail(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "deserialization.json")
	os.WriteFile(good, []byte(`[{"vlbytes_header":"25","length":37},{"vlbytes_header":"7bbd","length":15293}]`), 0o644)
	bad := filepath.Join(dir, "tree-math.json")
	os.WriteFile(bad, []byte(`[{"n_leaves":1,"n_nodes":2,"root":0,"left":[null],"right":[null],"parent":[null],"sibling":[null]}]`), 0o644)

	var out bytes.Buffer
	if err := run([]string{good}, &out); err != nil {
		t.Fatalf("good file: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "deserialization.json: 2 passed, 0 failed") || !strings.HasSuffix(out.String(), "2 passed, 0 failed\n") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}

	out.Reset()
	err := run([]string{good, bad}, &out)
	if !errors.Is(err, errFailed) {
		t.Fatalf("want failure, got %v", err)
	}
	if !strings.Contains(out.String(), "tree-math.json: 0 passed, 1 failed (first failure: case 0: n_nodes") {
		t.Fatalf("failure not reported:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "2 passed, 1 failed\n") {
		t.Fatalf("totals wrong:\n%s", out.String())
	}
}

func TestRunRejectsUnknownType(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no-such-kind.json")
	os.WriteFile(p, []byte(`[]`), 0o644)
	var out bytes.Buffer
	if err := run([]string{p}, &out); err == nil || !strings.Contains(out.String(), "unknown test-vector type") {
		t.Fatalf("unknown type accepted: %v\n%s", err, out.String())
	}
}
