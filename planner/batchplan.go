package planner

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/pricing"
)

// Default batch latency assumptions of the auto plan: OpenRouter observed a
// median of 7 minutes and 90% within an hour across 230k+ batches
// (shared/reference/batch-api.md); the worst case is the 24 h window.
const (
	DefaultBatchP50    = 7 * time.Minute
	DefaultBatchP90    = time.Hour
	DefaultBatchWindow = 24 * time.Hour
)

// AutoOptions are the assumptions of an auto plan.
type AutoOptions struct {
	// RTO is the time from the start of the run by which every chunk must be
	// checkpointed.
	RTO time.Duration
	// P50 and P90 are the assumed batch completion times; Window the
	// provider's completion window (default 24h).
	P50, P90, Window time.Duration
	// EnqueuedTokens is the enqueued-token cap: batches run in waves of at
	// most this many tokens (default tier 1's).
	EnqueuedTokens int64
}

func (o *AutoOptions) fill() {
	if o.P50 <= 0 {
		o.P50 = DefaultBatchP50
	}
	if o.P90 < o.P50 {
		o.P90 = max(o.P50, DefaultBatchP90)
	}
	if o.Window <= 0 {
		o.Window = DefaultBatchWindow
	}
	if o.EnqueuedTokens <= 0 {
		o.EnqueuedTokens = EnqueuedTokensByTier[1]
	}
}

// BatchPlan is the cheapest split of a rebuild that meets the RTO: the slice
// that must go sync (the rest goes batch), the cost of each, and when it
// finishes.
type BatchPlan struct {
	RTOSeconds   float64        `json:"rto_seconds"`
	SyncFraction float64        `json:"sync_fraction"`
	SyncTokens   int64          `json:"sync_tokens"`
	BatchTokens  int64          `json:"batch_tokens"`
	SyncCost     pricing.Micros `json:"sync_cost_usd"`
	BatchCost    pricing.Micros `json:"batch_cost_usd"`
	TotalCost    pricing.Micros `json:"total_cost_usd"`
	AllSyncCost  pricing.Micros `json:"all_sync_cost_usd"`
	// BatchWaves is how many waves the enqueued-token cap imposes.
	BatchWaves int `json:"batch_waves"`
	// FallbackAtSeconds is when, if batches are not done, they are cancelled
	// and the rest goes sync (RTO minus the sync time of the batch slice).
	FallbackAtSeconds float64 `json:"fallback_at_seconds"`
	// Expected (batch p50), P90 and worst-case (fallback to sync) finish.
	ExpectedFinishSeconds float64 `json:"expected_finish_seconds"`
	P90FinishSeconds      float64 `json:"p90_finish_seconds"`
	WorstFinishSeconds    float64 `json:"worst_finish_seconds"`
	// WorstCost is the cost when every batch misses the fallback time.
	WorstCost pricing.Micros `json:"worst_cost_usd"`
	MeetsRTO  bool           `json:"meets_rto"`
	AtRisk    string         `json:"at_risk"`
}

// PlanBatchSplit chooses the smallest sync fraction f such that the batch
// slice, in waves under the enqueued-token cap at the p90 latency, finishes
// before the fallback time RTO − (1−f)·T/S (S: the sync throughput of the
// estimate), so that even if every batch fails the sync path still meets the
// RTO whenever all-sync would. With an RTO past the window, f is 0.
func PlanBatchSplit(me ModelEstimate, o AutoOptions) BatchPlan {
	o.fill()
	T := float64(me.Tokens)
	syncSec := me.DurationSeconds
	rto := o.RTO.Seconds()
	batchPrice := me.PricePer1M
	if me.BatchPricePer1M != nil {
		batchPrice = *me.BatchPricePer1M
	}
	waves := func(tokens float64) int { return int(math.Ceil(tokens / float64(o.EnqueuedTokens))) }
	ok := func(f float64) bool {
		bt := (1 - f) * T
		if syncSec > rto {
			return false // no fallback can guarantee the RTO
		}
		if bt <= 0 {
			return true
		}
		fallbackAt := rto - (1-f)*syncSec
		return float64(waves(bt))*o.P90.Seconds() <= fallbackAt && f*syncSec <= fallbackAt
	}
	// When sync alone cannot meet the RTO no fallback can guarantee it: then
	// take the split whose p90 finish meets it, or else the fastest.
	p90Finish := func(f float64) float64 {
		return max(f*syncSec, float64(waves((1-f)*T))*o.P90.Seconds())
	}
	f, found := 1.0, false
	for _, cond := range []func(float64) bool{ok, func(f float64) bool { return p90Finish(f) <= rto }} {
		for i := 0; i <= 1000 && !found; i++ {
			if c := float64(i) / 1000; cond(c) {
				f, found = c, true
			}
		}
	}
	if !found {
		for i := 0; i <= 1000; i++ {
			if c := float64(i) / 1000; p90Finish(c) < p90Finish(f) {
				f = c
			}
		}
	}
	p := BatchPlan{RTOSeconds: rto, SyncFraction: f, SyncTokens: int64(math.Round(f * T))}
	p.BatchTokens = me.Tokens - p.SyncTokens
	p.SyncCost = pricing.Cost(p.SyncTokens, me.PricePer1M)
	p.BatchCost = pricing.Cost(p.BatchTokens, batchPrice)
	p.TotalCost = p.SyncCost + p.BatchCost
	p.AllSyncCost = me.CostUSD
	p.WorstCost = pricing.Cost(me.Tokens, me.PricePer1M)
	p.BatchWaves = waves(float64(p.BatchTokens))
	syncPart := f * syncSec
	p.FallbackAtSeconds = rto - (1-f)*syncSec
	p.ExpectedFinishSeconds = max(syncPart, float64(p.BatchWaves)*o.P50.Seconds())
	p.P90FinishSeconds = max(syncPart, float64(p.BatchWaves)*o.P90.Seconds())
	p.WorstFinishSeconds = max(syncSec, p.FallbackAtSeconds+(1-f)*syncSec)
	switch {
	case p.BatchTokens == 0:
		p.FallbackAtSeconds, p.WorstFinishSeconds = 0, syncSec
	case syncSec > rto:
		// No fallback is armed: sync could not finish in time anyway. The
		// worst case is a batch that expires with nothing done.
		p.FallbackAtSeconds = 0
		p.WorstFinishSeconds = max(syncPart, o.Window.Seconds()) + (1-f)*syncSec
	}
	p.MeetsRTO = p.WorstFinishSeconds <= rto || p.BatchTokens > 0 && p.P90FinishSeconds <= rto && syncSec > rto
	switch {
	case p.BatchTokens == 0:
		p.AtRisk = "nothing: the RTO leaves no room for batch latency, everything goes sync"
	case syncSec > rto:
		p.AtRisk = fmt.Sprintf("sync alone cannot meet the RTO (%s); if batches take longer than the RTO, %d tokens finish late", formatDuration(syncSec), p.BatchTokens)
	default:
		p.AtRisk = fmt.Sprintf("the saving only: if batches are not done %s after the start, %d tokens go sync for $%s more (the RTO is still met)",
			formatDuration(p.FallbackAtSeconds), p.BatchTokens, p.WorstCost-p.TotalCost)
	}
	return p
}

// inSyncSlice reports whether a document belongs to the sync slice of
// fraction f: a stable hash of its id, so a restarted run picks the same.
func inSyncSlice(docID string, f float64) bool {
	h := fnv.New64a()
	h.Write([]byte(docID))
	return float64(h.Sum64()%1_000_000) < f*1_000_000
}

// RunAuto runs the auto plan: it submits the batch slice, embeds the sync
// slice meanwhile, then waits for the batches with the deadline fallback
// armed (start + RTO, with the estimate's sync throughput), and finishes
// what batches did not embed on sync. Each chunk is paid once.
func RunAuto(ctx context.Context, br *BatchRunner, spec RebuildSpec, o AutoOptions) (*Summary, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	start := br.now()
	o.EnqueuedTokens = br.Opts.EnqueuedTokens
	ix, err := checkpoint.Scan(ctx, br.Store, checkpoint.ScanOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint to plan: %w", err)
	}
	estReq := spec.estimateRequest()
	estReq.Done = doneFunc(ix)
	est, err := Run(ctx, br.Tokenizer, estReq)
	if err != nil {
		return nil, fmt.Errorf("planning the auto split: %w", err)
	}
	me := est.Estimates[0]
	plan := PlanBatchSplit(me, o)
	br.log().Info("auto plan", "sync_fraction", plan.SyncFraction, "sync_tokens", plan.SyncTokens, "batch_tokens", plan.BatchTokens,
		"cost_usd", plan.TotalCost.String(), "all_sync_usd", plan.AllSyncCost.String(), "at_risk", plan.AtRisk)
	f := plan.SyncFraction
	withKeep := func(keepSync bool) RebuildSpec {
		s := spec
		prev := s.Corpus.Keep
		s.Corpus.Keep = func(id string) bool {
			return (prev == nil || prev(id)) && inSyncSlice(id, f) == keepSync
		}
		return s
	}
	deadline := time.Time{}
	if me.DurationSeconds <= o.RTO.Seconds() {
		// The fallback is armed only when sync can still meet the RTO.
		deadline = start.Add(o.RTO)
	}
	first := *br
	first.Opts.SubmitOnly, first.Opts.Mode, first.Opts.Plan = true, ModeAuto, &plan
	first.Opts.Deadline = deadline // shown in progress; acted on by the last pass only (no SyncTokensPerSec here)
	var batchView *BatchProgress
	if f < 1 {
		sub, err := first.Run(ctx, withKeep(false))
		if err != nil {
			return sub, err // the budget, an interrupt or a failure: classified in sub
		}
		batchView = sub.Batch
	}
	var syncSum *Summary
	if f > 0 {
		syncRb := *br.Rebuilder
		if report := syncRb.OnProgress; report != nil && batchView != nil {
			// The sync slice's progress shows the batches submitted meanwhile.
			syncRb.OnProgress = func(p Progress) { p.Batch = batchView; report(p) }
		}
		if syncSum, err = syncRb.Run(ctx, withKeep(true)); err != nil {
			return syncSum, err
		}
	}
	last := *br
	last.Opts.Mode, last.Opts.Plan = ModeAuto, &plan
	if me.DurationSeconds > 0 {
		last.Opts.SyncTokensPerSec = float64(me.Tokens) / me.DurationSeconds
	} else {
		last.Opts.SyncTokensPerSec = math.Inf(1)
	}
	last.Opts.Deadline = deadline
	sum, err := last.Run(ctx, spec)
	if sum != nil {
		sum.Batch.Mode = ModeAuto
		sum.Batch.Plan = &plan
		if syncSum != nil {
			sum.Batch.SyncChunks += syncSum.EmbeddedChunks
			sum.Batch.SyncTokens += syncSum.BilledTokens
			sum.Batch.SyncCost += syncSum.Cost
			sum.EmbeddedChunks += syncSum.EmbeddedChunks
			sum.BilledTokens += syncSum.BilledTokens
			sum.Cost += syncSum.Cost
			sum.Requests += syncSum.Requests
		}
	}
	return sum, err
}
