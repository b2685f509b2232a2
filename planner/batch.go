package planner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// Rebuild modes: sync embeds through the embeddings endpoint; batch through
// the Batch API at the batch price; auto sends the slice the RTO needs sync
// and the rest batch, with a deadline fallback to sync.
const (
	ModeSync  = "sync"
	ModeBatch = "batch"
	ModeAuto  = "auto"
)

// Per-tier enqueued-token caps of the Batch API for text-embedding-3-*
// (shared/reference/batch-api.md: tier 1 3M ... tier 5 4B).
var EnqueuedTokensByTier = map[int]int64{1: 3_000_000, 2: 20_000_000, 3: 100_000_000, 4: 500_000_000, 5: 4_000_000_000}

// BatchAPI is the provider's Files and Batches API; *embedder.BatchClient is one.
type BatchAPI interface {
	UploadBatchFile(ctx context.Context, filename string, content []byte) (*embedder.FileObject, error)
	CreateBatch(ctx context.Context, fileID string, metadata map[string]string) (*embedder.BatchObject, error)
	RetrieveBatch(ctx context.Context, id string) (*embedder.BatchObject, error)
	CancelBatch(ctx context.Context, id string) (*embedder.BatchObject, error)
	FindBatch(ctx context.Context, key, value string) (*embedder.BatchObject, error)
	FileContent(ctx context.Context, id string) (io.ReadCloser, error)
}

// BatchOptions are the caps and timing of a batch rebuild. Zero values take
// the defaults named on each field.
type BatchOptions struct {
	// MaxRequests, MaxInputs and MaxFileBytes cap one batch file (defaults
	// 50,000, 50,000 and 200 MB: OpenAI's caps).
	MaxRequests, MaxInputs int
	MaxFileBytes           int64
	// EnqueuedRequests and EnqueuedTokens cap the requests and tokens of
	// batches not yet finished (defaults 1,000,000 and tier 1's 3,000,000,
	// see [EnqueuedTokensByTier]). A batch refused with token_limit_exceeded
	// halves the token cap for the rest of the run instead of failing it.
	EnqueuedRequests int
	EnqueuedTokens   int64
	// PollMin and PollMax bound the poll interval, which doubles from
	// PollMin while nothing changes (defaults 1s and 60s).
	PollMin, PollMax time.Duration
	// MaxAttempts is how many batches may try a chunk before it goes to
	// sync (default 2).
	MaxAttempts int
	// Deadline, when set, arms the fallback: once the time left is less than
	// what sync needs for the tokens still in batches (at SyncTokensPerSec),
	// every batch is cancelled, its finished work kept, and the rest is
	// embedded sync.
	Deadline         time.Time
	SyncTokensPerSec float64
	// SubmitOnly returns once every wave that fits is submitted, without
	// waiting (auto mode runs the sync slice meanwhile).
	SubmitOnly bool
	// NoSyncFallback leaves chunks that batches could not embed for a later
	// run instead of embedding them sync.
	NoSyncFallback bool
	// Mode names the run in its progress: ModeBatch (the default) or
	// ModeAuto (RunAuto sets it, and Plan, shown in progress too).
	Mode string
	Plan *BatchPlan
}

func (o *BatchOptions) fill() {
	o.MaxRequests = cmpPos(o.MaxRequests, embedder.MaxBatchRequests)
	o.MaxInputs = cmpPos(o.MaxInputs, embedder.MaxBatchInputs)
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = embedder.MaxBatchFileBytes
	}
	o.EnqueuedRequests = cmpPos(o.EnqueuedRequests, embedder.MaxEnqueuedRequests)
	if o.EnqueuedTokens <= 0 {
		o.EnqueuedTokens = EnqueuedTokensByTier[1]
	}
	if o.PollMin <= 0 {
		o.PollMin = time.Second
	}
	if o.PollMax < o.PollMin {
		o.PollMax = max(o.PollMin, 60*time.Second)
	}
	o.MaxAttempts = cmpPos(o.MaxAttempts, 2)
}

func cmpPos(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// BatchProgress is the batch side of a rebuild's progress.
type BatchProgress struct {
	Mode string `json:"mode"`
	// Batches counts the journaled batches by provider status (and
	// "planned" / "uploaded" before the provider knows them).
	Batches           map[string]int `json:"batches"`
	Waves             int            `json:"waves"`
	RequestsCompleted int            `json:"requests_completed"`
	RequestsFailed    int            `json:"requests_failed"`
	RequestsMissing   int            `json:"requests_missing"`
	EnqueuedTokens    int64          `json:"enqueued_tokens"`
	EnqueuedTokenCap  int64          `json:"enqueued_token_cap"`
	NextPollAt        *time.Time     `json:"next_poll_at,omitempty"`
	Deadline          *time.Time     `json:"deadline,omitempty"`
	FallbackArmed     bool           `json:"fallback_armed"`
	FellBack          bool           `json:"fell_back"`
	SyncChunks        int64          `json:"sync_chunks"`
	SyncTokens        int64          `json:"sync_tokens"`
	SyncCost          pricing.Micros `json:"sync_cost_usd"`
	// Plan is the auto split, in auto mode.
	Plan *BatchPlan `json:"plan,omitempty"`
}

// BatchRunner rebuilds through the Batch API into the same checkpoint as
// [Rebuilder.Run]: same manifest, schema, resume and verify. Its Rebuilder
// supplies the tokenizer, store, logger, progress callback, clock, and the
// sync embedder for leftovers.
type BatchRunner struct {
	*Rebuilder
	API  BatchAPI
	Opts BatchOptions
}

// ErrBatchCapacity is returned when a single request does not fit the
// enqueued-token cap even with nothing enqueued.
var ErrBatchCapacity = errors.New("a request is larger than the enqueued-token cap")

// Run embeds every chunk not yet checkpointed through batches, in waves under
// the caps, journaling each file and batch before the call that creates it,
// re-attaching to journaled batches after a restart, and committing their
// output as ordinary parts. Chunks batches could not embed go to sync (unless
// NoSyncFallback). Each chunk is paid once.
func (r *BatchRunner) Run(ctx context.Context, spec RebuildSpec) (*Summary, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	br, err := r.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	runErr := br.loop(ctx)
	closeErr := errors.Join(br.w.Close(context.WithoutCancel(ctx)), br.ledger.Close(context.WithoutCancel(ctx)))
	sum := br.summary()
	if runErr == nil {
		runErr = closeErr
	}
	if runErr == nil && br.budgetHit {
		spent := pricing.Micros((br.ledger.Total().CapPico() + 999_999) / 1_000_000)
		sum.setOutcome(OutcomeBudgetExceeded)
		r.report(sum.Progress)
		return sum, OutcomeBudgetExceeded.result(nil, budgetFacts{limit: spec.Budget, spent: spent})
	}
	if runErr != nil {
		sum.Outcome = OutcomeFailed
		if ctx.Err() != nil {
			sum.Outcome = OutcomeInterrupted
			runErr = fmt.Errorf("%w: the batch journal and checkpoint are committed; run again to re-attach: %w", ErrInterrupted, runErr)
		}
		sum.setOutcome(sum.Outcome)
		r.report(sum.Progress)
		return sum, runErr
	}
	if (br.leftover > 0 || br.fellBack) && !r.Opts.NoSyncFallback && !r.Opts.SubmitOnly {
		return r.finishSync(ctx, spec, br, sum)
	}
	sum.setOutcome(OutcomeComplete)
	if r.Opts.SubmitOnly {
		// Not an end: auto mode goes on with the sync slice and the wait.
		sum.Stopped, sum.State = "submitted", "running"
	}
	r.report(sum.Progress)
	return sum, nil
}

// setOutcome records the run's typed outcome and its name in the summary
// and its progress.
func (s *Summary) setOutcome(o Outcome) {
	s.Outcome, s.Stopped, s.State = o, o.State(), o.State()
}

// finishSync embeds what batches left with the Rebuilder's sync path.
func (r *BatchRunner) finishSync(ctx context.Context, spec RebuildSpec, br *batchRun, sum *Summary) (*Summary, error) {
	r.log().Info("finishing on sync", "chunks_left", br.leftover, "fell_back", br.fellBack)
	syncSum, err := r.Rebuilder.Run(ctx, spec)
	if syncSum == nil {
		o := OutcomeFailed
		if ctx.Err() != nil {
			o = OutcomeInterrupted
		}
		sum.setOutcome(o)
		return sum, err
	}
	sum.Batch.SyncChunks, sum.Batch.SyncTokens, sum.Batch.SyncCost = syncSum.EmbeddedChunks, syncSum.BilledTokens, syncSum.Cost
	sum.EmbeddedChunks += syncSum.EmbeddedChunks
	sum.CommittedChunks += syncSum.CommittedChunks
	sum.BilledTokens += syncSum.BilledTokens
	sum.Requests += syncSum.Requests
	sum.Cost += syncSum.Cost
	sum.Parts += syncSum.Parts
	sum.setOutcome(syncSum.Outcome)
	r.report(sum.Progress)
	return sum, err
}

func (r *BatchRunner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *BatchRunner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *BatchRunner) report(p Progress) {
	if r.OnProgress != nil {
		r.OnProgress(p)
	}
}
