package corpus_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
)

// filterTree is a repository-like corpus: issue 17.2 found .git/ and
// node_modules/ embedded, with no way to leave them out.
func filterTree(t *testing.T) string {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".git/HEAD":                  "ref: refs/heads/main",
		".git/config":                "[core]",
		"README.md":                  "readme",
		"docs/guide.md":              "guide",
		"docs/api/ref.md":            "ref",
		"docs/api/gen.log":           "log",
		"node_modules/pkg/index.js":  "js",
		"node_modules/pkg/README.md": "pkg readme",
		"src/main.go":                "package main",
		"src/vendor/x/x.go":          "package x",
		"src/.reembedignore":         "# generated\nvendor/\n*.tmp\n!keep.tmp\n",
		"src/a.tmp":                  "tmp",
		"src/keep.tmp":               "kept",
		"build/out/deep/report.md":   "report",
		"notes/.hg/store":            "hg",
	})
	return dir
}

func scanIDs(t *testing.T, dir string, f corpus.Filters) ([]string, *corpus.Stats) {
	t.Helper()
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{Filters: f}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return docIDs(docs), st
}

func TestFiltersDefault(t *testing.T) {
	dir := filterTree(t)
	got, st := scanIDs(t, dir, corpus.Filters{})
	want := []string{"README.md", "build/out/deep/report.md", "docs/api/gen.log", "docs/api/ref.md", "docs/guide.md",
		"node_modules/pkg/README.md", "node_modules/pkg/index.js", "src/keep.tmp", "src/main.go"}
	if !slices.Equal(got, want) {
		t.Errorf("default filters read %q,\nwant %q (no .git, .hg, .reembedignore rules applied)", got, want)
	}
	wantDefault := []string{filepath.Join(dir, ".git"), filepath.Join(dir, "notes", ".hg")}
	if !slices.Equal(st.DefaultExcluded, wantDefault) {
		t.Errorf("DefaultExcluded = %q, want %q (so the output can say so)", st.DefaultExcluded, wantDefault)
	}
	// .git, .hg, src/.reembedignore, src/vendor, src/a.tmp
	if st.Excluded != 5 || len(st.Skipped) != 0 {
		t.Errorf("Excluded = %d, skipped %v; want 5 and nothing listed as skipped", st.Excluded, st.Skipped)
	}

	all, _ := scanIDs(t, dir, corpus.Filters{NoDefaultExcludes: true, NoIgnoreFile: true})
	for _, id := range []string{".git/HEAD", "notes/.hg/store", "src/vendor/x/x.go", "src/a.tmp", "src/.reembedignore"} {
		if !slices.Contains(all, id) {
			t.Errorf("with no default excludes and no ignore file, %s was not read (%q)", id, all)
		}
	}
}

func TestFiltersExcludeInclude(t *testing.T) {
	dir := filterTree(t)
	for _, tc := range []struct {
		name string
		f    corpus.Filters
		want []string
	}{
		{"name at any depth", corpus.Filters{Exclude: []string{"node_modules", "*.log"}},
			[]string{"README.md", "build/out/deep/report.md", "docs/api/ref.md", "docs/guide.md", "src/keep.tmp", "src/main.go"}},
		{"double star", corpus.Filters{Exclude: []string{"build/**", "docs/**/*.md"}},
			[]string{"README.md", "docs/api/gen.log", "node_modules/pkg/README.md", "node_modules/pkg/index.js", "src/keep.tmp", "src/main.go"}},
		{"include only markdown", corpus.Filters{Include: []string{"*.md"}},
			[]string{"README.md", "build/out/deep/report.md", "docs/api/ref.md", "docs/guide.md", "node_modules/pkg/README.md"}},
		{"include anchored, exclude wins", corpus.Filters{Include: []string{"docs/**"}, Exclude: []string{"api/"}},
			[]string{"docs/guide.md"}},
		{"leading slash anchors", corpus.Filters{Exclude: []string{"/README.md"}, Include: []string{"**/README.md"}},
			[]string{"node_modules/pkg/README.md"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := scanIDs(t, dir, tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%+v read %q,\nwant %q", tc.f, got, tc.want)
			}
		})
	}
}

func TestFiltersBadPatternNamesField(t *testing.T) {
	_, err := corpus.Open([]string{t.TempDir()}, corpus.Options{Filters: corpus.Filters{Include: []string{"[a-"}}})
	if !errors.Is(err, corpus.ErrBadFilter) || !strings.Contains(err.Error(), `include pattern "[a-"`) {
		t.Errorf("err = %v, want ErrBadFilter naming the include pattern", err)
	}
}

func TestFiltersEqualAndString(t *testing.T) {
	a := corpus.Filters{Exclude: []string{"x"}}
	if !a.Equal(corpus.Filters{Exclude: []string{"x"}}) || a.Equal(corpus.Filters{}) || a.Equal(corpus.Filters{Exclude: []string{"x"}, NoIgnoreFile: true}) {
		t.Error("Equal is wrong")
	}
	if s := (corpus.Filters{}).String(); s != "default filters" {
		t.Errorf("String() = %q", s)
	}
}
