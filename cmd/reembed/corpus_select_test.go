package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/sample"
)

// writeFiles creates files under dir from a map of slash paths to contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
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

func readManifestFile(t *testing.T, dir string) checkpoint.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, checkpoint.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkpointRows returns the doc_ids of every row of a local checkpoint.
func checkpointDocIDs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	parts, _ := filepath.Glob(filepath.Join(dir, "part-*.parquet"))
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		rows, err := checkpoint.ReadRows(f, fi.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			ids[r.DocID] = true
		}
	}
	return ids
}

var quietRebuild = []string{"rebuild", "--progress-interval", "1h", "--rpm", "0", "--tpm", "0", "--format", "json"}

func rebuildArgs(extra ...string) []string {
	return append(append([]string{}, quietRebuild...), extra...)
}

// Issue 14.4: rebuild and verify with no PATH used the bundled sample even
// when the manifest recorded other roots; following verify's own hint
// embedded and paid for the sample's chunks into a user's checkpoint.
func TestCheckpointKnowsItsCorpus(t *testing.T) {
	base := t.TempDir()
	docs := filepath.Join(base, "docs")
	writeFiles(t, docs, map[string]string{"a.txt": "alpha document", "b.txt": "bravo document"})
	out := filepath.Join(base, "ckpt")
	if code, stdout, stderr := runMain(t, rebuildArgs("--out", out, docs)...); code != 0 {
		t.Fatalf("rebuild exit %d\n%s\n%s", code, stdout, stderr)
	}
	m := readManifestFile(t, out)
	want, _ := filepath.EvalSymlinks(docs)
	if len(m.CorpusRoots) != 1 || m.CorpusRoots[0] != want || !filepath.IsAbs(m.CorpusRoots[0]) {
		t.Errorf("manifest corpus_roots = %q, want the canonical absolute %q", m.CorpusRoots, want)
	}

	// With no PATH, verify and rebuild read the manifest's roots: complete,
	// nothing embedded, and no sample document in the checkpoint.
	if code, stdout, stderr := runMain(t, "verify", "--checkpoint", out); code != 0 || !strings.Contains(stdout, "2 present") {
		t.Errorf("verify with no PATH: exit %d, want complete on the checkpoint's corpus\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := runMain(t, rebuildArgs("--out", out)...)
	if code != 0 || !strings.Contains(stdout, `"embedded_chunks": 0`) || !strings.Contains(stderr, "reading the checkpoint's corpus") {
		t.Errorf("rebuild with no PATH: exit %d, want the checkpoint's corpus, nothing embedded\n%s\n%s", code, stdout, stderr)
	}
	for id := range checkpointDocIDs(t, out) {
		if id != "a.txt" && id != "b.txt" {
			t.Errorf("the checkpoint holds %q, not a document of its corpus (the bundled sample?)", id)
		}
	}

	// Another PATH is refused, naming the way out; --corpus-changed takes it
	// and the manifest then records it.
	other := filepath.Join(base, "other")
	writeFiles(t, other, map[string]string{"c.txt": "charlie document"})
	for _, args := range [][]string{rebuildArgs("--out", out, other), {"verify", "--checkpoint", out, other}} {
		code, _, stderr := runMain(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "--corpus-changed") {
			t.Errorf("%s with another corpus: exit %d, want 2 naming --corpus-changed\n%s", args[0], code, stderr)
		}
	}
	if code, stdout, stderr := runMain(t, rebuildArgs("--out", out, "--corpus-changed", docs, other)...); code != 0 {
		t.Fatalf("rebuild --corpus-changed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	wantOther, _ := filepath.EvalSymlinks(other)
	if m := readManifestFile(t, out); len(m.CorpusRoots) != 2 || m.CorpusRoots[1] != wantOther {
		t.Errorf("after --corpus-changed the manifest records %q, want both roots", m.CorpusRoots)
	}
	// Issue 14.5: adding a root kept the first root's IDs: the new root's
	// document only was embedded.
	if ids := checkpointDocIDs(t, out); len(ids) != 3 || !ids["a.txt"] || !ids["c.txt"] {
		t.Errorf("checkpoint doc_ids after adding a root: %v, want a.txt b.txt c.txt", ids)
	}

	// A fresh rebuild needs a PATH: the sample is no rebuild's default.
	code, _, stderr = runMain(t, rebuildArgs("--out", filepath.Join(base, "fresh"))...)
	if code != exitUsage || !strings.Contains(stderr, "no corpus PATH") {
		t.Errorf("rebuild with no PATH and no checkpoint: exit %d, want 2\n%s", code, stderr)
	}
}

// Issue 14.5: a checkpoint that shares almost no doc_ids with the corpus
// says so.
func TestDocIDMismatchWarns(t *testing.T) {
	base := t.TempDir()
	docs, other := filepath.Join(base, "docs"), filepath.Join(base, "other")
	writeFiles(t, docs, map[string]string{"a.txt": "alpha", "b.txt": "bravo"})
	writeFiles(t, other, map[string]string{"x.txt": "x-ray"})
	out := filepath.Join(base, "ckpt")
	if code, stdout, stderr := runMain(t, rebuildArgs("--out", out, docs)...); code != 0 {
		t.Fatalf("rebuild exit %d\n%s\n%s", code, stdout, stderr)
	}
	want := "0 of 2 checkpointed doc_ids match: did the corpus roots change?"
	_, _, stderr := runMain(t, "verify", "--checkpoint", out, "--corpus-changed", other)
	if !strings.Contains(stderr, want) {
		t.Errorf("verify of another corpus: stderr %q, want %q", stderr, want)
	}
	_, stdout, stderr := runMain(t, "estimate", "--checkpoint", out, "--corpus-changed", "--format", "json", other)
	if !strings.Contains(stderr, want) || !strings.Contains(stdout, want) {
		t.Errorf("estimate --checkpoint of another corpus: want %q on stderr and in the notes\n%s\n%s", want, stdout, stderr)
	}
	if _, _, stderr := runMain(t, "verify", "--checkpoint", out); strings.Contains(stderr, "doc_ids match") {
		t.Errorf("verify of the same corpus warns: %s", stderr)
	}
}

// Issue 14.6: estimate --checkpoint ignored the checkpoint's model and
// chunking, and quoted $0 for text-embedding-3-large against a 3-small
// checkpoint, while that rebuild is refused.
func TestEstimateCheckpointPricesTheRebuildThatWouldRun(t *testing.T) {
	base := t.TempDir()
	docs := filepath.Join(base, "docs")
	writeFiles(t, docs, map[string]string{"a.txt": strings.Repeat("a long document about embeddings ", 40)})
	out := filepath.Join(base, "ckpt")
	if code, stdout, stderr := runMain(t, rebuildArgs("--out", out, "--chunk-tokens", "32", "--chunk-overlap", "0", docs)...); code != 0 {
		t.Fatalf("rebuild exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := runMain(t, "estimate", "--checkpoint", out, "--model", "text-embedding-3-large", "--format", "json", docs)
	if code != exitUsage || !strings.Contains(stderr, "text-embedding-3-small") {
		t.Errorf("estimate --checkpoint with another model: exit %d, want 2 naming the checkpoint's model\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runMain(t, "estimate", "--checkpoint", out, "--chunk-tokens", "512", "--format", "json", docs)
	if code != exitUsage || !strings.Contains(stderr, "chunk_tokens=32") {
		t.Errorf("estimate --checkpoint with other chunking: exit %d, want 2\n%s", code, stderr)
	}
	// No model, chunking or PATH: the manifest's, all reused.
	code, stdout, stderr = runMain(t, "estimate", "--checkpoint", out, "--format", "json")
	var est struct {
		Chunking struct {
			ChunkTokens int `json:"chunk_tokens"`
		} `json:"chunking"`
		Estimates []struct {
			Model        string `json:"model"`
			Chunks       int    `json:"chunks"`
			ReusedChunks int    `json:"reused_chunks"`
		} `json:"estimates"`
	}
	if err := json.Unmarshal([]byte(stdout), &est); code != 0 || err != nil {
		t.Fatalf("estimate --checkpoint: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if e := est.Estimates[0]; e.Model != "text-embedding-3-small" || est.Chunking.ChunkTokens != 32 || e.Chunks != 0 || e.ReusedChunks < 2 {
		t.Errorf("estimate --checkpoint: %+v chunking %d, want the checkpoint's model and chunking, every chunk reused", e, est.Chunking.ChunkTokens)
	}
}

// Issue 17.2: the manifest records the filters, and resume and verify apply
// them; .git is skipped by default and the estimate says so.
func TestFiltersRecordedAndApplied(t *testing.T) {
	base := t.TempDir()
	docs := filepath.Join(base, "docs")
	writeFiles(t, docs, map[string]string{"a.txt": "alpha", "notes.md": "notes", "node_modules/x/y.js": "js",
		".git/HEAD": "ref: refs/heads/main", ".reembedignore": "*.log\n", "debug.log": "log"})
	code, stdout, stderr := runMain(t, "estimate", "--format", "json", "--exclude", "node_modules", docs)
	if code != 0 || !strings.Contains(stdout, `"documents": 2`) || !strings.Contains(stdout, filepath.Join(docs, ".git")) {
		t.Errorf("estimate --exclude node_modules: exit %d, want 2 documents and .git named as skipped by default\n%s\n%s", code, stdout, stderr)
	}
	if _, stdout, _ := runMain(t, "estimate", docs); !strings.Contains(stdout, "by default: "+filepath.Join(docs, ".git")) {
		t.Errorf("the estimate table does not say .git was skipped by default:\n%s", stdout)
	}
	out := filepath.Join(base, "ckpt")
	if code, stdout, stderr := runMain(t, rebuildArgs("--out", out, "--exclude", "*.md", docs)...); code != 0 {
		t.Fatalf("rebuild exit %d\n%s\n%s", code, stdout, stderr)
	}
	if m := readManifestFile(t, out); len(m.Filters.Exclude) != 1 || m.Filters.Exclude[0] != "*.md" {
		t.Errorf("manifest filters = %+v, want exclude *.md", m.Filters)
	}
	ids := checkpointDocIDs(t, out)
	if len(ids) != 2 || !ids["a.txt"] || !ids["node_modules/x/y.js"] {
		t.Errorf("checkpoint doc_ids %v, want a.txt and node_modules/x/y.js", ids)
	}
	// verify without the flag applies the manifest's filters: complete.
	if code, stdout, stderr := runMain(t, "verify", "--checkpoint", out, docs); code != 0 {
		t.Errorf("verify with the manifest's filters: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runMain(t, rebuildArgs("--out", out, "--exclude", "*.txt", docs)...)
	if code != exitUsage || !strings.Contains(stderr, "filters") {
		t.Errorf("rebuild with other filters: exit %d, want 2\n%s", code, stderr)
	}
}

// Issue 17.3: estimate of a directory of gzipped man pages gave 0 documents,
// $0 and exit 0; an empty corpus is a warning and exit 2 unless
// --allow-empty; drill on it says "0 documents" (it said "(<nil>)").
func TestCompressedAndEmptyCorpora(t *testing.T) {
	base := t.TempDir()
	man := filepath.Join(base, "man")
	for _, name := range []string{"man1/ls.1.gz", "man1/cp.1.gz"} {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(".TH " + name + "\nlist and copy files, a manual page\n"))
		w.Close()
		writeFiles(t, man, map[string]string{name: b.String()})
	}
	code, stdout, stderr := runMain(t, "estimate", "--format", "json", man)
	if code != 0 || !strings.Contains(stdout, `"documents": 2`) {
		t.Errorf("estimate of gzipped man pages: exit %d, want 2 documents\n%s\n%s", code, stdout, stderr)
	}
	bin := filepath.Join(base, "bin")
	writeFiles(t, bin, map[string]string{"a.bin": "a\x00b", "b.bin": "c\x00d", "ok.txt": "text"})
	empty := filepath.Join(base, "empty")
	os.MkdirAll(empty, 0o755)
	for _, dir := range []string{bin, empty} {
		code, stdout, stderr := runMain(t, "estimate", dir)
		if code != exitUsage || !strings.Contains(stderr, "warning:") || stdout == "" {
			t.Errorf("estimate %s: exit %d, want the estimate, a warning on stderr and exit 2\n%s\n%s", dir, code, stdout, stderr)
		}
		if code, _, stderr := runMain(t, "estimate", "--allow-empty", dir); code != 0 {
			t.Errorf("estimate --allow-empty %s: exit %d\n%s", dir, code, stderr)
		}
	}
	// One shard of a sharded job may hold no documents: not a warning.
	for _, sh := range []string{"0/2", "1/2"} {
		if code, stdout, stderr := runMain(t, "estimate", "--shard", sh, filepath.Join(bin, "ok.txt")); code != 0 {
			t.Errorf("estimate --shard %s of one document: exit %d\n%s\n%s", sh, code, stdout, stderr)
		}
	}
	code, stdout, stderr = runMain(t, "drill", empty)
	if code != exitUsage || !strings.Contains(stdout+stderr, "0 documents") || strings.Contains(stdout+stderr, "<nil>") {
		t.Errorf("drill of an empty corpus: exit %d, want it to say 0 documents\n%s\n%s", code, stdout, stderr)
	}
}

// Issue 14.4: the bundled sample is the default of estimate and drill only,
// and they say so.
func TestEstimateSaysItUsesTheSample(t *testing.T) {
	code, stdout, stderr := runMain(t, "estimate", "--format", "json", "--sample", "0.5")
	if code != 0 || !strings.Contains(stderr, "using the bundled sample corpus") || !strings.Contains(stdout, sample.Name) {
		t.Errorf("estimate with no PATH: exit %d, stderr %q, want it to say it uses the bundled sample", code, stderr)
	}
}
