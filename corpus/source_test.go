package corpus_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
)

func TestWalkOrderIsByteSorted(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"b.txt": "b", "a.txt": "a", "A.txt": "A", "a b.txt": "ab", "go.mod": "m", "go/x.txt": "x",
		"go-y.txt": "y", "z/y/x.txt": "zyx", "z/a.txt": "za", "é.txt": "e", "_.txt": "u", "10.txt": "10", "9.txt": "9",
	})
	want := []string{"10.txt", "9.txt", "A.txt", "_.txt", "a b.txt", "a.txt", "b.txt", "go-y.txt", "go.mod", "go/x.txt", "z/a.txt", "z/y/x.txt", "é.txt"}
	if !slices.IsSorted(want) {
		t.Fatalf("test's want is not byte-sorted: %q", want)
	}
	for _, jobs := range []int{1, 3} {
		docs, _, err := readCorpus(t, []string{dir}, corpus.Options{}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if got := docIDs(docs); !slices.Equal(got, want) {
			t.Errorf("jobs=%d: order %q, want %q", jobs, got, want)
		}
	}
}

func TestSymlinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeTree(t, base, map[string]string{"outside/secret.txt": "secret", "root/in.txt": "inside", "root/sub/deep.txt": "deep"})
	links := map[string]string{
		"root/escape-rel.txt":  "../outside/secret.txt",
		"root/escape-abs.txt":  filepath.Join(base, "outside", "secret.txt"),
		"root/link.txt":        "in.txt",
		"root/sub/up.txt":      "../in.txt",
		"root/dirlink":         "sub",
		"root/dirlink-outside": "../outside",
		"root/broken.txt":      "missing.txt",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(base, filepath.FromSlash(l))); err != nil {
			t.Skipf("symlinks not supported: %v", err)
		}
	}
	docs, st, err := readCorpus(t, []string{root}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("LinkInsideRootIsRead", func(t *testing.T) {
		if got := docText(t, docs, "link.txt"); got != "inside" {
			t.Errorf("link.txt = %q, want the target's text", got)
		}
		if got := docText(t, docs, "sub/up.txt"); got != "inside" {
			t.Errorf("sub/up.txt = %q, want the target's text", got)
		}
	})
	t.Run("OnlyRealFilesAndInsideLinksRead", func(t *testing.T) {
		want := []string{"in.txt", "link.txt", "sub/deep.txt", "sub/up.txt"}
		if got := docIDs(docs); !slices.Equal(got, want) {
			t.Errorf("documents %q, want %q", got, want)
		}
		for _, d := range docs {
			if strings.Contains(string(d.Text), "secret") {
				t.Errorf("%s read a file outside the root", d.ID)
			}
		}
	})
	reasons := map[string]string{}
	for _, s := range st.Skipped {
		rel, _ := filepath.Rel(root, s.Path)
		reasons[filepath.ToSlash(rel)] = s.Reason
	}
	for _, tt := range []struct{ name, path, reason string }{
		{"RelativeLinkOutOfRootSkipped", "escape-rel.txt", "symlink points outside the corpus root"},
		{"AbsoluteLinkOutOfRootSkipped", "escape-abs.txt", "symlink points outside the corpus root"},
		{"SymlinkedDirNotFollowed", "dirlink", "symlinked directory not followed"},
		{"SymlinkedDirOutsideNotFollowed", "dirlink-outside", "outside the corpus root"},
		{"BrokenLinkSkipped", "broken.txt", "broken symlink"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := reasons[tt.path]; !ok || !strings.Contains(got, tt.reason) {
				t.Errorf("skip reason for %s = %q (listed %v), want %q; all skips %v", tt.path, got, ok, tt.reason, st.Skipped)
			}
		})
	}
	if len(st.Skipped) != 5 {
		t.Errorf("skipped %v, want 5 entries", st.Skipped)
	}
}

func TestBinaryAndUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	late := strings.Repeat("x", 8<<10) + "\x00tail"
	writeTree(t, dir, map[string]string{
		"a.txt":         "text",
		"bin.dat":       "head\x00rest",
		"image.html":    "<p>\x00</p>",
		"late-nul.txt":  late,
		"records.jsonl": "{\"text\":\"a\"}\n\x00\n",
	})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("NULInFirst8KBSkippedAsBinary", func(t *testing.T) {
		want := []corpus.Skip{
			{Path: filepath.Join(dir, "bin.dat"), Reason: "binary file (a NUL byte in the first 8 KB)"},
			{Path: filepath.Join(dir, "image.html"), Reason: "binary file (a NUL byte in the first 8 KB)"},
			{Path: filepath.Join(dir, "records.jsonl"), Reason: "binary file (a NUL byte in the first 8 KB)"},
		}
		if !slices.Equal(st.Skipped, want) {
			t.Errorf("skipped %v, want %v", st.Skipped, want)
		}
	})
	t.Run("NULAfter8KBIsText", func(t *testing.T) {
		if got := docText(t, docs, "late-nul.txt"); got != late {
			t.Errorf("late-nul.txt read as %d bytes, want %d", len(got), len(late))
		}
	})
	t.Run("StrictMakesSkipAnError", func(t *testing.T) {
		_, _, err := readCorpus(t, []string{dir}, corpus.Options{Strict: true}, 2)
		if !errors.Is(err, corpus.ErrSkipped) || !strings.Contains(err.Error(), "bin.dat") || !strings.Contains(err.Error(), "binary") {
			t.Errorf("err = %v, want ErrSkipped naming bin.dat and the reason", err)
		}
	})
	t.Run("UnreadableSkipped", func(t *testing.T) {
		p := filepath.Join(dir, "secret.txt")
		writeTree(t, dir, map[string]string{"secret.txt": "no"})
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(p, 0o644) })
		if _, err := os.ReadFile(p); err == nil {
			t.Skip("a mode 000 file is readable here (running as root)")
		}
		docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(docIDs(docs), "secret.txt") {
			t.Errorf("secret.txt was read")
		}
		found := false
		for _, s := range st.Skipped {
			if s.Path == p && strings.Contains(s.Reason, "permission denied") {
				found = true
			}
		}
		if !found {
			t.Errorf("skipped %v, want %s with permission denied", st.Skipped, p)
		}
		_, _, err = readCorpus(t, []string{dir}, corpus.Options{Strict: true}, 2)
		if !errors.Is(err, corpus.ErrSkipped) {
			t.Errorf("strict: err = %v, want ErrSkipped", err)
		}
	})
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"one.txt": "one", "two/2.txt": "two", "x.md": "# md"})
	t.Run("MissingPathNamed", func(t *testing.T) {
		missing := filepath.Join(dir, "nope")
		_, err := corpus.Open([]string{dir, missing}, corpus.Options{})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want not-exist naming %s", err, missing)
		}
	})
	t.Run("NoPathIsError", func(t *testing.T) {
		if _, err := corpus.Open(nil, corpus.Options{}); err == nil {
			t.Error("Open(nil) succeeded")
		}
	})
	t.Run("SingleFileIsItsOwnDocument", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{filepath.Join(dir, "two", "2.txt")}, corpus.Options{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docIDs(docs); !slices.Equal(got, []string{"2.txt"}) {
			t.Errorf("documents %q, want [2.txt]", got)
		}
	})
	t.Run("RootsReadInGivenOrder", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{filepath.Join(dir, "x.md"), filepath.Join(dir, "two")}, corpus.Options{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := docIDs(docs); !slices.Equal(got, []string{"x.md", "2.txt"}) {
			t.Errorf("documents %q, want [x.md 2.txt]: each root's IDs are relative to that root", got)
		}
	})
	t.Run("RootsWithTheSameNameAreRefused", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "two")
		if err := os.MkdirAll(other, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := corpus.Open([]string{filepath.Join(dir, "two"), other}, corpus.Options{})
		if !errors.Is(err, corpus.ErrCorpusPath) {
			t.Fatalf("Open of two roots named \"two\" = %v, want ErrCorpusPath", err)
		}
	})
	t.Run("MarkdownIsPlainText", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{filepath.Join(dir, "x.md")}, corpus.Options{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docText(t, docs, "x.md"); got != "# md" {
			t.Errorf("x.md = %q, want its bytes", got)
		}
	})
}
