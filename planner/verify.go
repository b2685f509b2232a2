package planner

import (
	"context"
	"fmt"
	"iter"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
)

// Verify reports how completely the checkpoint in store covers the corpus as
// spec cuts it: chunks present, missing, stale (text changed), extra. It
// reads every shard of the checkpoint as one and changes nothing. It reads
// the key columns only, unless spec.Deep: then every row is checked too
// ([checkpoint.ScanOptions.Deep]) against the spec's model and dimensions.
func Verify(ctx context.Context, tok tokenizer.Tokenizer, store checkpoint.Store, spec RebuildSpec) (*checkpoint.Report, error) {
	rep, _, err := VerifyMatch(ctx, tok, store, spec)
	return rep, err
}

// VerifyMatch is [Verify], and also says how many of the checkpoint's
// doc_ids the corpus holds ([DocIDMatch.Warning]).
func VerifyMatch(ctx context.Context, tok tokenizer.Tokenizer, store checkpoint.Store, spec RebuildSpec) (*checkpoint.Report, DocIDMatch, error) {
	ix, err := checkpoint.Scan(ctx, store, checkpoint.ScanOptions{Deep: spec.Deep,
		Expect: checkpoint.Expect{Model: spec.Model.Name, Dimensions: spec.dimensions()}})
	if err != nil {
		return nil, DocIDMatch{}, fmt.Errorf("reading checkpoint: %w", err)
	}
	match := newIDMatcher(ix)
	chunker, err := corpus.NewChunker(tok, effectiveSize(spec), effectiveOverlap(spec), spec.Model.MaxTokensPerInput)
	if err != nil {
		return nil, DocIDMatch{}, err
	}
	est := spec.estimateRequest()
	src, err := corpus.Open(spec.Paths, est.Corpus)
	if err != nil {
		return nil, DocIDMatch{}, err
	}
	defer src.Close()
	type keySha struct {
		k   checkpoint.Key
		sha string
	}
	var expected []keySha
	// Scan is stopped from emit, not through its ctx (see Rebuilder.Run).
	_, err = corpus.Scan(context.WithoutCancel(ctx), src, spec.Jobs, func(doc corpus.Document) ([]keySha, error) {
		var out []keySha
		match.see(doc.ID)
		_, _, err := chunker.ChunkDocument(&doc, func(index int, text []byte, _ int) error {
			out = append(out, keySha{checkpoint.Key{DocID: doc.ID, ChunkIndex: int32(index)}, shaHex(text)})
			return nil
		})
		return out, err
	}, func(ks []keySha) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		expected = append(expected, ks...)
		return nil
	})
	if err != nil {
		return nil, DocIDMatch{}, fmt.Errorf("reading corpus: %w", err)
	}
	var seq iter.Seq2[checkpoint.Key, string] = func(yield func(checkpoint.Key, string) bool) {
		for _, e := range expected {
			if !yield(e.k, e.sha) {
				return
			}
		}
	}
	rep := ix.Coverage(seq)
	return &rep, match.result(), nil
}

// CheckpointDone returns a function for [EstimateRequest.Done] that reports
// the chunks the checkpoint in store already holds with the same text.
func CheckpointDone(ctx context.Context, store checkpoint.Store) (func(string, int, []byte) bool, error) {
	done, _, err := CheckpointDoneMatch(ctx, store)
	return done, err
}

// CheckpointDoneMatch is [CheckpointDone], and match, which after the
// estimate says how many of the checkpoint's doc_ids the corpus held.
func CheckpointDoneMatch(ctx context.Context, store checkpoint.Store) (done func(string, int, []byte) bool, match func() DocIDMatch, err error) {
	ix, err := checkpoint.Scan(ctx, store, checkpoint.ScanOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	m := newIDMatcher(ix)
	return m.matchingDone(doneFunc(ix)), m.result, nil
}

// doneFunc returns a function for [EstimateRequest.Done] that reports the
// chunks ix already holds with the same text.
func doneFunc(ix *checkpoint.Index) func(docID string, index int, text []byte) bool {
	return func(docID string, index int, text []byte) bool {
		return ix.Has(checkpoint.Key{DocID: docID, ChunkIndex: int32(index)}, shaHex(text))
	}
}
