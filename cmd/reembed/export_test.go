package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store/pinecone"
	"github.com/reembed/reembed/store/storetest"
)

// TestExportPineconeReadByDuckDB exports a checkpoint (with superseded rows)
// and reads the files with DuckDB: Pinecone's dense import schema (id
// VARCHAR, values FLOAT[], metadata VARCHAR holding a JSON object), one
// record per key, the winning text in the metadata.
func TestExportPineconeReadByDuckDB(t *testing.T) {
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 90, 24, 40)
	out := t.TempDir()
	code, stdout, stderr := runMain(t, "export", "--format", "pinecone", "--checkpoint", dir, "--out", out, "--namespace", "docs")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "Exported 90 records") {
		t.Errorf("summary: %s", stdout)
	}
	// A second run finds every file and writes nothing.
	if code, stdout, _ = runMain(t, "export", "--format", "pinecone", "--checkpoint", dir, "--out", out, "--namespace", "docs"); code != exitOK || !strings.Contains(stdout, "Exported 0 records") {
		t.Errorf("second export: exit %d, %s", code, stdout)
	}
	node, err := exec.LookPath("node")
	skip := t.Skip
	if os.Getenv("REEMBED_REQUIRE_INTEROP") != "" {
		skip = t.Fatal
	}
	if err != nil {
		skip("node is not on PATH: DuckDB check of the Pinecone export skipped")
	}
	if _, err := os.Stat("../../interop/node_modules/@duckdb/node-api"); err != nil {
		skip("interop/node_modules/@duckdb/node-api missing (run: cd interop && npm ci): DuckDB check skipped")
	}
	b, err := exec.Command(node, "../../interop/pinecone-check.mjs", filepath.Join(out, "docs")).Output()
	if err != nil {
		t.Fatalf("pinecone-check: %v", err)
	}
	var got struct {
		Columns []struct{ Name, Type string }
		Rows    int    `json:"rows"`
		IDs     int    `json:"distinct_ids"`
		Dims    string `json:"dims"`
		Bad     int    `json:"bad_metadata"`
		Row     struct {
			ID       string    `json:"id"`
			Values   []float64 `json:"values"`
			Metadata string    `json:"metadata"`
		} `json:"row"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	wantCols := []string{"id VARCHAR", "values FLOAT[]", "metadata VARCHAR"}
	for i, c := range got.Columns {
		if i >= len(wantCols) || c.Name+" "+c.Type != wantCols[i] {
			t.Errorf("DuckDB sees columns %+v, want %v", got.Columns, wantCols)
			break
		}
	}
	if got.Rows != len(want) || got.IDs != len(want) || got.Dims != "[24]" || got.Bad != 0 {
		t.Errorf("DuckDB: %d rows, %d ids, dims %s, %d bad metadata; want %d, %d, [24], 0", got.Rows, got.IDs, got.Dims, got.Bad, len(want), len(want))
	}
	var meta pinecone.Metadata
	if err := json.Unmarshal([]byte(got.Row.Metadata), &meta); err != nil {
		t.Fatal(err)
	}
	w := want[keyOf(meta.DocID, meta.ChunkIndex)]
	if got.Row.ID != pinecone.ID(w.DocID, w.ChunkIndex) || meta.Text != w.Text || meta.ChunkSHA256 != w.ChunkSHA256 || len(got.Row.Values) != 24 || float32(got.Row.Values[5]) != w.Embedding[5] {
		t.Errorf("first record %+v %+v, want the winning row %+v", got.Row.ID, meta, w)
	}
}

func keyOf(doc string, idx int32) checkpoint.Key { return checkpoint.Key{DocID: doc, ChunkIndex: idx} }
