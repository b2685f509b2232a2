package checkpoint

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenRemovesOnlyOurTempFiles: files of the user's in --out whose names
// contain ".tmp" survive a resume; only temporary files reembed makes (and
// those of earlier versions) are removed, and their numbers are not reused.
func TestOpenRemovesOnlyOurTempFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4), PartRows: 2})
	must(t, w.Add(ctx, corpusRows(1, 2, 4)...))
	must(t, w.Close(ctx))
	user := []string{"page.tmpl", "notes.tmp.txt", "x.tmp", "part-000009.parquet.tmp-notes", "report.tmp-1", ".reembed-tmpl"}
	ours := []string{".reembed-tmp-part-000004.parquet-123456", "part-000003.parquet.tmp-99", "manifest.json.tmp-7"}
	for _, name := range append(slices.Clone(user), ours...) {
		must(t, os.WriteFile(filepath.Join(root, name), []byte("x"), 0o644))
	}
	w = openWriter(t, NewDir(root), Options{Manifest: testManifest(4), PartRows: 2})
	if got := sorted(w.Recovery().RemovedTemp); !slices.Equal(got, sorted(ours)) {
		t.Errorf("removed %v, want only %v", got, sorted(ours))
	}
	for _, name := range user {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("user file %s: %v", name, err)
		}
	}
	must(t, w.Add(ctx, makeRow("b", 0, 1, 4), makeRow("b", 1, 1, 4)))
	if _, err := os.Stat(filepath.Join(root, "part-000005.parquet")); err != nil {
		t.Errorf("next part after a removed part-000004 temp: %v", err)
	}
}

// TestCommitTempName: a commit's temporary file carries TempPrefix.
func TestCommitTempName(t *testing.T) {
	t.Parallel()
	d := NewDir(t.TempDir())
	var seen string
	create := d.ops.createTemp
	d.ops.createTemp = func(dir, pattern string) (*os.File, error) {
		f, err := create(dir, pattern)
		if f != nil {
			seen = filepath.Base(f.Name())
		}
		return f, err
	}
	must(t, d.Commit(context.Background(), "part-000001.parquet", func(io.Writer) error { return nil }))
	if !strings.HasPrefix(seen, TempPrefix+"part-000001.parquet-") || classify(seen).kind != kindTemp || classify(seen).number != 1 {
		t.Errorf("temporary name %q", seen)
	}
}
