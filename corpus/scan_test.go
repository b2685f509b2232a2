package corpus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/sample"
)

// writeTree creates files under dir from a map of slash paths to contents.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readCorpus scans paths and returns copies of the documents in emit order.
func readCorpus(t *testing.T, paths []string, opts corpus.Options, jobs int) ([]corpus.Document, *corpus.Stats, error) {
	t.Helper()
	src, err := corpus.Open(paths, opts)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	var docs []corpus.Document
	st, err := corpus.Scan(t.Context(), src, jobs,
		func(d corpus.Document) (corpus.Document, error) {
			d.Text = bytes.Clone(d.Text) // work must not keep doc.Text
			return d, nil
		},
		func(d corpus.Document) error { docs = append(docs, d); return nil })
	return docs, st, err
}

func docIDs(docs []corpus.Document) []string {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	return ids
}

// docText returns the text of the document with the given ID, or fails.
func docText(t *testing.T, docs []corpus.Document, id string) string {
	t.Helper()
	for _, d := range docs {
		if d.ID == id {
			return string(d.Text)
		}
	}
	t.Fatalf("no document %q among %q", id, docIDs(docs))
	return ""
}

// extractSample writes the bundled sample corpus to a temporary directory.
func extractSample(t *testing.T) string {
	t.Helper()
	root, err := sample.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestScanSameOutputForAnyJobs(t *testing.T) {
	root := extractSample(t)
	one, st1, err := readCorpus(t, []string{root}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) < 100 {
		t.Fatalf("sample corpus gave %d documents; want the whole sample", len(one))
	}
	for _, jobs := range []int{2, 4, 0} {
		many, st, err := readCorpus(t, []string{root}, corpus.Options{}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(one, many, func(a, b corpus.Document) bool {
			return a.ID == b.ID && bytes.Equal(a.Text, b.Text) && a.Bytes == b.Bytes && a.InvalidUTF8 == b.InvalidUTF8
		}) {
			t.Errorf("jobs=%d: documents differ from jobs=1", jobs)
		}
		if st.Documents != st1.Documents || st.Bytes != st1.Bytes || st.Files != st1.Files {
			t.Errorf("jobs=%d: stats %+v, jobs=1 gave %+v", jobs, st, st1)
		}
	}
}

func TestScanSampleIsRepeatable(t *testing.T) {
	root := extractSample(t)
	all, stAll, err := readCorpus(t, []string{root}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, stA, err := readCorpus(t, []string{root}, corpus.Options{Sample: 0.5, Seed: 7}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := readCorpus(t, []string{root}, corpus.Options{Sample: 0.5, Seed: 7}, 4)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := readCorpus(t, []string{root}, corpus.Options{Sample: 0.5, Seed: 8}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(docIDs(a), docIDs(b)) {
		t.Errorf("same seed gave different samples:\n%q\n%q", docIDs(a), docIDs(b))
	}
	if slices.Equal(docIDs(a), docIDs(c)) {
		t.Errorf("seeds 7 and 8 gave the same sample of %d documents", len(a))
	}
	// Each document is kept by the published rule, and the sample is about half.
	kept := 0
	for _, d := range all {
		if corpus.SampleKeeps(7, d.ID, 0.5) {
			kept++
		}
	}
	if kept != len(a) {
		t.Errorf("sample kept %d documents, SampleKeeps keeps %d", len(a), kept)
	}
	if f := float64(len(a)) / float64(len(all)); f < 0.35 || f > 0.65 {
		t.Errorf("sample 0.5 kept %d of %d documents (%.2f)", len(a), len(all), f)
	}
	// The bytes read and the bytes left out make up the whole corpus.
	if stAll.UnsampledBytes != 0 || stA.Bytes+stA.UnsampledBytes != stAll.Bytes || stA.UnsampledBytes == 0 {
		t.Errorf("sample: %d bytes read + %d left out, want %d in all", stA.Bytes, stA.UnsampledBytes, stAll.Bytes)
	}
	// A Keep filter's rejects are not the sample's: they are another shard's.
	keep := func(id string) bool { return strings.HasPrefix(id, "md/") }
	_, stK, err := readCorpus(t, []string{root}, corpus.Options{Keep: keep}, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, stKS, err := readCorpus(t, []string{root}, corpus.Options{Keep: keep, Sample: 0.5, Seed: 7}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if stKS.Bytes+stKS.UnsampledBytes != stK.Bytes {
		t.Errorf("sample of a shard: %d bytes read + %d left out, want the shard's %d", stKS.Bytes, stKS.UnsampledBytes, stK.Bytes)
	}
}

func TestScanStopsOnWorkError(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a", "b.txt": "b", "c.txt": "c"})
	src, err := corpus.Open([]string{dir}, corpus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	boom := errors.New("boom")
	_, err = corpus.Scan(t.Context(), src, 2,
		func(d corpus.Document) (string, error) {
			if d.ID == "b.txt" {
				return "", boom
			}
			return d.ID, nil
		},
		func(string) error { return nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "b.txt") {
		t.Errorf("err = %v, want boom naming b.txt", err)
	}
}

func TestScanCanceled(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a", "b.txt": "b"})
	src, err := corpus.Open([]string{dir}, corpus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = corpus.Scan(ctx, src, 2,
		func(d corpus.Document) (string, error) { return d.ID, nil },
		func(string) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestScanNamesInvalidUTF8Documents(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"valid.txt": "fine"}
	for i := range 12 {
		files[string(rune('a'+i))+".txt"] = "bad \xff byte"
	}
	files["z.jsonl"] = "{\"id\":\"r1\",\"text\":\"x\xe1\x80y\"}\n{\"id\":\"r2\",\"text\":\"ok\"}\n"
	writeTree(t, dir, files)
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.InvalidUTF8Documents != 13 {
		t.Errorf("InvalidUTF8Documents = %d, want 13", st.InvalidUTF8Documents)
	}
	want := []string{"a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt", "h.txt", "i.txt", "j.txt"}
	if !slices.Equal(st.InvalidUTF8Examples, want) {
		t.Errorf("InvalidUTF8Examples = %q, want the first %d in corpus order %q", st.InvalidUTF8Examples, corpus.MaxInvalidExamples, want)
	}
	if got := docText(t, docs, "a.txt"); got != "bad \uFFFD byte" {
		t.Errorf("a.txt text = %q, want the invalid byte as U+FFFD", got)
	}
	if got := docText(t, docs, "z.jsonl#r1"); got != "x\uFFFDy" {
		t.Errorf("z.jsonl#r1 text = %q, want one U+FFFD for E1 80", got)
	}
}

// TestScanCancelNeverHangs cancels scans at many moments: Scan must always
// return (a queued file's output channel once made the collector wait forever).
func TestScanCancelNeverHangs(t *testing.T) {
	dir := t.TempDir()
	for i := range 64 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.txt", i)), []byte(strings.Repeat("word ", 200)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		src, err := corpus.Open([]string{dir}, corpus.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		n := 0
		var worked atomic.Int64
		_, err = corpus.Scan(ctx, src, 1+i%4, func(d corpus.Document) (int, error) {
			if i%2 == 1 && worked.Add(1) == int64(i%64) {
				cancel() // from a worker
			}
			return len(d.Text), nil
		}, func(int) error {
			n++
			if i%2 == 0 && n == i%64 {
				cancel() // from the collector
			}
			return nil
		})
		cancel()
		src.Close()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}
