package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestDockerfileBuildsStaticBinary runs the Dockerfile's own `go build` line
// (no docker needed) and checks that the binary is static and runs
// `reembed version` in an empty environment, as in a distroless image; and
// that the image is multi-stage and runs as non-root.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary with the Dockerfile's flags (about 2 CPU-minutes on a cold cache)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; the static ELF check needs a linux build")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	last := df[strings.LastIndex(df, "\nFROM "):]
	if !regexp.MustCompile(`(?m)^FROM (gcr.io/distroless/static\S*|scratch)`).MatchString(strings.TrimSpace(last)) {
		t.Errorf("final stage is not distroless/static or scratch:\n%s", last)
	}
	if !regexp.MustCompile(`(?m)^USER (nonroot|65532)`).MatchString(last) || strings.Contains(last, "\nRUN ") {
		t.Errorf("final stage must run as non-root and need no shell (no RUN):\n%s", last)
	}
	m := regexp.MustCompile(`(?m)^RUN (.*go build .*)$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("no `RUN ... go build` line in the Dockerfile")
	}
	line := strings.ReplaceAll(m[1], "${VERSION}", "v9.9.9-test")
	envs, args := parseShellWords(t, line)
	if envs["CGO_ENABLED"] != "0" {
		t.Errorf("the build line does not set CGO_ENABLED=0: %s", line)
	}
	out := filepath.Join(t.TempDir(), "reembed")
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = out
		}
	}
	if args[0] != "go" || args[1] != "build" {
		t.Fatalf("build line %q does not start with go build", line)
	}
	cmd := exec.Command(goBin, args[1:]...)
	cmd.Dir = "../.." // the Dockerfile's WORKDIR holds the repository
	cmd.Env = os.Environ()
	for k, v := range envs {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	run := exec.Command(out, "version")
	run.Env = []string{}
	run.Dir = t.TempDir()
	got, err := run.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(got), "reembed v9.9.9-test ") {
		t.Errorf("reembed version in an empty environment: %v, %q; want the -X stamped v9.9.9-test", err, got)
	}
}

// parseShellWords splits a Dockerfile RUN line into leading VAR=value
// assignments and the words of the command (double quotes group words).
func parseShellWords(t *testing.T, line string) (map[string]string, []string) {
	t.Helper()
	var words []string
	for _, m := range regexp.MustCompile(`"([^"]*)"|(\S+)`).FindAllStringSubmatch(line, -1) {
		if m[2] != "" {
			words = append(words, m[2])
		} else {
			words = append(words, m[1])
		}
	}
	envs := map[string]string{}
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		envs[k] = v
		words = words[1:]
	}
	return envs, words
}
