package corpus_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/reembed/reembed/corpus"
)

// Issue 14.5: adding a second corpus root used to rename every document of
// the first ("1.5.0.txt" became "docs/1.5.0.txt"), so a checkpoint of the
// first root was re-priced and re-embedded in full.
func TestRootKeepsItsIDsWhenRootsAreAdded(t *testing.T) {
	base := t.TempDir()
	docs, more := filepath.Join(base, "docs"), filepath.Join(base, "more")
	writeTree(t, docs, map[string]string{"1.5.0.txt": "release notes", "guide/a.md": "guide", "same.txt": "first"})
	writeTree(t, more, map[string]string{"b.txt": "more", "same.txt": "second"})

	alone, _, err := readCorpus(t, []string{docs}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	both, _, err := readCorpus(t, []string{docs, more}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	aloneIDs := docIDs(alone)
	if !slices.Equal(aloneIDs, []string{"1.5.0.txt", "guide/a.md", "same.txt"}) {
		t.Fatalf("one root: %q", aloneIDs)
	}
	if got := docIDs(both)[:3]; !slices.Equal(got, aloneIDs) {
		t.Errorf("with a second root the first root's IDs are %q, want them unchanged %q", got, aloneIDs)
	}
	want := []string{"b.txt", "more//same.txt"}
	if got := docIDs(both)[3:]; !slices.Equal(got, want) {
		t.Errorf("second root's IDs = %q, want %q (a path the first root also holds is named root//path)", got, want)
	}
	if got := docText(t, both, "more//same.txt"); got != "second" {
		t.Errorf("more//same.txt = %q, want the second root's file", got)
	}
	// The second root alone keeps plain IDs too.
	moreAlone, _, err := readCorpus(t, []string{more}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := docIDs(moreAlone); !slices.Equal(got, []string{"b.txt", "same.txt"}) {
		t.Errorf("second root alone: %q", got)
	}
}

func TestOverlappingRootsAreRefused(t *testing.T) {
	base := t.TempDir()
	writeTree(t, base, map[string]string{"docs/sub/a.txt": "a"})
	for _, paths := range [][]string{
		{filepath.Join(base, "docs"), filepath.Join(base, "docs", "sub")},
		{filepath.Join(base, "docs", "sub", "a.txt"), filepath.Join(base, "docs")},
		{filepath.Join(base, "docs"), filepath.Join(base, "docs") + string(os.PathSeparator)},
	} {
		_, err := corpus.Open(paths, corpus.Options{})
		if !errors.Is(err, corpus.ErrCorpusPath) {
			t.Errorf("Open(%q) = %v, want ErrCorpusPath (documents would be read twice)", paths, err)
		}
	}
}

func TestCanonicalRoot(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"docs/a.txt": "a"})
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "docs"), link); err != nil {
		t.Skip("no symlinks:", err)
	}
	want, err := corpus.CanonicalRoot(filepath.Join(dir, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, filepath.Join(dir, "docs", ".."), filepath.Join(dir, "docs") + "/"} {
		got, err := corpus.CanonicalRoot(p)
		if err != nil {
			t.Fatal(err)
		}
		if p != filepath.Join(dir, "docs", "..") && got != want {
			t.Errorf("CanonicalRoot(%q) = %q, want %q", p, got, want)
		}
		if !filepath.IsAbs(got) {
			t.Errorf("CanonicalRoot(%q) = %q, not absolute", p, got)
		}
	}
}
