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

	"golang.org/x/sync/errgroup"

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

// RebuildSpec is one rebuild job: what to read, how to chunk, which model,
// where to checkpoint, and the limits it runs under.
type RebuildSpec struct {
	Paths  []string
	Corpus corpus.Options
	Model  pricing.Model
	// Dimensions of the vectors; 0 means the model's default.
	Dimensions   int
	ChunkTokens  int
	ChunkOverlap int
	// Limits.Concurrency is the number of embed workers; BatchSize caps inputs
	// per request; TPM caps tokens per request (as the estimate assumes).
	// RPM and TPM themselves are enforced by the embedder stack.
	Limits Limits
	// PartRows and FlushInterval bound what a crash can lose (the RPO).
	PartRows      int
	FlushInterval time.Duration
	// Budget caps the spend of this run in micro-dollars; 0 means none.
	Budget pricing.Micros
	// Force resumes into a checkpoint whose manifest disagrees.
	Force bool
	// Shard selects the documents of one shard; Count 0 means all.
	Shard checkpoint.Shard
	// Jobs is the number of reader/tokenizer workers; 0 = GOMAXPROCS.
	Jobs int
}

// dimensions returns the vector length the job expects.
func (s *RebuildSpec) dimensions() int {
	if s.Dimensions > 0 {
		return s.Dimensions
	}
	return s.Model.DefaultDimensions
}

// Validate checks the spec; errors name the flag.
func (s *RebuildSpec) Validate() error {
	var errs []error
	if len(s.Paths) == 0 {
		errs = append(errs, errors.New("no corpus path given"))
	}
	if s.Dimensions < 0 {
		errs = append(errs, errors.New("--dimensions must not be negative"))
	} else if s.Dimensions > 0 && s.Model.MaxDimensions > 0 && s.Dimensions > s.Model.MaxDimensions {
		errs = append(errs, fmt.Errorf("--dimensions %d exceeds %s's %d", s.Dimensions, s.Model.Name, s.Model.MaxDimensions))
	} else if s.Dimensions > 0 && s.Model.FixedDimensions && s.Dimensions != s.Model.DefaultDimensions {
		errs = append(errs, fmt.Errorf("--dimensions: %s only returns %d dimensions", s.Model.Name, s.Model.DefaultDimensions))
	}
	if s.PartRows < 0 {
		errs = append(errs, errors.New("--part-rows must not be negative"))
	}
	if s.FlushInterval < 0 {
		errs = append(errs, errors.New("--flush-interval must not be negative"))
	}
	if s.Budget < 0 {
		errs = append(errs, errors.New("--budget-usd must not be negative"))
	}
	if err := s.Shard.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--shard: %w", err))
	}
	// The estimate checks the limits (--concurrency among them) and the
	// chunking; the missing corpus path is reported above, in a rebuild's words.
	est := s.estimateRequest()
	if err := est.validate(false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// estimateRequest is the estimate of exactly this job (same corpus, chunking
// and packing), used to plan it and to predict it.
func (s *RebuildSpec) estimateRequest() EstimateRequest {
	opts := s.Corpus
	opts.Keep = KeepShard(s.Shard, opts.Keep)
	return EstimateRequest{
		Paths: s.Paths, Corpus: opts, Models: []pricing.Model{s.Model},
		ChunkTokens: s.ChunkTokens, ChunkOverlap: s.ChunkOverlap, Limits: s.Limits, Jobs: s.Jobs,
	}
}

// Manifest is the checkpoint manifest of the job.
func (s *RebuildSpec) Manifest() checkpoint.Manifest {
	enc := s.Model.Encoding
	if enc == "" {
		enc = tokenizer.EncodingCL100K
	}
	return checkpoint.Manifest{
		Model: s.Model.Name, Dimensions: s.dimensions(), Encoding: enc,
		Chunking:  checkpoint.Chunking{ChunkTokens: s.ChunkTokens, ChunkOverlap: s.ChunkOverlap},
		PlainText: s.Corpus.PlainText, CorpusRoots: s.Paths, Shard: s.Shard,
	}
}

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
	BilledTokens    int64          `json:"billed_tokens"`
	Requests        int64          `json:"requests"`
	Cost            pricing.Micros `json:"cost_usd"`
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
}

// Summary is the outcome of [Rebuilder.Run].
type Summary struct {
	Progress
	// Stopped says why the run ended: "complete", "budget", "interrupted" or "error".
	Stopped string `json:"stopped"`
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
	// GracePeriod bounds how long requests in flight may finish after the
	// job was interrupted (default 30s); then they are abandoned.
	GracePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// batch is one request's worth of chunks.
type batch struct {
	inputs []embedder.Input
	shas   []string
	tokens int
}

// chunkOut is one chunk as the workers produce it, in corpus order.
type chunkOut struct {
	docID  string
	index  int
	text   string
	tokens int
	sha    string
}

// Run executes the job until every chunk of the corpus is checkpointed, or
// ctx ends (ErrInterrupted), or the budget would be exceeded
// (ErrBudgetExceeded), or a request fails for good (a *embedder.ProviderError
// naming the chunk). In every case what was embedded is committed before Run
// returns, and running the same spec again resumes.
func (r *Rebuilder) Run(ctx context.Context, spec RebuildSpec) (*Summary, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	started := now()
	var st state
	st.planned = &Progress{}

	w, err := checkpoint.Open(ctx, r.Store, checkpoint.Options{
		Manifest: spec.Manifest(), Force: spec.Force, PartRows: spec.PartRows, Logger: logger, Lock: true,
		// Encode and fsync a part while the next one fills.
		Pipeline: true,
		OnCommit: func(p checkpoint.PartInfo) {
			st.parts.Add(1)
			st.committed.Add(int64(p.Rows))
		},
	})
	if err != nil {
		return nil, err
	}
	defer w.Release() // one writer per checkpoint: freed even when the last commit failed
	rec := w.Recovery()
	sum := &Summary{RemovedTempFiles: nonNil(rec.RemovedTemp), UnreadableParts: []string{}}
	for _, b := range rec.Unreadable {
		sum.UnreadableParts = append(sum.UnreadableParts, b.Name)
	}
	ix := w.Index()
	done := doneFunc(ix)

	// Plan: the job's own estimate of what is left, with the same code.
	estReq := spec.estimateRequest()
	estReq.Done = done
	plan, err := Run(ctx, r.Tokenizer, estReq)
	if err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("planning the rebuild: %w", err)
	}
	me := plan.Estimates[0]
	sum.Estimate = &me
	st.planned = &Progress{PlannedChunks: me.Chunks, PlannedTokens: me.Tokens, PlannedRequests: me.Requests, PlannedCost: me.CostUSD, ReusedChunks: me.ReusedChunks}
	logger.Info("rebuild planned", "chunks", me.Chunks, "tokens", me.Tokens, "requests", me.Requests,
		"cost_usd", me.CostUSD.String(), "reused_chunks", me.ReusedChunks)

	bud := &budget{limit: spec.Budget}
	produceCtx, stopProducing := context.WithCancelCause(ctx)
	defer stopProducing(nil)
	// Requests in flight survive an interrupt for GracePeriod.
	embedCtx, cancelEmbeds := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEmbeds()
	grace := r.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	go func() {
		select {
		case <-produceCtx.Done():
		case <-embedCtx.Done():
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelEmbeds()
		case <-embedCtx.Done():
		}
	}()

	progressDone := make(chan struct{})
	snapshot := func(state string) Progress {
		p := st.snapshot(now().Sub(started))
		p.State = state
		p.Cost = bud.spentMicros()
		return p
	}
	if r.OnProgress != nil {
		interval := r.ProgressInterval
		if interval <= 0 {
			interval = time.Second
		}
		go func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					r.OnProgress(snapshot("running"))
				case <-progressDone:
					return
				}
			}
		}()
	}

	batches := make(chan *batch, max(spec.Limits.Concurrency, 1))
	rows := make(chan []checkpoint.Row, RowsQueue(spec.Limits.Concurrency))
	var fatal atomic.Pointer[error]
	setFatal := func(err error) {
		fatal.CompareAndSwap(nil, &err)
		stopProducing(err)
	}

	// Producer: corpus → chunks (skipping checkpointed ones) → packed batches.
	chunker, err := corpus.NewChunker(r.Tokenizer, effectiveSize(spec), effectiveOverlap(spec), spec.Model.MaxTokensPerInput)
	if err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	src, err := corpus.Open(spec.Paths, estReq.Corpus)
	if err != nil {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	defer src.Close()
	packer := NewPacker(spec.Model.MaxInputsPerRequest, spec.Model.MaxTokensPerRequest, spec.Limits.BatchSize, spec.Limits.TPM)
	var prodErr error
	var prodWG sync.WaitGroup
	prodWG.Go(func() {
		defer close(batches)
		cur := &batch{}
		send := func() error {
			if len(cur.inputs) == 0 {
				return nil
			}
			select {
			case batches <- cur:
			case <-produceCtx.Done():
				return context.Cause(produceCtx)
			}
			cur = &batch{}
			return nil
		}
		// corpus.Scan is stopped from emit, never by cancelling its ctx:
		// a Scan whose ctx is cancelled can leave its collector waiting on
		// a file that no worker will ever read (a hang seen on interrupt,
		// budget stop and provider error).
		_, err := corpus.Scan(context.WithoutCancel(produceCtx), src, spec.Jobs, func(doc corpus.Document) ([]chunkOut, error) {
			var out []chunkOut
			_, _, err := chunker.Chunk(doc.Text, func(index int, text []byte, tokens int) error {
				sha := shaHex(text)
				if ix.Has(checkpoint.Key{DocID: doc.ID, ChunkIndex: int32(index)}, sha) {
					return nil
				}
				out = append(out, chunkOut{docID: doc.ID, index: index, text: string(text), tokens: tokens, sha: sha})
				return nil
			})
			return out, err
		}, func(chunks []chunkOut) error {
			if err := produceCtx.Err(); err != nil {
				return context.Cause(produceCtx)
			}
			for _, c := range chunks {
				if packer.Add(c.tokens) {
					if err := send(); err != nil {
						return err
					}
				}
				cur.inputs = append(cur.inputs, embedder.Input{Text: c.text, Tokens: c.tokens, DocID: c.docID, ChunkIndex: c.index})
				cur.shas = append(cur.shas, c.sha)
				cur.tokens += c.tokens
			}
			return nil
		})
		if err == nil {
			err = send()
		}
		if err != nil && produceCtx.Err() == nil {
			prodErr = err
			stopProducing(err)
		}
	})

	// Embed workers.
	dims := spec.dimensions()
	reqDims := spec.Dimensions
	if spec.Model.FixedDimensions {
		reqDims = 0
	}
	var workers errgroup.Group
	for range max(spec.Limits.Concurrency, 1) {
		workers.Go(func() error {
			for b := range batches {
				if produceCtx.Err() != nil {
					continue // drain: stopping
				}
				reserve := pricing.CostCeil(int64(b.tokens), spec.Model.PricePer1M)
				if !bud.reserve(reserve) {
					stopProducing(ErrBudgetExceeded)
					continue
				}
				res, err := r.Embedder.Embed(embedCtx, &embedder.Request{Model: spec.Model.Name, Dimensions: reqDims, Inputs: b.inputs})
				if err != nil {
					bud.release(reserve)
					if embedCtx.Err() != nil || (produceCtx.Err() != nil && errors.Is(err, context.Canceled)) {
						continue // abandoned after the grace period
					}
					st.setLastError(err.Error())
					setFatal(fmt.Errorf("embedding %d chunks starting at %s#%d: %w", len(b.inputs), b.inputs[0].DocID, b.inputs[0].ChunkIndex, err))
					continue
				}
				billed := res.Usage.PromptTokens
				if billed == 0 {
					billed = res.Usage.TotalTokens
				}
				bud.settle(reserve, pricing.CostCeil(int64(billed), spec.Model.PricePer1M))
				st.requests.Add(1)
				st.billed.Add(int64(billed))
				// The embedder stack checks answers under its retries; this is for an Embedder without it.
				if err := embedder.CheckResult(&embedder.Request{Inputs: b.inputs}, res, dims); err != nil {
					setFatal(fmt.Errorf("embedding %d chunks starting at %s#%d: %w", len(b.inputs), b.inputs[0].DocID, b.inputs[0].ChunkIndex, err))
					continue
				}
				out := make([]checkpoint.Row, len(b.inputs))
				at := res.Received
				if at.IsZero() {
					at = now()
				}
				for i, in := range b.inputs {
					out[i] = checkpoint.Row{DocID: in.DocID, ChunkIndex: int32(in.ChunkIndex), ChunkSHA256: b.shas[i], Text: in.Text,
						Tokens: int32(in.Tokens), Model: spec.Model.Name, Embedding: res.Vectors[i], EmbeddedAt: at.UTC()}
				}
				st.embedded.Add(int64(len(out)))
				rows <- out
			}
			return nil
		})
	}
	go func() {
		prodWG.Wait()
		workers.Wait()
		close(rows)
	}()

	// The one checkpoint writer: commits every PartRows rows and every FlushInterval.
	writeCtx := context.WithoutCancel(ctx)
	flushEvery := spec.FlushInterval
	if flushEvery <= 0 {
		flushEvery = DefaultFlushInterval
	}
	ticker := time.NewTicker(flushEvery)
	var writeErr error
	timed := func(f func() error) error {
		start := time.Now()
		err := f()
		st.checkpointWait.Add(int64(time.Since(start)))
		return err
	}
loop:
	for {
		select {
		case rs, ok := <-rows:
			if !ok {
				break loop
			}
			if writeErr != nil {
				continue
			}
			if err := timed(func() error { return w.Add(writeCtx, rs...) }); err != nil {
				writeErr = fmt.Errorf("writing checkpoint: %w", err)
				setFatal(writeErr)
			}
		case <-ticker.C:
			if writeErr == nil {
				if err := timed(func() error { return w.Flush(writeCtx) }); err != nil {
					writeErr = fmt.Errorf("committing checkpoint part: %w", err)
					setFatal(writeErr)
				}
			}
		}
	}
	ticker.Stop()
	if err := timed(func() error { return w.Close(writeCtx) }); err != nil && writeErr == nil {
		writeErr = fmt.Errorf("committing the last checkpoint part: %w", err)
	}
	close(progressDone)

	var result error
	switch {
	case writeErr != nil:
		sum.Stopped, result = "error", writeErr
	case fatal.Load() != nil:
		sum.Stopped, result = "error", *fatal.Load()
	case prodErr != nil:
		sum.Stopped, result = "error", prodErr
	case errors.Is(context.Cause(produceCtx), ErrBudgetExceeded):
		sum.Stopped, result = "budget", fmt.Errorf("%w: the next request would spend past $%s (spent $%s); the checkpoint is committed, raise --budget-usd and run again to resume", ErrBudgetExceeded, spec.Budget, bud.spentMicros())
	case ctx.Err() != nil:
		sum.Stopped, result = "interrupted", fmt.Errorf("%w: the checkpoint is committed; run again to resume: %w", ErrInterrupted, context.Cause(ctx))
	default:
		sum.Stopped = "complete"
	}
	if result != nil {
		st.setLastError(result.Error())
	}
	sum.Progress = snapshot(sum.Stopped)
	if r.OnProgress != nil {
		r.OnProgress(sum.Progress)
	}
	logger.Info("rebuild ended", "stopped", sum.Stopped, "embedded_chunks", sum.EmbeddedChunks,
		"billed_tokens", sum.BilledTokens, "requests", sum.Requests, "cost_usd", sum.Cost.String(), "parts", sum.Parts)
	return sum, result
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
	planned   *Progress
	embedded  atomic.Int64
	committed atomic.Int64
	billed    atomic.Int64
	requests  atomic.Int64
	parts     atomic.Int64
	// checkpointWait is the time, in ns, the writer spent in checkpoint calls.
	checkpointWait atomic.Int64
	mu             sync.Mutex
	lastError      string
}

func (s *state) setLastError(msg string) {
	s.mu.Lock()
	s.lastError = msg
	s.mu.Unlock()
}

func (s *state) snapshot(elapsed time.Duration) Progress {
	p := *s.planned
	p.EmbeddedChunks = s.embedded.Load()
	p.CommittedChunks = s.committed.Load()
	p.BilledTokens = s.billed.Load()
	p.Requests = s.requests.Load()
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

// budget reserves the cost of a request before it is sent and settles it with
// the billed usage after, so that spend never passes the limit. It is safe for
// concurrent use.
type budget struct {
	mu       sync.Mutex
	limit    pricing.Micros // 0 = none
	spent    pricing.Micros
	reserved pricing.Micros
}

func (b *budget) reserve(c pricing.Micros) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.spent+b.reserved+c > b.limit {
		return false
	}
	b.reserved += c
	return true
}

func (b *budget) release(c pricing.Micros) {
	b.mu.Lock()
	b.reserved -= c
	b.mu.Unlock()
}

func (b *budget) settle(reserved, actual pricing.Micros) {
	b.mu.Lock()
	b.reserved -= reserved
	b.spent += actual
	b.mu.Unlock()
}

func (b *budget) spentMicros() pricing.Micros {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}
