package store

import (
	"fmt"
	"os"
	"testing"
)

// benchTB lets the shared benchmark index be built outside any one
// benchmark; it panics on failure (benchmarks only).
type benchTB struct{ testing.TB }

func (benchTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func tempDir() (string, error) { return os.MkdirTemp("", "grove-store-bench-") }
