package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builtBinary is the reembed binary the subprocess tests run, built once per
// test process (without -race, so that the children run at full speed).
var builtBinary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary.path != "" {
		os.RemoveAll(filepath.Dir(builtBinary.path))
	}
	os.Exit(code)
}

// buildReembed returns the path of the reembed binary, building it on first
// use. It skips the test when the go command is not on PATH.
func buildReembed(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the reembed binary for the subprocess tests")
	}
	builtBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "reembed-test-bin-")
		if err != nil {
			builtBinary.err = err
			return
		}
		builtBinary.path = filepath.Join(dir, "reembed")
		builtBinary.out, builtBinary.err = exec.Command(goBin, "build", "-o", builtBinary.path, ".").CombinedOutput()
	})
	if builtBinary.err != nil {
		t.Fatalf("go build: %v\n%s", builtBinary.err, builtBinary.out)
	}
	return builtBinary.path
}
