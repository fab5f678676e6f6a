package mlsvectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorDir locates the official test vectors: $MLS_TEST_VECTORS, else
// ../shared/mls-vectors beside the module root. Without them the test skips,
// except under CI=true, where missing vectors fail the run.
func vectorDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("MLS_TEST_VECTORS"); d != "" {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("MLS_TEST_VECTORS=%s: %v", d, err)
		}
		return d
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("module root not found")
		}
		dir = up
	}
	d := filepath.Join(dir, "..", "shared", "mls-vectors")
	if _, err := os.Stat(d); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("official MLS test vectors not found at %s and MLS_TEST_VECTORS unset (required under CI=true)", d)
		}
		t.Skipf("official MLS test vectors not found at %s; set MLS_TEST_VECTORS to run them", d)
	}
	return d
}

func TestOfficialVectors(t *testing.T) {
	dir := vectorDir(t)
	for _, kind := range VectorKinds() {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(dir, kind+".json")
			data, err := os.ReadFile(path)
			if err != nil {
				// psk_secret.json is named with an underscore upstream.
				alt := filepath.Join(dir, underscored(kind)+".json")
				if data, err = os.ReadFile(alt); err != nil {
					if optionalVectorKinds[kind] {
						t.Skipf("no %s vectors in %s", kind, dir)
					}
					t.Fatalf("vector file for %s: %v", kind, err)
				}
			}
			rep, err := VerifyVectors(kind, data)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Failures {
				t.Error(f)
			}
			if rep.Passed == 0 {
				t.Fatalf("%s: no cases passed", kind)
			}
			t.Logf("%s: %d passed, %d failed", kind, rep.Passed, rep.Failed)
		})
	}
}

// optionalVectorKinds are supported formats that the official set does not
// always ship (passive-client-random is generated per run upstream).
var optionalVectorKinds = map[string]bool{"passive-client-random": true}

func underscored(kind string) string {
	b := []byte(kind)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// TestPassiveClientRandomFormat runs the passive-client-random verifier,
// which shares the passive-client format, on cases of the official
// handling-commit file (the random file is generated per run upstream and
// not shipped here).
func TestPassiveClientRandomFormat(t *testing.T) {
	dir := vectorDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "passive-client-handling-commit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	subset, _ := json.Marshal(cases[:4])
	rep, err := VerifyVectors("passive-client-random", subset)
	if err != nil || rep.Failed != 0 || rep.Passed != 4 {
		t.Fatalf("%+v %v", rep, err)
	}
	// A corrupted epoch authenticator is caught.
	bad := strings.Replace(string(subset), `"epoch_authenticator":"`, `"epoch_authenticator":"00`, 1)
	if rep, err := VerifyVectors("passive-client-random", []byte(bad)); err != nil || rep.Failed == 0 {
		t.Fatalf("corrupted vector passed: %+v %v", rep, err)
	}
}
