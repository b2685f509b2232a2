package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/pricing"
)

// sampleSetup extracts the bundled sample corpus into a temp dir and returns
// its root, the tokenizer and text-embedding-3-small, as the subprocess tests
// use them.
func sampleSetup(t *testing.T) (string, tokenizer.Tokenizer, pricing.Model) {
	t.Helper()
	root, err := sample.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := pricing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	model, err := cat.Lookup("text-embedding-3-small")
	if err != nil {
		t.Fatal(err)
	}
	return root, tok, model
}

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
