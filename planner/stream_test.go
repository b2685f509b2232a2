package planner

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// streamTestCorpus is the sample corpus plus a one-line document of about
// 700 KB (long enough for many parts of chunks) and one with invalid UTF-8.
func streamTestCorpus(t *testing.T) string {
	t.Helper()
	root, err := sample.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	line := strings.ReplaceAll(rbText(rng, 120_000), "\n", " ")
	if err := os.WriteFile(filepath.Join(root, "one-line.txt"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []byte(rbText(rng, 3000))
	bad = slices.Insert(bad, 1000, 0xE2, 0x82)
	if err := os.WriteFile(filepath.Join(root, "invalid.txt"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestEstimateStreamedMatchesInMemory is the differential test of the
// streamed estimate: with every plain-text file streamed (StreamAbove 1) the
// estimate, per-document TSV included, equals the one that reads each
// document whole (StreamAbove -1), with two chunkings (an exact model and an
// estimated one of another input limit), shards, and a sample.
func TestEstimateStreamedMatchesInMemory(t *testing.T) {
	t.Parallel()
	root := streamTestCorpus(t)
	titan := rbModel(t, "amazon.titan-embed-text-v2:0")
	cohere := rbModel(t, "embed-english-v3.0")
	small := rbModel(t, "text-embedding-3-small")
	for _, c := range []struct {
		name   string
		models []pricing.Model
		size   int
		shards int
		sample float64
	}{
		{"512/64 shards", []pricing.Model{small, cohere}, 512, 3, 0},
		{"whole documents sampled", []pricing.Model{small, titan, cohere}, 0, 0, 0.5},
	} {
		estimate := func(above int64) (string, string) {
			var tsv bytes.Buffer
			req := EstimateRequest{Paths: []string{root}, Models: c.models, ChunkTokens: c.size,
				Limits: Limits{TPM: DefaultTPM, RPM: DefaultRPM, Concurrency: 2, Latency: DefaultLatency},
				Corpus: corpus.Options{StreamAbove: above, Sample: c.sample, Seed: 1}, Shards: c.shards, PerDocument: &tsv, Jobs: 2}
			if c.size > 0 {
				req.ChunkOverlap = 64
			}
			est, err := Run(t.Context(), rbTokenizer(t), req)
			if err != nil {
				t.Fatalf("%s: Run: %v", c.name, err)
			}
			est.Corpus.ReadSeconds = 0
			b, _ := json.MarshalIndent(est, "", " ")
			return string(b), tsv.String()
		}
		wantJSON, wantTSV := estimate(-1)
		gotJSON, gotTSV := estimate(1)
		if gotTSV != wantTSV {
			t.Errorf("%s: per-document TSV streamed:\n%s\nwhole:\n%s", c.name, gotTSV, wantTSV)
		}
		if gotJSON != wantJSON {
			t.Errorf("%s: estimate streamed:\n%s\nwhole:\n%s", c.name, gotJSON, wantJSON)
		}
		if c.sample == 0 && !strings.Contains(wantTSV, "one-line.txt\t") || !strings.Contains(wantJSON, `"invalid_utf8_documents": 1`) {
			t.Errorf("%s: the large or the invalid document is missing: the test proves less than it says", c.name)
		}
	}
}

// TestRebuildStreamedMatchesInMemory is the differential test of the
// streamed rebuild: with every plain-text file streamed, the checkpoint holds
// the same rows (keys, text, sha256, billed tokens) as when each document is
// read whole, and verifies complete.
func TestRebuildStreamedMatchesInMemory(t *testing.T) {
	t.Parallel()
	root := rbCorpus(t, 6, 7)
	rng := rand.New(rand.NewPCG(33, 34))
	line := strings.ReplaceAll(rbText(rng, 60_000), "\n", " ") // about 350 KB: parts of chunks
	if err := os.WriteFile(filepath.Join(root, "one-line.txt"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := func(above int64) []checkpoint.Row {
		spec := rbSpec(t, root)
		spec.ChunkTokens, spec.ChunkOverlap = 256, 32
		spec.Limits.BatchSize, spec.PartRows = 64, 256
		spec.Corpus.StreamAbove = above
		out := t.TempDir()
		sum, err := rbRun(t, t.Context(), rbSimulator(t), out, spec)
		if err != nil || sum.Stopped != "complete" {
			t.Fatalf("StreamAbove %d: Run = %+v, %v", above, sum, err)
		}
		if rep := rbVerify(t, out, spec); !rep.Complete() || rep.Duplicates != 0 || rep.Extra != 0 {
			t.Errorf("StreamAbove %d: Verify = %+v, want complete", above, rep)
		}
		return sortedRows(t, out)
	}
	want, got := rows(-1), rows(1)
	if len(want) < 200 {
		t.Fatalf("%d rows: the large document made too few chunks to test parts", len(want))
	}
	sameRows(t, got, want)
}

// TestBatchRebuildStreamedMatchesInMemory: the batch mode's scan streams
// too, and checkpoints the rows of a sync rebuild that reads each document
// whole.
func TestBatchRebuildStreamedMatchesInMemory(t *testing.T) {
	t.Parallel()
	root := rbCorpus(t, 4, 9)
	rng := rand.New(rand.NewPCG(35, 36))
	line := strings.ReplaceAll(rbText(rng, 20_000), "\n", " ")
	if err := os.WriteFile(filepath.Join(root, "one-line.txt"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := rbSpec(t, root)
	spec.Limits.BatchSize, spec.PartRows = 64, 256
	spec.Corpus.StreamAbove = -1
	whole := t.TempDir()
	if sum, err := rbRun(t, t.Context(), rbSimulator(t), whole, spec); err != nil || sum.Stopped != "complete" {
		t.Fatalf("sync Run = %+v, %v", sum, err)
	}
	spec.Corpus.StreamAbove = 1
	e := newBatchEnv(t, embedder.BatchSimConfig{})
	out := t.TempDir()
	if _, err := e.runner(t, out, BatchOptions{}).Run(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	sameRows(t, sortedRows(t, out), sortedRows(t, whole))
}

// sortedRows returns the rows of the checkpoint in out without their
// vectors, by doc_id and chunk_index.
func sortedRows(t *testing.T, out string) []checkpoint.Row {
	rs := rbAllRows(t, out)
	for i := range rs {
		rs[i].Embedding = nil
	}
	slices.SortFunc(rs, func(a, b checkpoint.Row) int {
		if c := strings.Compare(a.DocID, b.DocID); c != 0 {
			return c
		}
		return int(a.ChunkIndex - b.ChunkIndex)
	})
	return rs
}

// sameRows fails unless got and want hold the same keys, texts, sha256 and
// billed tokens.
func sameRows(t *testing.T, got, want []checkpoint.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows streamed, %d whole", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.DocID != w.DocID || g.ChunkIndex != w.ChunkIndex || g.ChunkSHA256 != w.ChunkSHA256 || g.Text != w.Text || g.Tokens != w.Tokens {
			t.Fatalf("row %d streamed %s/%d %s %d tokens, whole %s/%d %s %d tokens", i, g.DocID, g.ChunkIndex, g.ChunkSHA256, g.Tokens, w.DocID, w.ChunkIndex, w.ChunkSHA256, w.Tokens)
		}
	}
}
