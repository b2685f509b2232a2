package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/field"
)

// errWaveFull stops a wave's corpus scan once the wave is full.
var errWaveFull = errors.New("wave full")

// scanPending streams, in corpus order, every chunk of the job that skip
// does not reject (skip runs on the reader goroutines, concurrently; emit on
// the caller's), with the rebuild's own reader, chunker and filters (the
// producer of [Rebuilder.Run] does the same calls). emit may return
// errWaveFull to stop early.
func scanPending(ctx context.Context, spec RebuildSpec, r *Rebuilder, skip func(checkpoint.Key, string) bool, emit func(chunkOut) error) error {
	chunker, err := corpus.NewChunker(r.Tokenizer, effectiveSize(spec), effectiveOverlap(spec), spec.Model.MaxTokensPerInput)
	if err != nil {
		return err
	}
	src, err := corpus.Open(spec.Paths, spec.estimateRequest().Corpus)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = corpus.ScanStream(context.WithoutCancel(ctx), src, spec.Jobs, func(doc corpus.Document, part func([]chunkOut) error) ([]chunkOut, error) {
		return chunkPending(chunker, doc, skip, part)
	}, func(chunks []chunkOut) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, c := range chunks {
			if err := emit(c); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// pendingReq is one packed request of a wave.
type pendingReq struct {
	chunks []chunkOut
	tokens int64
	bytes  int64
}

// waveBuilder groups a wave's packed requests into batch files under the
// per-batch caps and the wave's enqueue room.
type waveBuilder struct {
	o              BatchOptions
	roomReq        int
	roomTok        int64
	emptyQueue     bool
	files          [][]pendingReq
	cur            []pendingReq
	curIn, curReqs int
	curBytes       int64
	full           bool
}

// add places a finished request; false when the wave has no room for it.
func (wb *waveBuilder) add(q pendingReq) (bool, error) {
	alone := wb.emptyQueue && len(wb.files) == 0 && len(wb.cur) == 0
	if q.tokens > wb.o.EnqueuedTokens {
		return false, field.Errorf("%w: %d tokens, cap %d (raise {batch_enqueued_tokens})", ErrBatchCapacity, q.tokens, wb.o.EnqueuedTokens)
	}
	if (wb.roomReq < 1 || q.tokens > wb.roomTok) && !alone {
		// An empty queue takes one request even past a cap shrunk by
		// token_limit_exceeded: the provider's cap is at least a request.
		wb.full = true
		return false, nil
	}
	if len(wb.cur) > 0 && (wb.curReqs+1 > wb.o.MaxRequests || wb.curIn+len(q.chunks) > wb.o.MaxInputs ||
		wb.curBytes+q.bytes > wb.o.MaxFileBytes) {
		wb.seal()
	}
	wb.cur = append(wb.cur, q)
	wb.curReqs++
	wb.curIn += len(q.chunks)
	wb.curBytes += q.bytes
	wb.roomReq--
	wb.roomTok -= q.tokens
	return true, nil
}

func (wb *waveBuilder) seal() {
	if len(wb.cur) > 0 {
		wb.files = append(wb.files, wb.cur)
	}
	wb.cur, wb.curIn, wb.curReqs, wb.curBytes = nil, 0, 0, 0
}

// wave scans for chunks no batch holds, packs them with the sync path's
// packer, and journals as many batch files as the enqueue room allows. It
// returns how many batches it planned.
func (br *batchRun) wave(ctx context.Context) (int, error) {
	o := br.r.Opts
	var enqReq int
	var enqTok int64
	for _, b := range br.j.Batches() {
		if b.State != checkpoint.JournalIngested {
			enqReq += len(b.Requests)
			enqTok += b.Tokens
		}
	}
	wb := &waveBuilder{o: o, roomReq: o.EnqueuedRequests - enqReq, roomTok: br.tokenCap - enqTok, emptyQueue: enqReq == 0}
	if wb.roomReq <= 0 || wb.roomTok <= 0 {
		return 0, nil
	}
	spec := br.spec
	packer := NewPacker(spec.Model.MaxInputsPerRequest, spec.Model.MaxTokensPerRequest, spec.Limits.BatchSize, spec.Limits.TPM)
	var cur pendingReq
	leftover := int64(0)
	finish := func() error {
		if len(cur.chunks) == 0 {
			return nil
		}
		cur.bytes = int64(len(br.requestLine("b000000-r000000", cur.chunks)))
		ok, err := wb.add(cur)
		cur = pendingReq{}
		if err != nil {
			return err
		}
		if !ok {
			return errWaveFull
		}
		return nil
	}
	skip := func(k checkpoint.Key, sha string) bool {
		if _, ok := br.added[k]; ok || br.ix.Has(k, sha) {
			return true
		}
		_, ok := br.active[k]
		return ok
	}
	err := scanPending(ctx, spec, br.r.Rebuilder, skip, func(c chunkOut) error {
		if br.attempts[checkpoint.Key{DocID: c.docID, ChunkIndex: int32(c.index)}] >= o.MaxAttempts {
			leftover++ // tried by enough batches: sync takes it
			return nil
		}
		if packer.Add(c.tokens) {
			if err := finish(); err != nil {
				return err
			}
		}
		cur.chunks = append(cur.chunks, c)
		cur.tokens += int64(c.tokens)
		return nil
	})
	if err == nil {
		err = finish()
	}
	if err != nil && !errors.Is(err, errWaveFull) {
		return 0, fmt.Errorf("planning a batch wave: %w", err)
	}
	wb.seal()
	br.leftover = leftover
	if !wb.full {
		br.exhausted = true
	}
	if len(wb.files) == 0 {
		return 0, nil
	}
	br.waves++
	for _, f := range wb.files {
		if err := br.plan(ctx, f); err != nil {
			return 0, err
		}
	}
	br.r.log().Info("batch wave planned", "wave", br.waves, "batches", len(wb.files), "more_waiting", wb.full)
	return len(wb.files), nil
}

// plan journals one batch file: the request file, then the entry.
func (br *batchRun) plan(ctx context.Context, reqs []pendingReq) error {
	key := br.j.NextKey()
	jb := &checkpoint.JournalBatch{Key: key, Wave: br.waves}
	var file bytes.Buffer
	for i, q := range reqs {
		id := fmt.Sprintf("%s-r%06d", key, i+1)
		file.Write(br.requestLine(id, q.chunks))
		jr := checkpoint.JournalRequest{CustomID: id}
		for _, c := range q.chunks {
			jr.Chunks = append(jr.Chunks, checkpoint.JournalChunk{DocID: c.docID, ChunkIndex: int32(c.index), SHA256: c.sha, Tokens: int32(c.tokens)})
		}
		jb.Requests = append(jb.Requests, jr)
		jb.Tokens += q.tokens
		jb.Inputs += len(q.chunks)
	}
	if err := br.j.Plan(ctx, jb, file.Bytes()); err != nil {
		return err
	}
	for _, q := range reqs {
		for _, c := range q.chunks {
			br.active[checkpoint.Key{DocID: c.docID, ChunkIndex: int32(c.index)}] = struct{}{}
		}
	}
	return nil
}

// requestLine is one JSONL line of a batch input file, newline included.
func (br *batchRun) requestLine(id string, chunks []chunkOut) []byte {
	body := embedder.BatchRequestBody{Model: br.spec.Model.Name, EncodingFormat: "base64"}
	if !br.spec.Model.FixedDimensions {
		body.Dimensions = br.spec.Dimensions
	}
	for _, c := range chunks {
		body.Input = append(body.Input, c.text)
	}
	b, _ := json.Marshal(embedder.BatchRequestLine{CustomID: id, Method: "POST", URL: "/v1/embeddings", Body: body})
	return append(b, '\n')
}
