package corpus_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
)

// BenchmarkScanCSV reads a 20,000-row CSV (quoted text fields) with no work
// per document: the cost of the CSV reader itself.
func BenchmarkScanCSV(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	sb.WriteString("id,text\n")
	for i := range 20000 {
		fmt.Fprintf(&sb, "%d,\"row %d: alpha bravo \"\"charlie\"\" delta echo foxtrot golf hotel india juliet kilo lima\"\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		src, err := corpus.Open([]string{dir}, corpus.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		_, err = corpus.Scan(b.Context(), src, 1, func(d corpus.Document) (int, error) { return len(d.Text), nil },
			func(int) error { n++; return nil })
		src.Close()
		if err != nil || n != 20000 {
			b.Fatalf("%d documents, %v", n, err)
		}
	}
}
