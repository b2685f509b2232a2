package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDeepScanFindsDamageOutsideKeys damages a part's embedding pages: the
// key scan (resume) still reads it, a deep scan (verify --deep) reports it.
func TestDeepScanFindsDamageOutsideKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(256)})
	must(t, w.Add(ctx, corpusRows(4, 25, 256)...))
	must(t, w.Close(ctx))
	p := filepath.Join(root, "part-000001.parquet")
	b, err := os.ReadFile(p)
	must(t, err)
	// The embedding column chunk is the bulk of the file: zero 4 KB in the middle.
	mid := len(b) * 2 / 3
	clear(b[mid : mid+4096])
	must(t, os.WriteFile(p, b, 0o644))

	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	if len(ix.Unreadable()) != 0 || ix.Len() != 100 {
		t.Fatalf("key scan: %d keys, unreadable %v; want the keys read", ix.Len(), ix.Unreadable())
	}
	ix, err = Scan(ctx, NewDir(root), ScanOptions{Deep: true})
	must(t, err)
	if len(ix.Unreadable()) != 1 || ix.Len() != 0 {
		t.Errorf("deep scan: %d keys, unreadable %v; want the damaged part reported", ix.Len(), ix.Unreadable())
	}
}
