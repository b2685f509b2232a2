package planner

import (
	"context"
	"errors"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/embedder"
)

// batch is one request's worth of chunks.
type batch struct {
	inputs []embedder.Input
	shas   []string
	tokens int
	bytes  int
}

// chunkOut is one chunk as the scan workers produce it, in corpus order.
type chunkOut struct {
	docID  string
	index  int
	text   string
	tokens int
	sha    string
}

// producer reads the corpus, chunks it, skips the chunks already
// checkpointed and packs the rest into batches under the model's request
// limits, in corpus order.
//
// Shutdown rules: it stops when ctx ends (the run is stopping) and then
// returns nil; it returns the error that ended the corpus scan otherwise.
// Either way it closes out, which is how the embed workers learn there is
// no more work.
type producer struct {
	src     *corpus.Source
	jobs    int
	chunker *corpus.Chunker
	index   *checkpoint.Index
	packer  *Packer
}

// run sends batches to out until the corpus is done or ctx ends.
func (p *producer) run(ctx context.Context, out chan<- *batch) error {
	defer close(out)
	cur := &batch{}
	send := func() error {
		if len(cur.inputs) == 0 {
			return nil
		}
		select {
		case out <- cur:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		cur = &batch{}
		return nil
	}
	_, err := corpus.ScanStream(ctx, p.src, p.jobs, p.chunk, func(chunks []chunkOut) error {
		for _, c := range chunks {
			if p.packer.Add(c.tokens) {
				if err := send(); err != nil {
					return err
				}
			}
			cur.inputs = append(cur.inputs, embedder.Input{Text: c.text, Tokens: c.tokens, DocID: c.docID, ChunkIndex: c.index})
			cur.shas = append(cur.shas, c.sha)
			cur.tokens += c.tokens
			cur.bytes += len(c.text)
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Cause(ctx)) || errors.Is(err, context.Canceled)) {
		return nil // stopping: not the producer's failure
	}
	return err
}

// partBytes is how much chunk text a document's results hold before they
// are handed on as a part (corpus.ScanStream): a large document's chunks
// flow to the packer while it is read instead of piling up. A file's parts
// wait in a channel of 64 items for the packer, so a worker holds at most
// about 4 MiB of chunk text ahead of it.
const partBytes = 64 << 10

// chunk cuts a document into the chunks not yet checkpointed. It runs on the
// scan's workers.
func (p *producer) chunk(doc corpus.Document, part func([]chunkOut) error) ([]chunkOut, error) {
	return chunkPending(p.chunker, doc, p.index.Has, part)
}

// chunkPending cuts a document into the chunks skip does not report, handing
// them to part every partBytes of text and returning the rest.
func chunkPending(ch *corpus.Chunker, doc corpus.Document, skip func(checkpoint.Key, string) bool, part func([]chunkOut) error) ([]chunkOut, error) {
	var out []chunkOut
	held := 0
	_, _, err := ch.ChunkDocument(&doc, func(index int, text []byte, tokens int) error {
		sha := shaHex(text)
		if skip(checkpoint.Key{DocID: doc.ID, ChunkIndex: int32(index)}, sha) {
			return nil
		}
		out = append(out, chunkOut{docID: doc.ID, index: index, text: string(text), tokens: tokens, sha: sha})
		if held += len(text); held >= partBytes {
			if err := part(out); err != nil {
				return err
			}
			out, held = nil, 0
		}
		return nil
	})
	return out, err
}
