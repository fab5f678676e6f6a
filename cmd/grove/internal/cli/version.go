package cli

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// VersionInfo is what `grove version` reports: the build of this binary
// (which may differ from the running daemon's; status shows that one).
type VersionInfo struct {
	Module    string `json:"module"`             // module version, "(devel)" for a source build
	Commit    string `json:"commit,omitempty"`   // VCS revision
	Time      string `json:"time,omitempty"`     // commit time, RFC 3339
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string `json:"go"`
}

// buildVersion reads the version stamped into the binary by the Go
// toolchain.
func buildVersion(read func() (*debug.BuildInfo, bool)) VersionInfo {
	bi, ok := read()
	if !ok {
		return VersionInfo{Module: "unknown", GoVersion: "unknown"}
	}
	v := VersionInfo{Module: bi.Main.Version, GoVersion: bi.GoVersion}
	if v.Module == "" {
		v.Module = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v VersionInfo) String() string {
	parts := []string{"grove " + v.Module}
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if v.Modified {
			c += "+modified"
		}
		parts = append(parts, "commit "+c)
	}
	if v.Time != "" {
		parts = append(parts, v.Time)
	}
	parts = append(parts, v.GoVersion)
	return strings.Join(parts, " ")
}

func (e *env) cmdVersion(args []string) error {
	f := e.flags("version")
	asJSON := f.Bool("json", false, "")
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	read := debug.ReadBuildInfo
	if e.r.testingOnlyBuildInfo != nil {
		read = e.r.testingOnlyBuildInfo
	}
	v := buildVersion(read)
	if *asJSON {
		return e.json(v)
	}
	fmt.Fprintln(e.stdout, v)
	return nil
}
