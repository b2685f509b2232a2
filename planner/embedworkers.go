package planner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// embedWorkers take packed batches, reserve their cost in the checkpoint's
// spend ledger, embed them and turn the vectors into checkpoint rows.
//
// Shutdown rules:
//   - once the run is stopping no batch is sent: the workers drain their
//     input without embedding, so the producer is never left blocked;
//   - a batch whose reservation would pass the budget is not sent and stops
//     the run (budgetHit); a failure (a request failing for good, a wrong
//     answer, the ledger unwritable) stops it too (the first is kept);
//   - a request on the wire finishes under the stopper's wire context (the
//     grace period), its rows are passed on and its cost settled; a request
//     abandoned, or not sent because of the stop (embedder.ErrStopped), has
//     its reservation released and is no failure;
//   - run returns when the input is closed and drained; the caller then
//     closes the rows channel.
type embedWorkers struct {
	emb     embedder.Embedder
	ledger  *checkpoint.SpendLedger
	st      *state
	stop    *stopper
	log     *slog.Logger
	now     func() time.Time
	model   pricing.Model
	reqDims int   // dimensions to ask for; 0 = the model's
	dims    int   // dimensions every vector must have
	limit   int64 // budget in pico-dollars; 0 = none

	mu        sync.Mutex
	fatal     error
	budgetHit bool
}

// run embeds the batches of in with n workers, sending rows to out.
func (w *embedWorkers) run(n int, in <-chan *batch, out chan<- []checkpoint.Row) {
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for b := range in {
				if w.stop.stopping() {
					continue // drain
				}
				if rows := w.embed(b); rows != nil {
					out <- rows
				}
			}
		})
	}
	wg.Wait()
}

// fail records the first failure and stops the run.
func (w *embedWorkers) fail(err error) {
	w.mu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.mu.Unlock()
	w.st.setLastError(err.Error())
	w.stop.stop(err)
}

// result returns the first failure and whether the budget was reached.
func (w *embedWorkers) result() (fatal error, budgetHit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal, w.budgetHit
}

// embed reserves, sends and settles one batch; nil rows when it was not
// embedded.
func (w *embedWorkers) embed(b *batch) []checkpoint.Row {
	ctx := w.stop.wireCtx
	reserved, err := w.ledger.Reserve(ctx, checkpoint.PicoCost(int64(b.tokens), int64(w.model.PricePer1M)), w.limit)
	if err != nil {
		if errors.Is(err, checkpoint.ErrSpendLimit) {
			w.mu.Lock()
			w.budgetHit = true
			w.mu.Unlock()
			w.stop.stop(ErrBudgetExceeded)
		} else if ctx.Err() == nil {
			w.fail(err)
		}
		return nil
	}
	res, err := w.emb.Embed(ctx, &embedder.Request{Model: w.model.Name, Dimensions: w.reqDims, Inputs: b.inputs})
	if err != nil {
		w.ledger.Release(reserved)
		if errors.Is(err, embedder.ErrStopped) || ctx.Err() != nil ||
			(w.stop.stopping() && errors.Is(err, context.Canceled)) {
			return nil // not sent, or abandoned after the grace period
		}
		w.fail(fmt.Errorf("embedding %d chunks starting at %s#%d: %w", len(b.inputs), b.inputs[0].DocID, b.inputs[0].ChunkIndex, err))
		return nil
	}
	billed := w.usage(b, res.Usage)
	if res.RetriedTokens > 0 {
		// Unusable answers sent again were billed too.
		billed += int64(res.RetriedTokens)
		w.st.billed.Add(int64(res.RetriedTokens))
		w.log.Warn("the provider answered this batch with unusable vectors before a good answer; counting those answers as billed",
			"doc_id", b.inputs[0].DocID, "chunk_index", b.inputs[0].ChunkIndex, "retried_tokens", res.RetriedTokens)
	}
	if err := w.ledger.Settle(ctx, reserved, checkpoint.PicoCost(billed, int64(w.model.PricePer1M)), billed); err != nil {
		w.fail(err)
	}
	return w.rows(b, res)
}

// usage checks the provider's usage against our exact count and returns the
// tokens to settle: the larger of the two sane values. Usage is insane when
// it is missing, zero or negative, or more than the request's bytes plus
// four tokens per input (no tokenizer makes more tokens than bytes; models
// add a few special tokens per input), such as 2^62. A disagreement is
// logged with the first chunk of the batch and counted; both counts are
// reported in Progress.
func (w *embedWorkers) usage(b *batch, u embedder.Usage) int64 {
	ours := int64(b.tokens)
	theirs := int64(u.PromptTokens)
	if theirs <= 0 {
		theirs = int64(u.TotalTokens)
	}
	sane := theirs > 0 && theirs <= int64(b.bytes)+4*int64(len(b.inputs))
	billed := ours
	if sane {
		billed = max(ours, theirs)
		w.st.providerTokens.Add(theirs)
	}
	w.st.requests.Add(1)
	w.st.counted.Add(ours)
	w.st.billed.Add(billed)
	if theirs != ours {
		n := w.st.mismatches.Add(1)
		level := slog.LevelDebug
		if n <= 5 || !sane {
			level = slog.LevelWarn
		}
		w.log.Log(context.Background(), level, "provider usage disagrees with our token count; settling with the larger sane value",
			"doc_id", b.inputs[0].DocID, "chunk_index", b.inputs[0].ChunkIndex, "inputs", len(b.inputs),
			"our_tokens", ours, "provider_prompt_tokens", u.PromptTokens, "provider_total_tokens", u.TotalTokens,
			"provider_usage_sane", sane, "settled_tokens", billed)
	}
	return billed
}

// rows turns an answer into checkpoint rows, or fails the run when it does
// not match the batch.
func (w *embedWorkers) rows(b *batch, res *embedder.Result) []checkpoint.Row {
	// The embedder stack checks answers under its retries; this is for an Embedder without it.
	if err := embedder.CheckResult(&embedder.Request{Inputs: b.inputs}, res, w.dims); err != nil {
		w.fail(fmt.Errorf("embedding %d chunks starting at %s#%d: %w", len(b.inputs), b.inputs[0].DocID, b.inputs[0].ChunkIndex, err))
		return nil
	}
	at := res.Received
	if at.IsZero() {
		at = w.now()
	}
	out := make([]checkpoint.Row, len(b.inputs))
	for i, in := range b.inputs {
		out[i] = checkpoint.Row{DocID: in.DocID, ChunkIndex: int32(in.ChunkIndex), ChunkSHA256: b.shas[i], Text: in.Text,
			Tokens: int32(in.Tokens), Model: w.model.Name, Embedding: res.Vectors[i], EmbeddedAt: at.UTC()}
	}
	w.st.embedded.Add(int64(len(out)))
	return out
}
