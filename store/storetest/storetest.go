// Package storetest writes small checkpoints for restore tests: rows with
// deterministic vectors, some keys superseded by later parts, so that a
// restore that loads a losing row is caught.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// Model is the model name the checkpoints record.
const Model = "text-embedding-3-small"

// Checkpoint writes a checkpoint of n keys with dims-long vectors into dir,
// partRows rows per part, then rewrites every tenth key with a new text in
// later parts (superseding rows). It returns the winning row of every key.
func Checkpoint(t testing.TB, dir string, n, dims, partRows int) map[checkpoint.Key]checkpoint.Row {
	t.Helper()
	ctx := context.Background()
	w, err := checkpoint.Open(ctx, checkpoint.NewDir(dir), checkpoint.Options{
		Manifest: checkpoint.Manifest{Model: Model, Dimensions: dims, Encoding: "cl100k_base",
			Chunking: checkpoint.Chunking{ChunkTokens: 512, ChunkOverlap: 64}},
		PartRows: partRows,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[checkpoint.Key]checkpoint.Row{}
	add := func(i int, version string) {
		r := NewRow(fmt.Sprintf("docs/doc-%04d.md", i/3), int32(i%3), fmt.Sprintf("chunk %d %s: ünïcode ✓", i, version), dims)
		if err := w.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		want[r.Key()] = r
	}
	for i := range n {
		add(i, "v1")
	}
	for i := 0; i < n; i += 10 {
		add(i, "v2")
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return want
}

// NewRow returns a row whose vector is derived from its text.
func NewRow(doc string, idx int32, text string, dims int) checkpoint.Row {
	sum := sha256.Sum256([]byte(text))
	rng := rand.New(rand.NewPCG(uint64(sum[0])<<8|uint64(sum[1]), uint64(sum[2])<<8|uint64(sum[3])))
	v := make([]float32, dims)
	for j := range v {
		v[j] = float32(rng.NormFloat64()) / 8
	}
	v[0] += 0.001 // never all zero
	return checkpoint.Row{DocID: doc, ChunkIndex: idx, ChunkSHA256: hex.EncodeToString(sum[:]), Text: text,
		Tokens: 7, Model: Model, Embedding: v, EmbeddedAt: time.Now().UTC().Truncate(time.Millisecond)}
}
