package planner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// ErrBudgetExceeded is the cause of a rebuild stopped because the next request
// would have spent past its budget. The checkpoint is committed and resumable.
var ErrBudgetExceeded = errors.New("budget exhausted")

// ErrInterrupted is the cause of a rebuild stopped by a signal or a cancel.
// The checkpoint is committed and resumable.
var ErrInterrupted = errors.New("interrupted")

// Defaults of a rebuild's commit policy: a crash loses at most the chunks
// embedded since the last commit: the rows buffered for the next part (fewer
// than DefaultPartRows, and at most DefaultFlushInterval of work), the part
// being committed in the background (DefaultPartRows), the batches queued for
// the writer ([RowsQueue]) and the requests in flight. Smaller values lose
// less on a crash but write more, smaller parts.
const (
	DefaultPartRows      = checkpoint.DefaultPartRows
	DefaultFlushInterval = 30 * time.Second
	DefaultGracePeriod   = 30 * time.Second
)

// Progress is a snapshot of a running rebuild. Planned figures come from the
// job's own estimate of what is left to embed.
type Progress struct {
	State           string         `json:"state"`
	PlannedChunks   int64          `json:"planned_chunks"`
	PlannedTokens   int64          `json:"planned_tokens"`
	PlannedRequests int64          `json:"planned_requests"`
	PlannedCost     pricing.Micros `json:"planned_cost_usd"`
	ReusedChunks    int64          `json:"reused_chunks"`
	EmbeddedChunks  int64          `json:"embedded_chunks"`
	CommittedChunks int64          `json:"committed_chunks"`
	// BilledTokens is what this run settled: for each answered request, the
	// larger of our exact count (CountedTokens) and the provider's reported
	// usage when that is sane (ProviderTokens sums those). UsageMismatches
	// counts the answers whose usage differed from our count, or was
	// missing, not positive or absurd. BilledTokens also counts, by our
	// count, answers that were billed but unusable and sent again.
	BilledTokens    int64 `json:"billed_tokens"`
	CountedTokens   int64 `json:"counted_tokens"`
	ProviderTokens  int64 `json:"provider_tokens"`
	UsageMismatches int64 `json:"usage_mismatches"`
	Requests        int64 `json:"requests"`
	// Cost is the exact cost of BilledTokens (rounded once, to the
	// micro-dollar), as the estimate and a provider's ledger compute it.
	Cost pricing.Micros `json:"cost_usd"`
	// CheckpointCost is what the checkpoint has spent over every run, this
	// one included, as its spend ledger counts it (requests cut off by a
	// kill count at their reservation). The budget caps it.
	CheckpointCost  pricing.Micros `json:"checkpoint_cost_usd"`
	Parts           int            `json:"parts_committed"`
	TokensPerSecond float64        `json:"tokens_per_second"`
	ETASeconds      *float64       `json:"eta_seconds"`
	ElapsedSeconds  float64        `json:"elapsed_seconds"`
	// CheckpointWaitSeconds is how long the run waited for checkpoint
	// commits: the store's share of the critical path (commits otherwise run
	// in the background while the next part fills). When it nears
	// ElapsedSeconds the store, not the provider, bounds the rebuild.
	CheckpointWaitSeconds float64 `json:"checkpoint_wait_seconds"`
	LastError             string  `json:"last_error,omitempty"`
	// Batch is the batch side of a rebuild in batch or auto mode.
	Batch *BatchProgress `json:"batch,omitempty"`
}

// Summary is the outcome of [Rebuilder.Run].
type Summary struct {
	Progress
	// Stopped says why the run ended: Outcome.State().
	Stopped string `json:"stopped"`
	// Outcome is why the run ended, typed.
	Outcome Outcome `json:"-"`
	// Recovery is what opening the checkpoint found and repaired.
	RemovedTempFiles []string `json:"removed_temp_files"`
	UnreadableParts  []string `json:"unreadable_parts"`
	// Estimate is the job's own estimate, made before embedding.
	Estimate *ModelEstimate `json:"estimate"`
}

// Rebuilder runs rebuild jobs. Its fields are its dependencies; it is safe to
// run several jobs with one Rebuilder when Embedder and Store allow it.
type Rebuilder struct {
	Embedder  embedder.Embedder
	Tokenizer tokenizer.Tokenizer
	Store     checkpoint.Store
	Logger    *slog.Logger
	// OnProgress, when set, receives a snapshot every ProgressInterval
	// (default 1s) and once at the end. It runs on its own goroutine.
	OnProgress       func(Progress)
	ProgressInterval time.Duration
	// OnStopping, when set, is called once, as soon as the run starts to
	// stop (ctx ended, budget reached, a failure; cause says which), with
	// the number of requests then on the wire: no other request starts.
	OnStopping func(cause error, inFlight int)
	// GracePeriod bounds how long requests in flight may finish after the
	// job was interrupted (default 30s); then they are abandoned.
	GracePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run executes the job until every chunk of the corpus is checkpointed, or
// ctx ends (ErrInterrupted), or the budget would be exceeded
// (ErrBudgetExceeded), or a request fails for good (a *embedder.ProviderError
// naming the chunk). In every case what was embedded is committed before Run
// returns, and running the same spec again resumes.
//
// The run is three stages joined by channels, each with its shutdown rules
// at its top: the [producer] (corpus to batches), the [embedWorkers]
// (budget, embed, rows) and the [committer] (parts); the [stopper] ends
// them in order.
func (r *Rebuilder) Run(ctx context.Context, spec RebuildSpec) (*Summary, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	now, logger := r.clock(), r.logger()
	started := now()
	st := &state{planned: &Progress{}, price: spec.Model.PricePer1M}
	w, err := checkpoint.Open(ctx, r.Store, checkpoint.Options{
		Manifest: spec.Manifest(), Force: spec.Force, PartRows: spec.PartRows, Logger: logger, Lock: true, Deep: spec.Deep,
		Pipeline: true, // encode and fsync a part while the next one fills
		OnCommit: st.onCommit,
	})
	if err != nil {
		return nil, err
	}
	defer w.Release() // one writer per checkpoint: freed even when the last commit failed
	abort := func(err error) (*Summary, error) {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	sum := newSummary(w.Recovery())
	if st.ledger, err = checkpoint.OpenSpendLedger(ctx, r.Store, spec.Shard); err != nil {
		return abort(fmt.Errorf("opening the spend ledger: %w", err))
	}
	prod, plan, err := r.newProducer(ctx, spec, w.Index())
	if err != nil {
		return abort(err)
	}
	defer prod.src.Close()
	sum.Estimate = plan
	st.plan(plan)
	logger.Info("rebuild planned", "chunks", plan.Chunks, "tokens", plan.Tokens, "requests", plan.Requests,
		"cost_usd", plan.CostUSD.String(), "reused_chunks", plan.ReusedChunks,
		"checkpoint_spent_usd", st.checkpointCost().String(), "budget_usd", spec.Budget.String())

	stop := newStopper(ctx, r.grace(), func(cause error, inFlight int) {
		logger.Info("rebuild stopping: no new request starts", "cause", fmt.Sprint(cause), "in_flight", inFlight)
		if r.OnStopping != nil {
			r.OnStopping(cause, inFlight)
		}
	})
	defer stop.close()
	endProgress := r.reportProgress(st, started, now)
	workers := r.newEmbedWorkers(spec, st, stop, logger, now)
	com := &committer{w: w, flushEvery: cmpDuration(spec.FlushInterval, DefaultFlushInterval), st: st, stop: stop.stop}

	batches := make(chan *batch, max(spec.Limits.Concurrency, 1))
	rows := make(chan []checkpoint.Row, RowsQueue(spec.Limits.Concurrency))
	prodDone := make(chan error, 1)
	go func() {
		err := prod.run(stop.stopCtx, batches)
		if err != nil {
			stop.stop(err)
		}
		prodDone <- err
	}()
	go func() {
		workers.run(spec.Limits.Concurrency, batches, rows)
		close(rows)
	}()
	writeErr := com.run(ctx, rows)
	prodErr := <-prodDone
	if err := st.ledger.Close(context.WithoutCancel(ctx)); err != nil && writeErr == nil {
		writeErr = err
	}
	endProgress()

	fatal, budgetHit := workers.result()
	if fatal == nil {
		fatal = prodErr
	}
	outcome, cause := runEnd{ctx: ctx, writeErr: writeErr, fatal: fatal, budgetHit: budgetHit}.classify()
	result := outcome.result(cause, budgetFacts{limit: spec.Budget, spent: st.checkpointCostCeil()})
	if result != nil {
		st.setLastError(result.Error())
	}
	sum.Outcome, sum.Stopped = outcome, outcome.State()
	sum.Progress = st.snapshot(now().Sub(started))
	sum.State = outcome.State()
	if r.OnProgress != nil {
		r.OnProgress(sum.Progress)
	}
	logger.Info("rebuild ended", "stopped", sum.Stopped, "embedded_chunks", sum.EmbeddedChunks,
		"billed_tokens", sum.BilledTokens, "requests", sum.Requests, "cost_usd", sum.Cost.String(),
		"checkpoint_cost_usd", sum.CheckpointCost.String(), "parts", sum.Parts)
	return sum, result
}

func (r *Rebuilder) clock() func() time.Time {
	if r.Now == nil {
		return time.Now
	}
	return r.Now
}

func (r *Rebuilder) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Rebuilder) grace() time.Duration { return cmpDuration(r.GracePeriod, DefaultGracePeriod) }

// cmpDuration returns d, or def when d is not positive.
func cmpDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// newSummary starts the summary with what opening the checkpoint repaired.
func newSummary(rec checkpoint.Recovery) *Summary {
	sum := &Summary{RemovedTempFiles: nonNil(rec.RemovedTemp), UnreadableParts: []string{}}
	for _, b := range rec.Unreadable {
		sum.UnreadableParts = append(sum.UnreadableParts, b.Name)
	}
	return sum
}

// newProducer plans what is left to embed (the job's own estimate, with the
// same code) and returns the producer that will read it.
func (r *Rebuilder) newProducer(ctx context.Context, spec RebuildSpec, ix *checkpoint.Index) (*producer, *ModelEstimate, error) {
	estReq := spec.estimateRequest()
	idMatch := newIDMatcher(ix)
	estReq.Done = idMatch.matchingDone(doneFunc(ix))
	plan, err := Run(ctx, r.Tokenizer, estReq)
	if err != nil {
		return nil, nil, fmt.Errorf("planning the rebuild: %w", err)
	}
	if warn := idMatch.result().Warning(); warn != "" && r.Logger != nil {
		r.Logger.Warn(warn, "corpus_roots", spec.Paths)
	}
	if spec.CheckCorpus != nil {
		if err := spec.CheckCorpus(plan.Corpus); err != nil {
			return nil, nil, err
		}
	}
	me := plan.Estimates[0]
	chunker, err := corpus.NewChunker(r.Tokenizer, effectiveSize(spec), effectiveOverlap(spec), spec.Model.MaxTokensPerInput)
	if err != nil {
		return nil, nil, err
	}
	src, err := corpus.Open(spec.Paths, estReq.Corpus)
	if err != nil {
		return nil, nil, err
	}
	return &producer{src: src, jobs: spec.Jobs, chunker: chunker, index: ix,
		packer: NewPacker(spec.Model.MaxInputsPerRequest, spec.Model.MaxTokensPerRequest, spec.Limits.BatchSize, spec.Limits.TPM)}, &me, nil
}

// newEmbedWorkers configures the embed stage of spec.
func (r *Rebuilder) newEmbedWorkers(spec RebuildSpec, st *state, stop *stopper, logger *slog.Logger, now func() time.Time) *embedWorkers {
	reqDims := spec.Dimensions
	if spec.Model.FixedDimensions {
		reqDims = 0
	}
	return &embedWorkers{emb: r.Embedder, ledger: st.ledger, st: st, stop: stop, log: logger, now: now,
		model: spec.Model, reqDims: reqDims, dims: spec.dimensions(), limit: checkpoint.PicoCost(int64(spec.Budget), 1_000_000)}
}

// reportProgress calls OnProgress every ProgressInterval until the returned
// func is called.
func (r *Rebuilder) reportProgress(st *state, started time.Time, now func() time.Time) (end func()) {
	if r.OnProgress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(cmpDuration(r.ProgressInterval, time.Second))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p := st.snapshot(now().Sub(started))
				p.State = "running"
				r.OnProgress(p)
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// RowsQueue is how many embedded batches may wait for the checkpoint writer.
// With it, what a crash can lose, embedded and paid but not committed, is at
// most PartRows-1 buffered rows, the PartRows rows of the part committing in
// the background, the batch the writer holds, and (RowsQueue + concurrency)
// batches.
func RowsQueue(concurrency int) int { return max(concurrency, 1) }

func effectiveSize(s RebuildSpec) int { return min(s.ChunkTokens, s.Model.MaxTokensPerInput) }
func effectiveOverlap(s RebuildSpec) int {
	if size := effectiveSize(s); s.ChunkOverlap >= size && size > 0 {
		return size - 1
	}
	return s.ChunkOverlap
}

// shaHex is the hex sha256 of a chunk's text: its content identity.
func shaHex(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:])
}

// state holds a running job's counters; it is safe for concurrent use.
type state struct {
	planned        *Progress
	price          pricing.Micros
	ledger         *checkpoint.SpendLedger
	embedded       atomic.Int64
	committed      atomic.Int64
	billed         atomic.Int64
	counted        atomic.Int64
	providerTokens atomic.Int64
	mismatches     atomic.Int64
	requests       atomic.Int64
	parts          atomic.Int64
	// checkpointWait is the time, in ns, the writer spent in checkpoint calls.
	checkpointWait atomic.Int64
	mu             sync.Mutex
	lastError      string
}

func (s *state) onCommit(p checkpoint.PartInfo) {
	s.parts.Add(1)
	s.committed.Add(int64(p.Rows))
}

func (s *state) plan(me *ModelEstimate) {
	s.planned = &Progress{PlannedChunks: me.Chunks, PlannedTokens: me.Tokens, PlannedRequests: me.Requests,
		PlannedCost: me.CostUSD, ReusedChunks: me.ReusedChunks}
}

func (s *state) setLastError(msg string) {
	s.mu.Lock()
	s.lastError = msg
	s.mu.Unlock()
}

// checkpointCost is the checkpoint's spend over every run, to the nearest
// micro-dollar; checkpointCostCeil is what the budget counts (each request
// rounded up), which a budget must exceed to let the next request go.
func (s *state) checkpointCost() pricing.Micros {
	if s.ledger == nil {
		return 0
	}
	return pricing.Micros((s.ledger.Total().TotalPico() + 500_000) / 1_000_000)
}

func (s *state) checkpointCostCeil() pricing.Micros {
	if s.ledger == nil {
		return 0
	}
	return pricing.Micros((s.ledger.Total().CapPico() + 999_999) / 1_000_000)
}

func (s *state) snapshot(elapsed time.Duration) Progress {
	p := *s.planned
	p.EmbeddedChunks = s.embedded.Load()
	p.CommittedChunks = s.committed.Load()
	p.BilledTokens = s.billed.Load()
	p.CountedTokens = s.counted.Load()
	p.ProviderTokens = s.providerTokens.Load()
	p.UsageMismatches = s.mismatches.Load()
	p.Requests = s.requests.Load()
	p.Cost = pricing.Cost(p.BilledTokens, s.price)
	p.CheckpointCost = s.checkpointCost()
	p.Parts = int(s.parts.Load())
	p.ElapsedSeconds = elapsed.Seconds()
	p.CheckpointWaitSeconds = time.Duration(s.checkpointWait.Load()).Seconds()
	if sec := elapsed.Seconds(); sec > 0 {
		p.TokensPerSecond = float64(p.BilledTokens) / sec
		if p.TokensPerSecond > 0 {
			eta := float64(max(p.PlannedTokens-p.BilledTokens, 0)) / p.TokensPerSecond
			p.ETASeconds = &eta
		}
	}
	s.mu.Lock()
	p.LastError = s.lastError
	s.mu.Unlock()
	return p
}
