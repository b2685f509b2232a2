package corpus_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/reembed/reembed/corpus"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstded(t *testing.T, s string) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll([]byte(s), nil)
}

// A bzip2 stream of "bzip2 text\n" (made with bzip2 -9; Go has no writer).
var bzipped = []byte{
	0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x1c, 0x85,
	0xbd, 0x64, 0x00, 0x00, 0x01, 0xd9, 0x80, 0x00, 0x10, 0x40, 0x00, 0x10,
	0x00, 0x12, 0x20, 0x44, 0x50, 0x20, 0x00, 0x22, 0x99, 0xa1, 0xa7, 0xa8,
	0x40, 0x0c, 0x1a, 0x69, 0x1a, 0x30, 0xe1, 0x77, 0x24, 0x53, 0x85, 0x09,
	0x01, 0xc8, 0x5b, 0xd6, 0x40,
}

func writeBytes(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 17.3: a directory of gzipped man pages gave 0 documents: every .gz was
// "binary".
func TestCompressedFilesAreReadByContent(t *testing.T) {
	dir := t.TempDir()
	writeBytes(t, dir, map[string][]byte{
		"man1/ls.1.gz":      gzipped(t, ".TH LS 1\nlist directory contents\n"),
		"records.jsonl.zst": zstded(t, `{"id":"a","text":"zstd record"}`+"\n"),
		"page.html.gz":      gzipped(t, "<html><body><p>from html</p></body></html>"),
		"misnamed.txt":      gzipped(t, "gzip without .gz"),
		"notes.bz2":         bzipped,
		"plain.gz":          []byte("not compressed at all"),
	})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"man1/ls.1.gz", "misnamed.txt", "notes.bz2", "page.html.gz", "plain.gz", "records.jsonl.zst#a"}
	if got := docIDs(docs); !slices.Equal(got, want) || len(st.Skipped) != 0 {
		t.Fatalf("documents %q, skipped %v; want %q and none skipped", got, st.Skipped, want)
	}
	for id, text := range map[string]string{
		"man1/ls.1.gz": ".TH LS 1\nlist directory contents\n", "records.jsonl.zst#a": "zstd record",
		"misnamed.txt": "gzip without .gz", "notes.bz2": "bzip2 text\n", "plain.gz": "not compressed at all",
	} {
		if got := docText(t, docs, id); got != text {
			t.Errorf("%s = %q, want %q", id, got, text)
		}
	}
	if got := docText(t, docs, "page.html.gz"); strings.Contains(got, "<p>") || !strings.Contains(got, "from html") {
		t.Errorf("page.html.gz = %q, want its HTML text extracted", got)
	}
}

func TestDecompressionBombIsCapped(t *testing.T) {
	dir := t.TempDir()
	bomb := gzipped(t, strings.Repeat("a", 1<<20)) // 1 MiB from about 1 KB
	writeBytes(t, dir, map[string][]byte{"bomb.txt.gz": bomb, "ok.gz": gzipped(t, "small"),
		"rows.jsonl.gz": gzipped(t, `{"text":"r1"}`+"\n"+`{"text":"`+strings.Repeat("b", 1<<20)+`"}`+"\n")})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{MaxDecompressedBytes: 64 << 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := docIDs(docs); !slices.Equal(got, []string{"ok.gz", "rows.jsonl.gz#L1"}) {
		t.Errorf("documents %q, want ok.gz and the record before the cap", got)
	}
	reasons := map[string]string{}
	for _, s := range st.Skipped {
		reasons[filepath.Base(s.Path)] = s.Reason
	}
	for _, name := range []string{"bomb.txt.gz", "rows.jsonl.gz"} {
		if !strings.Contains(reasons[name], "exceeds the limit of 64 KiB") {
			t.Errorf("%s: skip reason %q, want the decompressed-size limit named", name, reasons[name])
		}
	}
	if corpus.DefaultMaxDecompressedBytes != 1<<30 {
		t.Errorf("DefaultMaxDecompressedBytes = %d, documented as 1 GiB", corpus.DefaultMaxDecompressedBytes)
	}
}

func TestCorruptCompressedFileIsSkipped(t *testing.T) {
	dir := t.TempDir()
	gz := gzipped(t, strings.Repeat("truncated text ", 1000))
	writeBytes(t, dir, map[string][]byte{"cut.gz": gz[:len(gz)/2]})
	_, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Skipped) != 1 || !strings.Contains(st.Skipped[0].Reason, "corrupt gzip") {
		t.Errorf("skipped %v, want cut.gz as corrupt gzip data", st.Skipped)
	}
}
