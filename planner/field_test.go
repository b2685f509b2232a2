package planner

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// cliText renders err as the CLI does: fields as --kebab-case flags. The
// tests of Validate check the CLI's words through it.
func cliText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return RenderErrors(err, cliFlag)
}

// cliFlag names a field as the CLI's flag does (cmd/reembed's flagName,
// without its exceptions).
func cliFlag(f string) string { return "--" + strings.ReplaceAll(f, "_", "-") }

func TestFieldErrorRendering(t *testing.T) {
	err := errors.Join(
		fieldErrorf("chunk_overlap", "{chunk_overlap} %d must be less than {chunk_tokens} %d", 64, 64),
		NewFieldError("paths", &fs.PathError{Op: "open", Path: "a{b}", Err: fs.ErrNotExist}),
	)
	fes := FieldErrors(err)
	if len(fes) != 2 || fes[0].Field != "chunk_overlap" || fes[1].Field != "paths" {
		t.Fatalf("FieldErrors = %v", fes)
	}
	if got, want := cliText(err), "--chunk-overlap 64 must be less than --chunk-tokens 64\n--paths: open a(b): file does not exist"; got != want {
		t.Errorf("CLI text %q, want %q", got, want)
	}
	if got, want := fes[0].Error(), "chunk_overlap 64 must be less than chunk_tokens 64"; got != want {
		t.Errorf("Error() %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("the cause is lost")
	}
	// No message of a Validate names a CLI flag: the words are the fields'.
	spec := RebuildSpec{Dimensions: -1, PartRows: -1, ChunkOverlap: 5}
	if msg := spec.Validate().Error(); strings.Contains(msg, "--") {
		t.Errorf("Validate names a flag: %s", msg)
	}
}
