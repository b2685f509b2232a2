package corpus_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
)

// Issue 14.8: a CSV with an unterminated quote silently merged the rows after
// it into one record, even with --strict (2 documents instead of 6).
func TestCSVUnterminatedQuoteIsReportedNotMerged(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"r.csv": "id,text\n" +
		"1,one\n" +
		"2,\"broken quote never closes\n" +
		"3,three\n" +
		"4,four\n" +
		"5,\"multi\nline\"\n" +
		"6,six\n"})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"r.csv#1", "r.csv#3", "r.csv#4", "r.csv#5", "r.csv#6"}
	if got := docIDs(docs); !slices.Equal(got, want) {
		t.Fatalf("documents %q, want %q", got, want)
	}
	if got := docText(t, docs, "r.csv#5"); got != "multi\nline" {
		t.Errorf("a quoted field over two lines = %q, want it kept", got)
	}
	wantSkip := filepath.Join(dir, "r.csv") + ":3"
	if len(st.Skipped) != 1 || st.Skipped[0].Path != wantSkip || !strings.Contains(st.Skipped[0].Reason, "never closes") {
		t.Errorf("skipped %+v, want one skip at %s naming the unclosed quote", st.Skipped, wantSkip)
	}
	_, _, err = readCorpus(t, []string{dir}, corpus.Options{Strict: true}, 1)
	if !errors.Is(err, corpus.ErrSkipped) || !strings.Contains(err.Error(), wantSkip) {
		t.Errorf("strict: err = %v, want ErrSkipped naming %s", err, wantSkip)
	}
}

func TestCSVRowIDsSurviveAMalformedRow(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"r.csv": "text\nfirst\n\"broken\n\nthird\n\"a \"\"quoted\"\" word\", said\"\n"})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Without an id column rows are named by number; the broken row keeps its
	// number, so fixing it renames no other row. Blank lines are not rows.
	want := []string{"r.csv#R1", "r.csv#R3", "r.csv#R4"}
	if got := docIDs(docs); !slices.Equal(got, want) {
		t.Fatalf("documents %q (skipped %v), want %q", got, st.Skipped, want)
	}
	if got := docText(t, docs, "r.csv#R4"); got != `a "quoted" word` {
		t.Errorf("R4 = %q", got)
	}
}

func TestTSVUnterminatedQuote(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"r.tsv": "id\ttext\na\t\"open\nb\tbee\n"})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := docIDs(docs); !slices.Equal(got, []string{"r.tsv#b"}) || len(st.Skipped) != 1 {
		t.Errorf("documents %q, skipped %v; want [r.tsv#b] and one skip", got, st.Skipped)
	}
}
