package main

import (
	"flag"
	"time"

	"github.com/reembed/reembed/embedder"
)

// batchSimFlags are simulate's flags for the Files and Batches API. The
// defaults finish a batch in about a second so that drills and tests stay
// quick; realistic figures are minutes to hours (--batch-p50 7m --batch-p90 1h,
// OpenRouter's observed figures, shared/reference/batch-api.md).
type batchSimFlags struct {
	p50, p90, window time.Duration
	failRate         float64
	enqueuedRequests int
	enqueuedTokens   int64
	maxRequests      int
	maxInputs        int
	maxFileBytes     int64
}

func registerBatchSimFlags(fs *flag.FlagSet) *batchSimFlags {
	f := &batchSimFlags{}
	fs.DurationVar(&f.p50, "batch-p50", 300*time.Millisecond, "median time a batch takes to complete (log-normal with --batch-p90)")
	fs.DurationVar(&f.p90, "batch-p90", time.Second, "90th percentile of the time a batch takes to complete")
	fs.DurationVar(&f.window, "batch-window", 24*time.Hour, "completion window: a slower batch expires with the work it finished")
	fs.Float64Var(&f.failRate, "batch-fail-rate", 0, "share of batch requests that fail (500 in the error file), in [0, 1]")
	fs.IntVar(&f.enqueuedRequests, "batch-max-enqueued-requests", embedder.MaxEnqueuedRequests, "enqueued embedding requests cap (more: the batch fails request_limit_exceeded)")
	fs.Int64Var(&f.enqueuedTokens, "batch-max-enqueued-tokens", 0, "enqueued tokens cap, e.g. 3000000 for tier 1 (more: token_limit_exceeded; 0: none)")
	fs.IntVar(&f.maxRequests, "batch-max-requests", embedder.MaxBatchRequests, "requests per batch (more: too_many_tasks)")
	fs.IntVar(&f.maxInputs, "batch-max-inputs", embedder.MaxBatchInputs, "embedding inputs per batch (more: too_many_tasks)")
	fs.Int64Var(&f.maxFileBytes, "batch-max-file-bytes", embedder.MaxBatchFileBytes, "bytes per uploaded batch file")
	return f
}

func (f *batchSimFlags) config(seed uint64) embedder.BatchSimConfig {
	return embedder.BatchSimConfig{CompletionP50: f.p50, CompletionP90: f.p90, Window: f.window, FailRate: f.failRate,
		MaxEnqueuedRequests: f.enqueuedRequests, MaxEnqueuedTokens: f.enqueuedTokens,
		MaxRequests: f.maxRequests, MaxInputs: f.maxInputs, MaxFileBytes: f.maxFileBytes, Seed: seed}
}
