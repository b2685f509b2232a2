package corpus_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
)

// tokensDir is the project's copy of shared/testdata/tokens: 154 files and the
// official tokenizer's cl100k_base counts (see its README.md).
const tokensDir = "../testdata/tokens"

// loadReferenceCounts reads counts.tsv: path relative to corpus/, tokens.
func loadReferenceCounts(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(tokensDir, "counts.tsv"))
	if err != nil {
		t.Fatalf("opening counts.tsv: %v", err)
	}
	defer f.Close()
	want := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 || fields[0] == "path" {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			t.Fatalf("counts.tsv row %q: %v", sc.Text(), err)
		}
		want[fields[0]] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading counts.tsv: %v", err)
	}
	if len(want) != 154 {
		t.Fatalf("counts.tsv has %d rows, want 154", len(want))
	}
	return want
}

// TestReferenceCountsExact counts every reference file the way reembed does
// (bytes -> ToValidUTF8 -> tokenizer.Default) and expects the official count
// exactly, for all 154 files, including the two of code points new since
// Unicode 15.0 (the default tokenizer carries Unicode 16.0 tables).
func TestReferenceCountsExact(t *testing.T) {
	want := loadReferenceCounts(t)
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	for rel, wantTokens := range want {
		t.Run(rel, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(tokensDir, "corpus", filepath.FromSlash(rel)))
			if err != nil {
				t.Fatal(err)
			}
			text, _ := corpus.ToValidUTF8(raw)
			if got := tok.Count(text); got != wantTokens {
				t.Errorf("tokens = %d, want %d (official count)", got, wantTokens)
			}
		})
	}
}

// TestReferenceCountsThroughScan reads the reference corpus as a corpus
// (plain text, every file one document) and expects each document's token
// count, and the document IDs, to match counts.tsv.
func TestReferenceCountsThroughScan(t *testing.T) {
	want := loadReferenceCounts(t)
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	src, err := corpus.Open([]string{filepath.Join(tokensDir, "corpus")}, corpus.Options{PlainText: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	type res struct {
		id     string
		tokens int
	}
	got := map[string]int{}
	var order []string
	st, err := corpus.Scan(t.Context(), src, 2,
		func(d corpus.Document) (res, error) { return res{d.ID, tok.Count(d.Text)}, nil },
		func(r res) error { got[r.id] = r.tokens; order = append(order, r.id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Seven reference files hold a NUL byte in their first 8 KB: the reader
	// skips them as binary and says so; every other file is read.
	binary := map[string]bool{
		"go/src/archive/tar/testdata/ustar.tar":                                     true,
		"go/src/compress/bzip2/testdata/pass-random1.bin":                           true,
		"go/src/crypto/x509/testdata/nist-pkits/certs/MappingToanyPolicyCACert.crt": true,
		"go/src/image/png/testdata/pngsuite/basn2c08.png":                           true,
		"tricky/control-chars.txt":                                                  true,
		"tricky/utf16le-bom.txt":                                                    true,
		"tricky/utf8-all-bytes.bin":                                                 true,
	}
	if st.Documents != int64(len(want)-len(binary)) {
		t.Errorf("scan read %d documents, want %d", st.Documents, len(want)-len(binary))
	}
	skipped := map[string]string{}
	for _, s := range st.Skipped {
		rel, _ := filepath.Rel(filepath.Join(tokensDir, "corpus"), s.Path)
		skipped[filepath.ToSlash(rel)] = s.Reason
	}
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case binary[rel]:
			if ok || !strings.Contains(skipped[rel], "binary") {
				t.Errorf("%s: read %v, skip reason %q; want skipped as binary", rel, ok, skipped[rel])
			}
		case !ok:
			t.Errorf("%s: not read (skip reason %q)", rel, skipped[rel])
		case g != w:
			t.Errorf("%s: tokens = %d, want %d", rel, g, w)
		}
	}
	if len(skipped) != len(binary) {
		t.Errorf("skipped %v, want only the %d binary files", st.Skipped, len(binary))
	}
	// counts.tsv is sorted by byte order, as the walk is.
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("walk order: %q before %q, want byte order", order[i-1], order[i])
		}
	}
	if st.InvalidUTF8Documents == 0 || len(st.InvalidUTF8Examples) == 0 {
		t.Errorf("InvalidUTF8Documents = %d, examples %v; the tricky files hold invalid UTF-8", st.InvalidUTF8Documents, st.InvalidUTF8Examples)
	}
}
