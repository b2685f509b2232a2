package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// batchFlags are rebuild's flags for --mode batch|auto.
type batchFlags struct {
	mode             string
	tier             int
	enqueuedTokens   int64
	enqueuedRequests int
	maxRequests      int
	maxInputs        int
	maxFileBytes     int64
	pollMin, pollMax time.Duration
	maxAttempts      int
	rto              time.Duration
	p50, p90         time.Duration
}

func (b *batchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.mode, "mode", planner.ModeSync, "sync (embeddings endpoint), batch (Batch API at the batch price, journaled in the checkpoint) or auto (the slice --rto needs sync, the rest batch, deadline fallback to sync)")
	fs.IntVar(&b.tier, "batch-tier", 1, "usage tier (1-5): sets the default --batch-enqueued-tokens (3M, 20M, 100M, 500M, 4B tokens for text-embedding-3-*)")
	fs.Int64Var(&b.enqueuedTokens, "batch-enqueued-tokens", 0, "enqueued-token cap of the organization (default: the --batch-tier's); token_limit_exceeded lowers it at run time")
	fs.IntVar(&b.enqueuedRequests, "batch-enqueued-requests", embedder.MaxEnqueuedRequests, "enqueued embedding requests cap")
	fs.IntVar(&b.maxRequests, "batch-max-requests", embedder.MaxBatchRequests, "requests per batch file")
	fs.IntVar(&b.maxInputs, "batch-max-inputs", embedder.MaxBatchInputs, "embedding inputs per batch file")
	fs.Int64Var(&b.maxFileBytes, "batch-max-file-bytes", embedder.MaxBatchFileBytes, "bytes per batch file")
	fs.DurationVar(&b.pollMin, "batch-poll-min", time.Second, "first poll interval of a batch (doubles while nothing changes)")
	fs.DurationVar(&b.pollMax, "batch-poll-max", time.Minute, "longest poll interval")
	fs.IntVar(&b.maxAttempts, "batch-max-attempts", 2, "batches that may try a chunk before it goes to sync")
	fs.DurationVar(&b.rto, "rto", 0, "auto: recovery time objective from the start of the run, e.g. 4h (required for --mode auto)")
	fs.DurationVar(&b.p50, "batch-p50", planner.DefaultBatchP50, "auto: assumed median batch completion time (OpenRouter observed 7m)")
	fs.DurationVar(&b.p90, "batch-p90", planner.DefaultBatchP90, "auto: assumed 90th-percentile batch completion time (observed 1h; worst case is the 24h window)")
}

func (b *batchFlags) check() error {
	switch b.mode {
	case planner.ModeSync, planner.ModeBatch, planner.ModeAuto:
	default:
		return usagef("--mode %q: want sync, batch or auto", b.mode)
	}
	if _, ok := planner.EnqueuedTokensByTier[b.tier]; !ok {
		return usagef("--batch-tier %d: want 1 to 5", b.tier)
	}
	if b.mode == planner.ModeAuto && b.rto <= 0 {
		return usagef("--mode auto needs --rto, e.g. --rto 4h")
	}
	if b.p50 <= 0 || b.p90 < b.p50 {
		return usagef("--batch-p50 and --batch-p90 must be positive with p90 >= p50")
	}
	return nil
}

func (b *batchFlags) options() planner.BatchOptions {
	tok := b.enqueuedTokens
	if tok <= 0 {
		tok = planner.EnqueuedTokensByTier[b.tier]
	}
	return planner.BatchOptions{MaxRequests: b.maxRequests, MaxInputs: b.maxInputs, MaxFileBytes: b.maxFileBytes,
		EnqueuedRequests: b.enqueuedRequests, EnqueuedTokens: tok, PollMin: b.pollMin, PollMax: b.pollMax,
		MaxAttempts: b.maxAttempts}
}

// runBatchMode runs a rebuild in batch or auto mode.
func (f *rebuildFlags) runBatchMode(ctx context.Context, e *env, rb *planner.Rebuilder, spec planner.RebuildSpec, model pricing.Model) (*planner.Summary, error) {
	if model.BatchPricePer1M == nil {
		return nil, usagef("--mode %s: %s has no batch price in the catalog", f.batch.mode, model.Name)
	}
	api, stop, err := f.batchAPI(ctx, e, model)
	if err != nil {
		return nil, err
	}
	defer stop()
	br := &planner.BatchRunner{Rebuilder: rb, API: api, Opts: f.batch.options()}
	if f.batch.mode == planner.ModeBatch {
		return br.Run(ctx, spec)
	}
	return planner.RunAuto(ctx, br, spec, planner.AutoOptions{RTO: f.batch.rto, P50: f.batch.p50, P90: f.batch.p90})
}

// batchAPI returns the Files and Batches client: the --base-url server's
// (OpenAI by default), or, with the in-process simulated provider, a
// simulator served on loopback for the run.
func (f *rebuildFlags) batchAPI(ctx context.Context, e *env, model pricing.Model) (planner.BatchAPI, func(), error) {
	p := f.provider
	switch p.provider {
	case "openai":
		if p.azureDeployment != "" {
			return nil, nil, usagef("--mode %s: Azure's batch API is not supported (embeddings support is unverified)", f.batch.mode)
		}
		base := p.baseURL
		if base == "" {
			base = "https://api.openai.com/v1"
		}
		return &embedder.BatchClient{BaseURL: base, APIKey: embedder.APIKey(e.getenv(p.apiKeyEnv))}, func() {}, nil
	case "simulated":
		sim, err := embedder.NewSimulator(modelSimulatorConfig(model))
		if err != nil {
			return nil, nil, err
		}
		url, stopServer, err := serveLoopback(ctx, sim)
		if err != nil {
			sim.Close()
			return nil, nil, fmt.Errorf("serving the simulated batch api: %w", err)
		}
		return &embedder.BatchClient{BaseURL: url}, func() { sim.Close(); stopServer() }, nil
	}
	return nil, nil, usagef("--provider %q: want simulated or openai", p.provider)
}

// writeBatchSummary adds the batch figures to the table summary.
func writeBatchSummary(w io.Writer, s *planner.Summary) {
	b := s.Batch
	if b == nil {
		return
	}
	fmt.Fprintf(w, "Batches: %v in %d waves; requests %d completed, %d failed, %d missing; enqueued-token cap %d\n",
		b.Batches, b.Waves, b.RequestsCompleted, b.RequestsFailed, b.RequestsMissing, b.EnqueuedTokenCap)
	if b.SyncChunks > 0 || b.FellBack {
		fmt.Fprintf(w, "Finished on sync: %d chunks, %d tokens, $%s (fell back at the deadline: %t)\n", b.SyncChunks, b.SyncTokens, b.SyncCost, b.FellBack)
	}
}
