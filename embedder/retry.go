package embedder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// RetryConfig configures [Retrying]. Zero fields take the defaults.
type RetryConfig struct {
	// MaxAttempts bounds the attempts of one batch that end in a 5xx, a
	// timeout, a reset or a malformed answer (default 6), unless RetryWindow
	// is longer.
	MaxAttempts int
	// RetryWindow is how long a batch keeps retrying 5xx, timeouts, resets
	// and malformed answers, from its first failure, before it fails: a
	// batch gives up only when it has used MaxAttempts and RetryWindow has
	// passed, so a window of a few minutes rides out a provider's outage.
	// 0 (the default) means MaxAttempts alone decides.
	RetryWindow time.Duration
	// MaxRetryAfter caps one wait the provider asks for (retry-after, or
	// the x-ratelimit reset headers): a longer ask is waited for this long
	// and then the batch is tried again (default [DefaultMaxRetryAfter]).
	// Every wait of LongWait or more is logged at warning level with its
	// cause (default 10s).
	MaxRetryAfter, LongWait time.Duration
	// MaxRateLimited bounds the 429 answers one batch may get before the
	// error is returned (default 100: a storm is waited out, a stuck
	// provider is not waited on forever).
	MaxRateLimited int
	// BaseDelay is the first backoff (default 500ms); it doubles per
	// attempt up to MaxDelay (default 1 minute). Each wait is drawn from
	// [d/2, d) (jitter). A 429's retry-after, when longer, is honoured.
	BaseDelay, MaxDelay time.Duration
	// MaxConcurrency caps the batches in flight (default 16). A 429 halves
	// the cap (at most once per ShrinkInterval, default 1s, down to 1);
	// every run of successes as long as the cap raises it by one again.
	MaxConcurrency int
	ShrinkInterval time.Duration
	// Seed seeds the jitter; 0 picks a random seed.
	Seed uint64
	// Logger gets a line when concurrency changes; nil discards.
	Logger *slog.Logger
}

// DefaultMaxRetryAfter is the longest single wait [Retrying] grants a
// provider's retry-after: a provider asking for 999999999 s is tried again
// after this long instead of stalling the rebuild.
const DefaultMaxRetryAfter = 2 * time.Minute

// Retrying retries what may succeed later and returns at once what will not.
//
//   - 429 rate_limit_exceeded (and a 200 whose body reports one): wait the
//     provider's retry-after (retry-after-ms, retry-after, or the reset
//     headers) or the exponential backoff with jitter, whichever is longer;
//     every other batch waits out the retry-after too, and concurrency is
//     halved.
//   - 5xx, 408, 409, timeouts, connection resets, malformed answers: back off
//     and retry up to MaxAttempts.
//   - a refusal of the batch for its size ([ProviderError.BatchTooLarge]:
//     413, or TEI's 422 "batch size N > maximum allowed batch size M"): the
//     batch is split in halves, each embedded (and retried) on its own, and
//     later batches are split to the size that worked without being sent
//     whole. A self-hosted server's input cap need not be known in advance.
//   - 400, 401, 403, 404, 413, 422 (other refusals, or of a single input),
//     429 insufficient_quota and every other error: returned at once, naming
//     the chunk (see [ProviderError]).
//
// A cancelled ctx stops it within the request in flight. A closed [Gate] on
// ctx ends every wait at once with ErrStopped and starts no new attempt; the
// attempt on the wire finishes. It is safe for concurrent use.
type Retrying struct {
	inner Embedder
	cfg   RetryConfig
	log   *slog.Logger
	sem   *semaphore

	mu         sync.Mutex
	rng        *rand.Rand
	pauseUntil time.Time
	lastShrink time.Time
	successes  int
	maxInputs  int // learned from batch-size refusals; 0 = unknown
}

var _ Embedder = (*Retrying)(nil)

// NewRetrying wraps inner.
func NewRetrying(inner Embedder, cfg RetryConfig) (*Retrying, error) {
	if inner == nil {
		return nil, errors.New("retrying embedder: nil embedder")
	}
	if cfg.MaxAttempts < 0 || cfg.MaxRateLimited < 0 || cfg.MaxConcurrency < 0 || cfg.BaseDelay < 0 || cfg.MaxDelay < 0 ||
		cfg.RetryWindow < 0 || cfg.MaxRetryAfter < 0 || cfg.LongWait < 0 {
		return nil, errors.New("retrying embedder: negative setting")
	}
	cfg.MaxAttempts = cmp0(cfg.MaxAttempts, 6)
	cfg.MaxRateLimited = cmp0(cfg.MaxRateLimited, 100)
	cfg.MaxConcurrency = cmp0(cfg.MaxConcurrency, 16)
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = 500 * time.Millisecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Minute
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.BaseDelay)
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.LongWait == 0 {
		cfg.LongWait = 10 * time.Second
	}
	if cfg.ShrinkInterval <= 0 {
		cfg.ShrinkInterval = time.Second
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retrying{
		inner: inner,
		cfg:   cfg,
		log:   log,
		sem:   newSemaphore(cfg.MaxConcurrency),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}, nil
}

// Concurrency returns the current cap on batches in flight.
func (r *Retrying) Concurrency() int { return r.sem.currentLimit() }

// Embed sends req until it succeeds, fails for good or the budget is spent.
// The error wraps the last attempt's error (a *ProviderError, or ctx's).
func (r *Retrying) Embed(ctx context.Context, req *Request) (*Result, error) {
	r.mu.Lock()
	most := r.maxInputs
	r.mu.Unlock()
	if most > 0 && len(req.Inputs) > most {
		return r.embedSplit(ctx, req)
	}
	transient, limited, wasted := 0, 0, 0
	var firstFailure time.Time
	for {
		if err := r.waitPause(ctx); err != nil {
			return nil, err
		}
		if err := r.sem.acquire(ctx); err != nil {
			return nil, err
		}
		if err := stopped(ctx); err != nil {
			r.sem.release()
			return nil, err
		}
		res, err := r.inner.Embed(ctx, req)
		r.sem.release()
		if err == nil {
			r.succeeded()
			res.RetriedTokens += wasted
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrStopped) {
			return nil, err
		}
		pe, ok := errors.AsType[*ProviderError](err)
		if ok && pe.BatchTooLarge() && len(req.Inputs) > 1 {
			r.learnMaxInputs(len(req.Inputs)/2, pe)
			return r.embedSplit(ctx, req)
		}
		if !ok || !pe.Retryable() {
			return nil, fmt.Errorf("embedding %d inputs: %w", len(req.Inputs), err)
		}
		if firstFailure.IsZero() {
			firstFailure = time.Now()
		}
		if pe.Status >= 200 && pe.Status < 300 {
			wasted += req.tokens() // answered, so billed, but unusable
		}
		var wait time.Duration
		if pe.Status == 429 || errors.Is(err, ErrRateLimited) {
			limited++
			if limited >= r.cfg.MaxRateLimited {
				return nil, fmt.Errorf("embedding %d inputs: still rate limited after %d attempts: %w", len(req.Inputs), limited, err)
			}
			asked := min(pe.RetryAfter, r.cfg.MaxRetryAfter)
			wait = max(r.backoff(limited), asked)
			// Every batch waits out the provider's retry-after (or one
			// base backoff); this batch also backs off exponentially.
			pause := asked
			if pause <= 0 {
				pause = r.backoff(1)
			}
			r.rateLimited(pause)
		} else {
			transient++
			if transient >= r.cfg.MaxAttempts && time.Since(firstFailure) >= r.cfg.RetryWindow {
				return nil, fmt.Errorf("embedding %d inputs: giving up after %d failed attempts in %s: %w",
					len(req.Inputs), transient, time.Since(firstFailure).Round(time.Millisecond), err)
			}
			wait = max(r.backoff(transient), min(pe.RetryAfter, r.cfg.MaxRetryAfter))
		}
		r.logWait(pe, wait, limited, transient, len(req.Inputs))
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// logWait logs a retry's wait: at warning level with its cause when it is
// LongWait or more (a user sees why the rebuild stalls), at debug otherwise.
func (r *Retrying) logWait(pe *ProviderError, wait time.Duration, limited, transient, inputs int) {
	level := slog.LevelDebug
	if wait >= r.cfg.LongWait {
		level = slog.LevelWarn
	}
	attrs := []any{"status", pe.Status, "wait", wait.Round(time.Millisecond), "rate_limited", limited, "failed", transient, "inputs", inputs}
	if pe.RetryAfter > 0 {
		attrs = append(attrs, "retry_after_asked", pe.RetryAfter.Round(time.Millisecond))
		if pe.RetryAfter > r.cfg.MaxRetryAfter {
			attrs = append(attrs, "retry_after_capped_to", r.cfg.MaxRetryAfter)
		}
	}
	if pe.Code != "" {
		attrs = append(attrs, "code", pe.Code)
	}
	if pe.Message != "" {
		attrs = append(attrs, "message", pe.Message)
	} else if pe.Err != nil {
		attrs = append(attrs, "cause", pe.Err.Error())
	}
	r.log.Log(context.Background(), level, "waiting before retrying an embedding batch", attrs...)
}

// learnMaxInputs lowers the batch size later requests are split to.
func (r *Retrying) learnMaxInputs(n int, pe *ProviderError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxInputs == 0 || n < r.maxInputs {
		r.maxInputs = n
		r.log.Warn("the provider refused a batch as too large; splitting batches to fewer inputs (a smaller batch_size avoids the refused request)",
			"max_inputs", n, "status", pe.Status, "message", pe.Message)
	}
}

// embedSplit embeds the two halves of req in turn and joins the results.
func (r *Retrying) embedSplit(ctx context.Context, req *Request) (*Result, error) {
	half := len(req.Inputs) / 2
	first, second := *req, *req
	first.Inputs, second.Inputs = req.Inputs[:half:half], req.Inputs[half:]
	a, err := r.Embed(ctx, &first)
	if err != nil {
		return nil, err
	}
	b, err := r.Embed(ctx, &second)
	if err != nil {
		return nil, err
	}
	out := &Result{
		Vectors: append(a.Vectors[:len(a.Vectors):len(a.Vectors)], b.Vectors...),
		Usage: Usage{PromptTokens: a.Usage.PromptTokens + b.Usage.PromptTokens,
			TotalTokens: a.Usage.TotalTokens + b.Usage.TotalTokens},
		Received: b.Received, RateLimit: b.RateLimit, RetriedTokens: a.RetriedTokens + b.RetriedTokens,
	}
	if out.RateLimit == nil {
		out.RateLimit = a.RateLimit
	}
	return out, nil
}

// backoff returns a jittered exponential delay for the n-th failure (n >= 1):
// uniform in [d/2, d) with d = BaseDelay * 2^(n-1), capped at MaxDelay.
func (r *Retrying) backoff(n int) time.Duration {
	d := r.cfg.BaseDelay
	for i := 1; i < n && d < r.cfg.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxDelay)
	r.mu.Lock()
	j := r.rng.Int64N(int64(d/2) + 1)
	r.mu.Unlock()
	return d/2 + time.Duration(j)
}

// rateLimited pauses every batch for wait and halves concurrency (at most
// once per ShrinkInterval).
func (r *Retrying) rateLimited(wait time.Duration) {
	now := time.Now()
	r.mu.Lock()
	if until := now.Add(wait); until.After(r.pauseUntil) {
		r.pauseUntil = until
	}
	r.successes = 0
	shrink := now.Sub(r.lastShrink) >= r.cfg.ShrinkInterval
	if shrink {
		r.lastShrink = now
	}
	r.mu.Unlock()
	if shrink {
		if from, to := r.sem.shrink(); to != from {
			r.log.Info("rate limited: lowering concurrency", "from", from, "to", to, "retry_after", wait)
		}
	}
}

// succeeded raises concurrency by one after a run of successes as long as
// the current cap.
func (r *Retrying) succeeded() {
	r.mu.Lock()
	r.successes++
	grow := r.successes >= r.sem.currentLimit()
	if grow {
		r.successes = 0
	}
	r.mu.Unlock()
	if grow {
		if from, to := r.sem.grow(); to != from && to == r.cfg.MaxConcurrency {
			r.log.Info("concurrency recovered", "concurrency", to)
		}
	}
}

// waitPause waits until a 429's retry-after has passed.
func (r *Retrying) waitPause(ctx context.Context) error {
	r.mu.Lock()
	until := r.pauseUntil
	r.mu.Unlock()
	if d := time.Until(until); d > 0 {
		return sleep(ctx, d)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return stopped(ctx)
}

// sleep waits d or until ctx ends or ctx's gate closes (ErrStopped).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-gateDone(ctx):
		return ErrStopped
	case <-t.C:
		return nil
	}
}

// semaphore caps holders at a limit that can shrink and grow while held.
type semaphore struct {
	mu    sync.Mutex
	limit int
	max   int
	inUse int
	wake  chan struct{} // closed when a slot may have become free
}

func newSemaphore(n int) *semaphore {
	return &semaphore{limit: n, max: n, wake: make(chan struct{})}
}

func (s *semaphore) acquire(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.inUse < s.limit {
			s.inUse++
			s.mu.Unlock()
			return nil
		}
		w := s.wake
		s.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		case <-gateDone(ctx):
			return ErrStopped
		}
	}
}

func (s *semaphore) release() {
	s.mu.Lock()
	s.inUse--
	s.broadcastLocked()
	s.mu.Unlock()
}

func (s *semaphore) broadcastLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *semaphore) shrink() (from, to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from = s.limit
	s.limit = max(1, s.limit/2)
	return from, s.limit
}

func (s *semaphore) grow() (from, to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from = s.limit
	if s.limit < s.max {
		s.limit++
		s.broadcastLocked()
	}
	return from, s.limit
}

func (s *semaphore) currentLimit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}
