package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// batchRun is one run of a BatchRunner: the open checkpoint, the journal and
// what this run did.
type batchRun struct {
	r    *BatchRunner
	spec RebuildSpec
	w    *checkpoint.Writer
	ix   *checkpoint.Index
	j    *checkpoint.Journal
	est  *ModelEstimate
	rec  checkpoint.Recovery

	added    map[checkpoint.Key]struct{} // committed by this run (the index is not updated by Add)
	active   map[checkpoint.Key]struct{} // in batches not yet ingested
	attempts map[checkpoint.Key]int      // batches that tried and did not embed the chunk
	tokenCap int64

	exhausted bool  // the last scan found nothing left for batches
	leftover  int64 // chunks the last scan left for sync
	fellBack  bool
	cancelled map[string]bool
	nextPoll  map[string]time.Time
	interval  map[string]time.Duration
	started   time.Time
	waves     int

	embedded, billed, parts, committed int64
	completed, failed, missing         int
	price                              pricing.Micros

	// The budget: each batch's predicted cost is reserved in the spend
	// ledger before it is created and settled when its output is ingested.
	ledger    *checkpoint.SpendLedger
	limit     int64 // pico-dollars; 0 = none
	budgetHit bool  // a batch was not created: the budget is reached
}

func (r *BatchRunner) open(ctx context.Context, spec RebuildSpec) (*batchRun, error) {
	r.Opts.fill()
	br := &batchRun{r: r, spec: spec, added: map[checkpoint.Key]struct{}{}, active: map[checkpoint.Key]struct{}{},
		attempts: map[checkpoint.Key]int{}, tokenCap: r.Opts.EnqueuedTokens, nextPoll: map[string]time.Time{},
		interval: map[string]time.Duration{}, cancelled: map[string]bool{}, started: r.now(), price: spec.Model.PricePer1M}
	if spec.Model.BatchPricePer1M != nil {
		br.price = *spec.Model.BatchPricePer1M
	}
	w, err := checkpoint.Open(ctx, r.Store, checkpoint.Options{Manifest: spec.Manifest(), Force: spec.Force,
		PartRows: spec.PartRows, Logger: r.log(), OnCommit: func(p checkpoint.PartInfo) {
			br.parts++
			br.committed += int64(p.Rows)
		}})
	if err != nil {
		return nil, err
	}
	br.w, br.ix, br.rec = w, w.Index(), w.Recovery()
	if br.j, err = checkpoint.OpenJournal(ctx, r.Store, spec.Shard); err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	estReq := spec.estimateRequest()
	estReq.Done = doneFunc(br.ix)
	plan, err := Run(ctx, r.Tokenizer, estReq)
	if err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("planning the batch rebuild: %w", err)
	}
	br.est = &plan.Estimates[0]
	if err := br.openLedger(ctx); err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, b := range br.j.Batches() {
		br.waves = max(br.waves, b.Wave)
		for _, q := range b.Requests {
			for _, c := range q.Chunks {
				k := checkpoint.Key{DocID: c.DocID, ChunkIndex: c.ChunkIndex}
				if b.State != checkpoint.JournalIngested {
					br.active[k] = struct{}{}
				} else if !br.ix.Has(k, c.SHA256) && !limitError(b.Errors) {
					br.attempts[k]++
				}
			}
		}
	}
	r.log().Info("batch rebuild opened", "checkpoint_id", br.j.ID(), "journaled_batches", len(br.j.Batches()),
		"in_flight_chunks", len(br.active), "chunks_to_embed", br.est.Chunks, "tokens", br.est.Tokens)
	return br, nil
}

// openLedger opens the checkpoint's spend ledger. Each batch's reservation
// is held in it under the batch's tag, so that a run killed at any moment
// leaves it findable: a batch the journal marks ingested whose reservation
// is still held (a kill between the two commits) is settled now, with what
// the journal says it billed.
func (br *batchRun) openLedger(ctx context.Context) error {
	l, err := checkpoint.OpenSpendLedger(ctx, br.r.Store, br.spec.Shard)
	if err != nil {
		return fmt.Errorf("opening the spend ledger: %w", err)
	}
	br.ledger, br.limit = l, checkpoint.PicoCost(int64(br.spec.Budget), 1_000_000)
	for _, b := range br.j.Batches() {
		if _, held := l.Held(br.tag(b)); held && b.State == checkpoint.JournalIngested {
			if err := l.SettleHeld(ctx, br.tag(b), checkpoint.PicoCost(b.Billed, int64(br.price)), b.Billed); err != nil {
				return err
			}
		}
	}
	return nil
}

// tag is b's identity at the provider and in the spend ledger:
// "CHECKPOINT_ID/KEY".
func (br *batchRun) tag(b *checkpoint.JournalBatch) string { return br.j.ID() + "/" + b.Key }

// reserve reserves b's predicted cost (its tokens at the batch price) in
// the spend ledger before b is created, held under b's tag: a run that
// re-attaches finds it held and does not reserve again. It reports false,
// reserving nothing, when that would pass the budget.
func (br *batchRun) reserve(ctx context.Context, b *checkpoint.JournalBatch) (bool, error) {
	_, err := br.ledger.ReserveHeld(ctx, br.tag(b), checkpoint.PicoCost(b.Tokens, int64(br.price)), br.limit)
	if errors.Is(err, checkpoint.ErrSpendLimit) {
		if !br.budgetHit {
			br.r.log().Warn("budget reached: no more batches are created", "key", b.Key, "tokens", b.Tokens,
				"budget_usd", br.spec.Budget.String())
		}
		br.budgetHit = true
		return false, nil
	}
	return err == nil, err
}

// settleSpend replaces b's held reservation by what it billed: the larger
// of the provider's usage and our count of its completed requests.
func (br *batchRun) settleSpend(ctx context.Context, b *checkpoint.JournalBatch, counted int64) error {
	billed := max(b.Billed, counted)
	if _, held := br.ledger.Held(br.tag(b)); !held && billed == 0 {
		return nil
	}
	return br.ledger.SettleHeld(ctx, br.tag(b), checkpoint.PicoCost(billed, int64(br.price)), billed)
}

// createdInFlight counts the batches that may exist at the provider and are
// not ingested.
func (br *batchRun) createdInFlight() int {
	n := 0
	for _, b := range br.j.Batches() {
		if b.State == checkpoint.JournalCreating || b.State == checkpoint.JournalSubmitted {
			n++
		}
	}
	return n
}

// limitError reports whether a batch failed for an enqueue cap: its chunks
// were not tried and do not count as an attempt.
func limitError(codes []string) bool {
	for _, c := range codes {
		if c == "token_limit_exceeded" || c == "request_limit_exceeded" {
			return true
		}
	}
	return false
}

// loop advances every batch, submits waves while there is room, and sleeps
// until the next poll, until nothing is left for batches.
func (br *batchRun) loop(ctx context.Context) error {
	lastReport := time.Time{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		progressed := false
		for _, b := range br.j.Batches() {
			if b.State == checkpoint.JournalIngested {
				continue
			}
			moved, err := br.advance(ctx, b)
			if err != nil {
				return err
			}
			progressed = progressed || moved
		}
		if err := br.checkDeadline(ctx); err != nil {
			return err
		}
		if !br.exhausted && !br.fellBack && !br.budgetHit {
			planned, err := br.wave(ctx)
			if err != nil {
				return err
			}
			progressed = progressed || planned > 0
		}
		if now := br.r.now(); br.r.OnProgress != nil && now.Sub(lastReport) >= max(br.r.ProgressInterval, time.Second) {
			br.r.report(br.progress("running"))
			lastReport = now
		}
		inFlight := br.inFlight()
		if inFlight == 0 && (br.exhausted || br.fellBack) {
			return nil
		}
		if br.budgetHit && (br.r.Opts.SubmitOnly || br.createdInFlight() == 0) {
			return nil // what was created is ingested; nothing more may be
		}
		if br.r.Opts.SubmitOnly && !progressed && br.allSubmitted() {
			return nil
		}
		if !progressed {
			if err := br.sleep(ctx); err != nil {
				return err
			}
		}
	}
}

func (br *batchRun) inFlight() int {
	n := 0
	for _, b := range br.j.Batches() {
		if b.State != checkpoint.JournalIngested {
			n++
		}
	}
	return n
}

func (br *batchRun) allSubmitted() bool {
	for _, b := range br.j.Batches() {
		if b.State != checkpoint.JournalIngested && b.State != checkpoint.JournalSubmitted {
			return false
		}
	}
	return true
}

// sleep waits until the earliest next poll (at most PollMax).
func (br *batchRun) sleep(ctx context.Context) error {
	now := br.r.now()
	wake := now.Add(br.r.Opts.PollMax)
	for _, t := range br.nextPoll {
		if t.Before(wake) {
			wake = t
		}
	}
	d := max(wake.Sub(now), 10*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkDeadline arms the fallback: when the time left before the deadline is
// less than what sync needs for the tokens still in batches, cancel them.
func (br *batchRun) checkDeadline(ctx context.Context) error {
	o := br.r.Opts
	if br.fellBack {
		return br.cancelAll(ctx)
	}
	if o.Deadline.IsZero() || o.SyncTokensPerSec <= 0 {
		return nil
	}
	var left int64
	for _, b := range br.j.Batches() {
		if b.State != checkpoint.JournalIngested {
			left += b.Tokens
		}
	}
	need := time.Duration(float64(left) / o.SyncTokensPerSec * float64(time.Second))
	if left == 0 || br.r.now().Add(need).Before(o.Deadline) {
		return nil
	}
	br.fellBack = true
	br.r.log().Warn("batches will not finish before the deadline: cancelling them and finishing on sync",
		"deadline", o.Deadline, "tokens_in_batches", left, "sync_needs", need)
	return br.cancelAll(ctx)
}

// cancelAll cancels every submitted batch still running (once each); a
// batch created after the fallback (it was being created) is cancelled too.
func (br *batchRun) cancelAll(ctx context.Context) error {
	for _, b := range br.j.Batches() {
		if b.State == checkpoint.JournalSubmitted && !embedder.BatchTerminal(b.Status) && !br.cancelled[b.Key] {
			if _, err := br.r.API.CancelBatch(ctx, b.BatchID); err != nil {
				return err
			}
			br.cancelled[b.Key] = true
			delete(br.nextPoll, b.Key)
		}
	}
	return nil
}

func (br *batchRun) progress(state string) Progress {
	p := Progress{State: state, PlannedChunks: br.est.Chunks, PlannedTokens: br.est.Tokens, PlannedRequests: br.est.Requests,
		PlannedCost: pricing.CostCeil(br.est.Tokens, br.price), ReusedChunks: br.est.ReusedChunks,
		EmbeddedChunks: br.embedded, CommittedChunks: br.committed, BilledTokens: br.billed,
		Requests: int64(br.completed), Cost: pricing.CostCeil(br.billed, br.price), Parts: int(br.parts),
		ElapsedSeconds: br.r.now().Sub(br.started).Seconds()}
	if br.ledger != nil {
		p.CheckpointCost = pricing.Micros((br.ledger.Total().TotalPico() + 500_000) / 1_000_000)
	}
	mode := br.r.Opts.Mode
	if mode == "" {
		mode = ModeBatch
	}
	bp := &BatchProgress{Mode: mode, Plan: br.r.Opts.Plan, Batches: map[string]int{}, Waves: br.waves, RequestsCompleted: br.completed,
		RequestsFailed: br.failed, RequestsMissing: br.missing, EnqueuedTokenCap: br.tokenCap, FellBack: br.fellBack,
		FallbackArmed: !br.r.Opts.Deadline.IsZero() && !br.fellBack}
	for _, b := range br.j.Batches() {
		st := b.Status
		if st == "" || b.State == checkpoint.JournalPlanned || b.State == checkpoint.JournalUploaded {
			st = b.State
		}
		bp.Batches[st]++
		if b.State != checkpoint.JournalIngested {
			bp.EnqueuedTokens += b.Tokens
		}
	}
	var next time.Time
	for _, t := range br.nextPoll {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !next.IsZero() {
		bp.NextPollAt = &next
	}
	if d := br.r.Opts.Deadline; !d.IsZero() {
		bp.Deadline = &d
	}
	p.Batch = bp
	return p
}

func (br *batchRun) summary() *Summary {
	s := &Summary{Progress: br.progress("ended"), Estimate: br.est, RemovedTempFiles: nonNil(br.rec.RemovedTemp),
		UnreadableParts: []string{}}
	s.PlannedCost = pricing.CostCeil(br.est.Tokens, br.price)
	for _, b := range br.rec.Unreadable {
		s.UnreadableParts = append(s.UnreadableParts, b.Name)
	}
	return s
}
