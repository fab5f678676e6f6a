// Command mlsvectors verifies official MLS interoperability test-vector
// files (mlswg/mls-implementations) against Grove's mls package (through grove/mls/mlsvectors).
//
//	go run ./cmd/mlsvectors FILE...
//
// The vector type comes from each file's name (secret-tree.json is of type
// secret-tree). It prints one line per file, "NAME: N passed, M failed" with
// the first failure's reason, and as its last line the totals. The exit
// status is 1 if any case failed or a file is of an unknown type.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"grove/mls/mlsvectors"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mlsvectors: %v\n", err)
		os.Exit(1)
	}
}

var errFailed = errors.New("vector verification failed")

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: mlsvectors FILE... (supported types: %s)", strings.Join(mlsvectors.VectorKinds(), ", "))
	}
	var passed, failed int
	bad := false
	for _, path := range args {
		name := filepath.Base(path)
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stdout, "%s: error: %v\n", name, err)
			bad = true
			continue
		}
		rep, err := mlsvectors.VerifyVectors(mlsvectors.VectorKindFromPath(path), data)
		if err != nil {
			fmt.Fprintf(stdout, "%s: error: %v\n", name, err)
			bad = true
			continue
		}
		passed += rep.Passed
		failed += rep.Failed
		line := fmt.Sprintf("%s: %d passed, %d failed", name, rep.Passed, rep.Failed)
		if rep.FirstFailure != nil {
			line += fmt.Sprintf(" (first failure: %v)", rep.FirstFailure)
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if bad || failed > 0 {
		return errFailed
	}
	return nil
}
