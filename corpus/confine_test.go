package corpus_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/reembed/reembed/corpus"
)

func TestResolvePath(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "in"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "in", "a.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("s"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("in", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(root)
	roots := []string{real}
	for _, tc := range []struct {
		path string
		want string // relative to root; "" = error
		err  error
	}{
		{"in", "in", nil},
		{"in/a.txt", "in/a.txt", nil},
		{".", ".", nil},
		{"alias/a.txt", "in/a.txt", nil},
		{filepath.Join(real, "in"), "in", nil},
		{"..", "", corpus.ErrOutsideRoot},
		{"in/../../outside", "", corpus.ErrOutsideRoot},
		{"escape/secret.txt", "", corpus.ErrOutsideRoot},
		{"escape", "", corpus.ErrOutsideRoot},
		{outside, "", corpus.ErrOutsideRoot},
		{"/etc/passwd", "", corpus.ErrOutsideRoot},
		{"missing", "", fs.ErrNotExist},
	} {
		got, err := corpus.ResolvePath(roots, tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ResolvePath(%q) = %q, %v; want %v", tc.path, got, err, tc.err)
			}
			continue
		}
		if want := filepath.Join(real, tc.want); err != nil || got != want {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", tc.path, got, err, want)
		}
	}
}
