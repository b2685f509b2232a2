package checkpoint

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/reembed/reembed/corpus"
)

// TestDuckDBReadsParts writes a known part and reads it back with DuckDB
// (npm @duckdb/node-api, interop/duckdb-check.mjs): the column types other
// tools see, and the first row, must be what was written.
func TestDuckDBReadsParts(t *testing.T) {
	duckdb := duckDBCheck(t)
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	want := makeRow("docs/a ünïcode \"quoted\".md", 0, 1, 12)
	want.Text = "line one\nline two, emoji 🚀, NUL-free, tab\there"
	want.ChunkSHA256 = shaHex(want.Text)
	want.Embedding[3] = 1.0e-45      // smallest subnormal float32 (JSON cannot carry -0)
	want.Embedding[4] = 3.4028235e38 // largest float32
	other := makeRow("docs/z.md", 7, 1, 12)
	m := testManifest(12)
	m.Shard = Shard{Index: 1, Count: 3}
	w := openWriter(t, NewDir(root), Options{Manifest: m})
	must(t, w.Add(ctx, other, want))
	must(t, w.Close(ctx))
	unsharded := openWriter(t, NewDir(root), Options{Manifest: testManifest(12)})
	must(t, unsharded.Add(ctx, makeRow("docs/y.md", 0, 1, 12)))
	must(t, unsharded.Close(ctx))

	out := duckdb(root)
	var got struct {
		Columns []struct{ Name, Type string }
		Rows    int `json:"rows"`
		Keys    int `json:"distinct_keys"`
		Row     struct {
			DocID       string    `json:"doc_id"`
			ChunkIndex  int32     `json:"chunk_index"`
			ChunkSHA256 string    `json:"chunk_sha256"`
			Text        string    `json:"text"`
			Tokens      int32     `json:"tokens"`
			Model       string    `json:"model"`
			Embedding   []float64 `json:"embedding"`
			EmbeddedAt  string    `json:"embedded_at_epoch_ms"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("duckdb-check output %q: %v", out, err)
	}
	wantTypes := []struct{ name, types string }{
		{"doc_id", "VARCHAR"}, {"chunk_index", "INTEGER"}, {"chunk_sha256", "VARCHAR"}, {"text", "VARCHAR"},
		{"tokens", "INTEGER"}, {"model", "VARCHAR"}, {"embedding", "FLOAT[]"}, {"embedded_at", "TIMESTAMP WITH TIME ZONE"},
	}
	if len(got.Columns) != len(wantTypes) {
		t.Fatalf("DuckDB sees columns %+v", got.Columns)
	}
	for i, c := range got.Columns {
		if c.Name != wantTypes[i].name || c.Type != wantTypes[i].types {
			t.Errorf("column %d: DuckDB sees %s %s, want %s %s", i, c.Name, c.Type, wantTypes[i].name, wantTypes[i].types)
		}
	}
	if got.Rows != 3 || got.Keys != 3 {
		t.Errorf("DuckDB reads %d rows, %d keys across shards, want 3 and 3", got.Rows, got.Keys)
	}
	r := got.Row
	if r.DocID != want.DocID || r.ChunkIndex != want.ChunkIndex || r.ChunkSHA256 != want.ChunkSHA256 ||
		r.Text != want.Text || r.Tokens != want.Tokens || r.Model != want.Model {
		t.Errorf("DuckDB row %+v\nwant %+v", r, want)
	}
	if ms, _ := strconv.ParseInt(r.EmbeddedAt, 10, 64); ms != want.EmbeddedAt.UnixMilli() {
		t.Errorf("embedded_at = %s ms, want %d", r.EmbeddedAt, want.EmbeddedAt.UnixMilli())
	}
	if len(r.Embedding) != len(want.Embedding) {
		t.Fatalf("embedding has %d values, want %d", len(r.Embedding), len(want.Embedding))
	}
	for i, v := range r.Embedding {
		if math.Float32bits(float32(v)) != math.Float32bits(want.Embedding[i]) {
			t.Errorf("embedding[%d] = %v, want %v", i, float32(v), want.Embedding[i])
		}
	}
}

// duckDBCheck skips the test without node or the npm packages, and returns a
// function that runs interop/duckdb-check.mjs with the given arguments.
func duckDBCheck(t *testing.T) func(args ...string) []byte {
	t.Helper()
	// .ci/run sets REEMBED_REQUIRE_INTEROP: there a missing client is a failure.
	skip := t.Skip
	if os.Getenv("REEMBED_REQUIRE_INTEROP") != "" {
		skip = t.Fatal
	} else if testing.Short() {
		t.Skip("starts node: skipped in -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not on PATH: DuckDB interop check skipped")
	}
	script, _ := filepath.Abs("../interop/duckdb-check.mjs")
	if _, err := os.Stat("../interop/node_modules/@duckdb/node-api"); err != nil {
		skip("interop/node_modules/@duckdb/node-api missing (run: cd interop && npm ci): DuckDB interop check skipped")
	}
	return func(args ...string) []byte {
		out, err := exec.Command(node, append([]string{script}, args...)...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("duckdb-check: %v\n%s", err, stderr)
		}
		return out
	}
}

// TestDuckDBAgreesOnWinners checks the SQL of the package documentation: for
// superseded rows across parts and shards, DuckDB picks the same winning row
// as the Index.
func TestDuckDBAgreesOnWinners(t *testing.T) {
	duckdb := duckDBCheck(t)
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	at := func(r Row, s int) Row { r.EmbeddedAt = testTime.Add(time.Duration(s) * time.Second); return r }
	// Root: a (v1, then v2 in a later part), t (tie with shard 1).
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, at(makeRow("a", 0, 1, 4), 1), at(makeRow("t", 0, 1, 4), 5), at(makeRow("x", 3, 1, 4), 1)))
	must(t, w.Flush(ctx))
	must(t, w.Add(ctx, at(makeRow("a", 0, 2, 4), 2)))
	must(t, w.Close(ctx))
	m := testManifest(4)
	m.Shard = Shard{Index: 1, Count: 2}
	s1 := openWriter(t, NewDir(root), Options{Manifest: m})
	must(t, s1.Add(ctx, at(makeRow("a", 0, 3, 4), 3), at(makeRow("t", 0, 2, 4), 5), at(makeRow("x", 3, 2, 4), 0)))
	must(t, s1.Close(ctx))

	var got struct {
		Latest []struct {
			DocID       string `json:"doc_id"`
			ChunkIndex  int32  `json:"chunk_index"`
			ChunkSHA256 string `json:"chunk_sha256"`
			Filename    string `json:"filename"`
		} `json:"latest"`
	}
	if err := json.Unmarshal(duckdb(root, "--latest"), &got); err != nil {
		t.Fatal(err)
	}
	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	if len(got.Latest) != ix.Len() {
		t.Fatalf("DuckDB has %d winners, the index %d keys", len(got.Latest), ix.Len())
	}
	for _, r := range got.Latest {
		k := Key{DocID: r.DocID, ChunkIndex: r.ChunkIndex}
		e, ok := ix.Lookup(k)
		rel, _ := filepath.Rel(root, r.Filename)
		if !ok || e.SHA256 != r.ChunkSHA256 || e.Part != filepath.ToSlash(rel) {
			t.Errorf("%v: DuckDB picks %s in %s, the index %+v", k, r.ChunkSHA256[:8], rel, e)
		}
	}
}

// TestDuckDBReadsNonUTF8FileName: a corpus file whose name is not UTF-8
// (Latin-1 "café.txt") gets an escaped doc_id; its part reads in DuckDB (which
// refuses a part holding invalid UTF-8) and the id unescapes to the name.
func TestDuckDBReadsNonUTF8FileName(t *testing.T) {
	duckdb := duckDBCheck(t)
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	name := "caf\xe9 100%.txt"
	if err := os.WriteFile(filepath.Join(dir, name), []byte("bonjour"), 0o644); err != nil {
		t.Skipf("this file system refuses a non-UTF-8 name: %v", err)
	}
	src, err := corpus.Open([]string{dir}, corpus.Options{})
	must(t, err)
	defer src.Close()
	var ids []string
	_, err = corpus.Scan(ctx, src, 1, func(d corpus.Document) (string, error) { return d.ID, nil },
		func(id string) error { ids = append(ids, id); return nil })
	must(t, err)
	if len(ids) != 1 {
		t.Fatalf("corpus ids %q, want one", ids)
	}
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4)})
	row := makeRow(ids[0], 0, 1, 4)
	must(t, w.Add(ctx, row))
	must(t, w.Close(ctx))
	var got struct {
		Row struct {
			DocID string `json:"doc_id"`
		}
	}
	must(t, json.Unmarshal(duckdb(root), &got))
	if got.Row.DocID != "caf%E9 100%25.txt" || corpus.UnescapeDocID(got.Row.DocID) != name {
		t.Errorf("DuckDB reads doc_id %q, want %q (unescaping to %q)", got.Row.DocID, "caf%E9 100%25.txt", name)
	}
}
