package checkpoint_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"os"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

type chunk struct {
	doc   string
	index int32
	text  string
}

func sum(text string) string {
	s := sha256.Sum256([]byte(text))
	return hex.EncodeToString(s[:])
}

// The rebuild's use: open (resume), skip what is checkpointed, add the new
// rows, flush on an interval and at the end.
func ExampleOpen() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "checkpoint-example-*")
	defer os.RemoveAll(root)
	corpus := []chunk{{"a.md", 0, "alpha"}, {"a.md", 1, "beta"}, {"b.md", 0, "gamma"}}
	spec := checkpoint.Manifest{Model: "text-embedding-3-small", Dimensions: 2, Encoding: "cl100k_base",
		Chunking: checkpoint.Chunking{ChunkTokens: 512, ChunkOverlap: 64}}

	for run := 1; run <= 2; run++ {
		w, err := checkpoint.Open(ctx, checkpoint.NewDir(root), checkpoint.Options{Manifest: spec, PartRows: 2})
		if err != nil {
			fmt.Println(err)
			return
		}
		embedded := 0
		for _, c := range corpus {
			if w.Index().Has(checkpoint.Key{DocID: c.doc, ChunkIndex: c.index}, sum(c.text)) {
				continue // checkpointed with this text: not paid twice
			}
			embedded++
			err := w.Add(ctx, checkpoint.Row{DocID: c.doc, ChunkIndex: c.index, ChunkSHA256: sum(c.text),
				Text: c.text, Tokens: 1, Model: spec.Model, Embedding: []float32{0.6, 0.8}, EmbeddedAt: time.Now()})
			if err != nil {
				fmt.Println(err)
				return
			}
		}
		if err := w.Close(ctx); err != nil {
			fmt.Println(err)
			return
		}
		parts, rows := w.Committed()
		fmt.Printf("run %d: embedded %d chunks, committed %d parts, %d rows\n", run, embedded, parts, rows)
	}
	// Output:
	// run 1: embedded 3 chunks, committed 2 parts, 3 rows
	// run 2: embedded 0 chunks, committed 0 parts, 0 rows
}

// verify's use: the coverage of the corpus as it is now.
func ExampleIndex_Coverage() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "checkpoint-example-*")
	defer os.RemoveAll(root)
	spec := checkpoint.Manifest{Model: "m", Dimensions: 1}
	w, _ := checkpoint.Open(ctx, checkpoint.NewDir(root), checkpoint.Options{Manifest: spec})
	for _, c := range []chunk{{"a.md", 0, "alpha"}, {"a.md", 1, "beta"}, {"old.md", 0, "deleted since"}} {
		w.Add(ctx, checkpoint.Row{DocID: c.doc, ChunkIndex: c.index, ChunkSHA256: sum(c.text), Text: c.text,
			Model: "m", Embedding: []float32{1}, EmbeddedAt: time.Now()})
	}
	w.Close(ctx)

	ix, err := checkpoint.Scan(ctx, checkpoint.NewDir(root), checkpoint.ScanOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	corpus := []chunk{{"a.md", 0, "alpha"}, {"a.md", 1, "beta, edited"}, {"b.md", 0, "new"}}
	var expected iter.Seq2[checkpoint.Key, string] = func(yield func(checkpoint.Key, string) bool) {
		for _, c := range corpus {
			if !yield(checkpoint.Key{DocID: c.doc, ChunkIndex: c.index}, sum(c.text)) {
				return
			}
		}
	}
	r := ix.Coverage(expected)
	fmt.Printf("present %d, missing %d %v, stale %d %v, extra %d %v, complete %v\n",
		r.Present, r.Missing, r.MissingKeys, r.Stale, r.StaleKeys, r.Extra, r.ExtraKeys, r.Complete())
	// Output:
	// present 1, missing 1 [b.md#0], stale 1 [a.md#1], extra 1 [old.md#0], complete false
}
