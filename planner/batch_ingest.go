package planner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
)

// advance moves one journaled batch one step on: upload, create (or
// re-attach), poll, ingest. Every step that creates something at the
// provider is preceded by a durable journal commit. It reports whether the
// batch moved.
func (br *batchRun) advance(ctx context.Context, b *checkpoint.JournalBatch) (bool, error) {
	api, j := br.r.API, br.j
	if br.fellBack && (b.State == checkpoint.JournalPlanned || b.State == checkpoint.JournalUploaded) {
		b.Status = "not_submitted" // after the fallback nothing new is created: sync takes these chunks
		return true, br.settle(ctx, b, 0)
	}
	if br.budgetHit && (b.State == checkpoint.JournalPlanned || b.State == checkpoint.JournalUploaded) {
		return false, nil // not created: a run with a higher budget takes it on
	}
	switch b.State {
	case checkpoint.JournalPlanned:
		// Files have no metadata to find them by; a crash after this upload
		// and before the save below leaves an orphan file, which costs nothing.
		data, err := j.RequestFile(ctx, b.Key)
		if err != nil {
			return false, err
		}
		f, err := api.UploadBatchFile(ctx, fmt.Sprintf("reembed-%s-%s.jsonl", j.ID(), b.Key), data)
		if err != nil {
			return false, err
		}
		b.FileID, b.State = f.ID, checkpoint.JournalUploaded
		return true, j.Save(ctx, b)
	case checkpoint.JournalUploaded, checkpoint.JournalCreating:
		return true, br.create(ctx, b)
	case checkpoint.JournalSubmitted:
		now := br.r.now()
		if t, ok := br.nextPoll[b.Key]; ok && now.Before(t) {
			return false, nil
		}
		obj, err := api.RetrieveBatch(ctx, b.BatchID)
		if err != nil {
			return false, err
		}
		changed := obj.Status != b.Status
		b.Status = obj.Status
		if !embedder.BatchTerminal(obj.Status) {
			iv := br.interval[b.Key]
			if iv == 0 || changed {
				iv = br.r.Opts.PollMin
			} else {
				iv = min(2*iv, br.r.Opts.PollMax)
			}
			br.interval[b.Key], br.nextPoll[b.Key] = iv, now.Add(iv)
			return false, nil
		}
		delete(br.nextPoll, b.Key)
		return true, br.ingest(ctx, b, obj)
	}
	return false, nil
}

// batchMetaKey tags a batch with "CHECKPOINT_ID/KEY", so that a restarted
// process finds the batch it may have created before a crash.
const batchMetaKey = "reembed_batch"

// create creates the batch of an uploaded file, unless a batch tagged for it
// exists already (a crash after the create call and before its journal save).
func (br *batchRun) create(ctx context.Context, b *checkpoint.JournalBatch) error {
	tag := br.tag(b)
	var obj *embedder.BatchObject
	if b.State == checkpoint.JournalCreating {
		found, err := br.r.API.FindBatch(ctx, batchMetaKey, tag)
		if err != nil {
			return err
		}
		obj = found
		if found != nil {
			br.r.log().Info("re-attached to a batch created before a restart", "key", b.Key, "batch_id", found.ID)
		}
	}
	if obj == nil {
		if ok, err := br.reserve(ctx, b); err != nil || !ok {
			return err
		}
		b.State = checkpoint.JournalCreating
		if err := br.j.Save(ctx, b); err != nil {
			return err
		}
		var err error
		obj, err = br.r.API.CreateBatch(ctx, b.FileID, map[string]string{batchMetaKey: tag,
			"reembed_checkpoint": br.j.ID(), "reembed_wave": fmt.Sprint(b.Wave)})
		if err != nil {
			return err
		}
	}
	b.BatchID, b.Status, b.State = obj.ID, obj.Status, checkpoint.JournalSubmitted
	return br.j.Save(ctx, b)
}

// ingest commits a finished batch's output as parts, reconciles every
// custom_id, and marks the batch ingested. A crash part way re-ingests on
// restart; rows already committed are skipped, so no chunk is written twice.
func (br *batchRun) ingest(ctx context.Context, b *checkpoint.JournalBatch, obj *embedder.BatchObject) error {
	b.Errors = nil
	if obj.Errors != nil {
		for _, e := range obj.Errors.Data {
			b.Errors = append(b.Errors, e.Code)
		}
	}
	if limitError(b.Errors) {
		br.shrinkCap(b)
		br.r.log().Warn("batch refused for an enqueue cap: shrinking the wave", "key", b.Key, "errors", b.Errors, "enqueued_token_cap", br.tokenCap)
	}
	reqs := make(map[string]*checkpoint.JournalRequest, len(b.Requests))
	for i := range b.Requests {
		reqs[b.Requests[i].CustomID] = &b.Requests[i]
	}
	texts, err := br.requestTexts(ctx, b.Key)
	if err != nil {
		return err
	}
	at := time.Now().UTC()
	if obj.CompletedAt != nil {
		at = time.Unix(*obj.CompletedAt, 0).UTC()
	}
	seen := map[string]bool{}
	completed, usage, counted := 0, int64(0), int64(0)
	if obj.OutputFileID != nil {
		err := br.readLines(ctx, *obj.OutputFileID, func(l embedder.BatchOutputLine) error {
			q := reqs[l.CustomID]
			if q == nil || seen[l.CustomID] || l.Response == nil || l.Response.StatusCode != 200 {
				return nil // unknown or duplicate custom_id, or a failure in the output file: reconciled below
			}
			n, err := br.commitRequest(ctx, q, texts[l.CustomID], l.Response.Body, at)
			if err != nil {
				return fmt.Errorf("batch %s, %s: %w", b.Key, l.CustomID, err)
			}
			seen[l.CustomID] = true
			completed++
			usage += n
			for _, c := range q.Chunks {
				counted += int64(c.Tokens)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	failed := 0
	if obj.ErrorFileID != nil {
		err := br.readLines(ctx, *obj.ErrorFileID, func(l embedder.BatchOutputLine) error {
			if reqs[l.CustomID] != nil && !seen[l.CustomID] {
				seen[l.CustomID] = true
				failed++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := br.w.Flush(ctx); err != nil {
		return fmt.Errorf("committing the output of batch %s: %w", b.Key, err)
	}
	b.Completed, b.Failed, b.Missing = completed, failed, len(b.Requests)-len(seen)
	b.Billed = usage
	if obj.Usage != nil {
		b.Billed = obj.Usage.InputTokens
	}
	br.completed += completed
	br.failed += failed
	br.missing += b.Missing
	br.billed += b.Billed
	return br.settle(ctx, b, counted)
}

// settle marks an ingested batch, settles its spend (counted: our count of
// its completed requests' tokens), frees its chunks, and counts the attempt
// of those it did not embed. The journal is saved before the ledger is
// settled: a kill between the two leaves the reservation counted as spent
// (never less than was billed), never the batch settled twice.
func (br *batchRun) settle(ctx context.Context, b *checkpoint.JournalBatch, counted int64) error {
	b.State = checkpoint.JournalIngested
	if err := br.j.Save(ctx, b); err != nil {
		return err
	}
	if err := br.settleSpend(ctx, b, counted); err != nil {
		return err
	}
	if err := br.j.DropRequestFile(ctx, b.Key); err != nil {
		br.r.log().Warn("could not remove an ingested request file", "key", b.Key, "error", err)
	}
	for _, q := range b.Requests {
		for _, c := range q.Chunks {
			k := checkpoint.Key{DocID: c.DocID, ChunkIndex: c.ChunkIndex}
			delete(br.active, k)
			if _, ok := br.added[k]; !ok && !br.ix.Has(k, c.SHA256) {
				if !limitError(b.Errors) {
					br.attempts[k]++
				}
				br.exhausted = false
			}
		}
	}
	br.r.log().Info("batch ingested", "key", b.Key, "status", b.Status, "completed", b.Completed, "failed", b.Failed,
		"missing", b.Missing, "billed_tokens", b.Billed, "errors", b.Errors)
	return nil
}

// shrinkCap lowers the enqueued-token cap after the provider refused b for
// it: the provider's cap is below what was enqueued with b, so aim at half
// of that, but never below b's largest request.
func (br *batchRun) shrinkCap(b *checkpoint.JournalBatch) {
	var others, largest int64
	for _, o := range br.j.Batches() {
		if o != b && o.State != checkpoint.JournalIngested {
			others += o.Tokens
		}
	}
	for _, q := range b.Requests {
		var n int64
		for _, c := range q.Chunks {
			n += int64(c.Tokens)
		}
		largest = max(largest, n)
	}
	br.tokenCap = max(largest, min(br.tokenCap, others+b.Tokens)/2, 1)
}

// requestTexts reads a batch's request file back: custom_id → input texts.
func (br *batchRun) requestTexts(ctx context.Context, key string) (map[string][]string, error) {
	data, err := br.j.RequestFile(ctx, key)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytesReader(data))
	sc.Buffer(nil, embedder.MaxBatchFileBytes)
	for sc.Scan() {
		var l embedder.BatchRequestLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("reading the request file of batch %s: %w", key, err)
		}
		out[l.CustomID] = l.Body.Input
	}
	return out, sc.Err()
}

// readLines streams a result file's JSONL lines to f.
func (br *batchRun) readLines(ctx context.Context, fileID string, f func(embedder.BatchOutputLine) error) error {
	rc, err := br.r.API.FileContent(ctx, fileID)
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(nil, 512<<20)
	for sc.Scan() {
		var l embedder.BatchOutputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("decoding a line of file %s: %w", fileID, err)
		}
		if err := f(l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading file %s: %w", fileID, err)
	}
	return nil
}

// commitRequest decodes one request's embeddings and adds the rows of the
// chunks not already committed; it returns the request's billed tokens.
func (br *batchRun) commitRequest(ctx context.Context, q *checkpoint.JournalRequest, texts []string, body []byte, at time.Time) (int64, error) {
	vecs, usage, err := decodeEmbeddings(body)
	if err != nil {
		return 0, err
	}
	if len(vecs) != len(q.Chunks) || len(texts) != len(q.Chunks) {
		return 0, fmt.Errorf("%d vectors and %d texts for %d chunks", len(vecs), len(texts), len(q.Chunks))
	}
	dims := br.spec.dimensions()
	for i, c := range q.Chunks {
		k := checkpoint.Key{DocID: c.DocID, ChunkIndex: c.ChunkIndex}
		if _, ok := br.added[k]; ok || br.ix.Has(k, c.SHA256) {
			continue
		}
		if len(vecs[i]) != dims {
			return 0, fmt.Errorf("a %d-dimension vector for %s#%d, want %d", len(vecs[i]), c.DocID, c.ChunkIndex, dims)
		}
		row := checkpoint.Row{DocID: c.DocID, ChunkIndex: c.ChunkIndex, ChunkSHA256: c.SHA256, Text: texts[i],
			Tokens: c.Tokens, Model: br.spec.Model.Name, Embedding: vecs[i], EmbeddedAt: at}
		if err := br.w.Add(ctx, row); err != nil {
			return 0, fmt.Errorf("writing checkpoint: %w", err)
		}
		br.added[k] = struct{}{}
		br.embedded++
	}
	return usage, nil
}

// decodeEmbeddings decodes an embeddings response body, float or base64.
func decodeEmbeddings(body []byte) ([][]float32, int64, error) {
	var resp struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, 0, fmt.Errorf("decoding an embeddings response: %w", err)
	}
	out := make([][]float32, len(resp.Data))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(out) || out[d.Index] != nil {
			return nil, 0, fmt.Errorf("embedding index %d out of range or repeated", d.Index)
		}
		v, err := decodeVector(d.Embedding)
		if err != nil {
			return nil, 0, err
		}
		out[d.Index] = v
	}
	return out, resp.Usage.PromptTokens, nil
}

func decodeVector(raw json.RawMessage) ([]float32, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decoding a base64 embedding: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b)%4 != 0 {
			return nil, errors.New("decoding a base64 embedding: not little-endian float32s")
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v, nil
	}
	var v []float32
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decoding an embedding: %w", err)
	}
	return v, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
