package embedder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RateLimitConfig configures [RateLimited].
type RateLimitConfig struct {
	// RPM is the provider's limit in requests per minute; 0 means unknown
	// until a response's x-ratelimit-limit-requests header tells it.
	RPM int
	// TPM is the provider's limit in tokens per minute; 0 means unknown
	// until a response's x-ratelimit-limit-tokens header tells it.
	TPM int
	// MaxRequestTokens is the largest request the caller may send, in
	// tokens (the model's per-request limit). Default, and at most, TPM. A
	// bigger request fails at once with ErrRequestTooLarge.
	MaxRequestTokens int
	// Margin is the fraction of each limit left unused, so that requests
	// bunched by the network still fit the provider's bucket; default 0.01.
	Margin float64
	// Logger gets a line when a limit is learned from headers, and a debug
	// line [WaitingForTPM] or [WaitingForRPM] (at most one a second) when a
	// request is held back; nil discards.
	Logger *slog.Logger
}

// The messages of the debug lines a [RateLimited] logs when it holds a
// request back, with the wait as attribute "wait" (a progress display shows
// them: the rebuild is waiting for the budget, not stuck).
const (
	WaitingForTPM = "waiting for TPM budget"
	WaitingForRPM = "waiting for RPM budget"
)

// RateLimited holds each request back until both the requests-per-minute
// and the token-weighted tokens-per-minute budgets allow it, so that neither
// limit is exceeded: two token buckets (golang.org/x/time/rate) filling at
// the limits' rates, each one second deep, so that at most one second of
// either goes out at once. A request bigger than one second of tokens waits
// until its whole weight has accrued.
// Each response's x-ratelimit-remaining-* headers lower our budget when the
// provider has less left than we think (another client on the same key).
// Every call, including every retry, pays again: put it inside [Retrying].
// It is safe for concurrent use.
type RateLimited struct {
	inner     Embedder
	log       *slog.Logger
	margin    float64
	maxTokens int

	mu  sync.Mutex
	req *rate.Limiter // nil while the limit is unknown
	tok *rate.Limiter

	lastWaitLog atomic.Int64 // unix nanoseconds of the last waiting line
}

var _ Embedder = (*RateLimited)(nil)

// NewRateLimited wraps inner.
func NewRateLimited(inner Embedder, cfg RateLimitConfig) (*RateLimited, error) {
	if inner == nil {
		return nil, errors.New("rate limiter: nil embedder")
	}
	if cfg.RPM < 0 || cfg.TPM < 0 || cfg.MaxRequestTokens < 0 {
		return nil, fmt.Errorf("rate limiter: negative limit (rpm %d, tpm %d, max request tokens %d)", cfg.RPM, cfg.TPM, cfg.MaxRequestTokens)
	}
	if cfg.Margin < 0 || cfg.Margin >= 1 || math.IsNaN(cfg.Margin) {
		return nil, fmt.Errorf("rate limiter: margin %v is not in [0, 1)", cfg.Margin)
	}
	if cfg.Margin == 0 {
		cfg.Margin = 0.01
	}
	l := &RateLimited{inner: inner, log: cfg.Logger, margin: cfg.Margin, maxTokens: cfg.MaxRequestTokens}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if cfg.RPM > 0 {
		l.req = l.newRequestLimiter(cfg.RPM)
	}
	if cfg.TPM > 0 {
		l.tok = l.newTokenLimiter(cfg.TPM)
	}
	return l, nil
}

// newRequestLimiter and newTokenLimiter fill at the limit less the margin
// and hold one second of the limit.
func (l *RateLimited) newRequestLimiter(rpm int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(rpm)*(1-l.margin)/60), max(1, rpm/60))
}

func (l *RateLimited) newTokenLimiter(tpm int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(tpm)*(1-l.margin)/60), max(1, tpm/60))
}

// maxRequest is the largest request allowed under tpm.
func (l *RateLimited) maxRequest(tpm int) int {
	if l.maxTokens > 0 {
		return min(tpm, l.maxTokens)
	}
	return tpm
}

func (l *RateLimited) limiters() (req, tok *rate.Limiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.req, l.tok
}

// Embed waits for one request and the request's tokens (Input.Tokens, or an
// estimate for inputs without a count), then calls the wrapped embedder.
// It returns ErrRequestTooLarge, without waiting, for a request over
// MaxRequestTokens or the tokens per minute; ctx's error if ctx ends while
// waiting; ErrStopped if ctx's [Gate] closes before the request is sent
// (the wait ends at once); and an error wrapping context.DeadlineExceeded,
// at once, if the wait would outlast ctx's deadline.
func (l *RateLimited) Embed(ctx context.Context, req *Request) (*Result, error) {
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	n := req.tokens()
	reqLim, tokLim := l.limiters()
	if tokLim != nil {
		tpm := int(float64(tokLim.Limit())*60/(1-l.margin) + 0.5)
		if most := l.maxRequest(tpm); n > most {
			return nil, fmt.Errorf("request of %d tokens, more than the %d allowed in one request under %d tokens per minute: %w",
				n, most, tpm, ErrRequestTooLarge)
		}
	}
	if err := wait(ctx, reqLim, 1, tokLim, n, l.noteWait); err != nil {
		return nil, err
	}
	// A stop during the wait: the batch is not sent (its limiter
	// reservation is spent, which only slows a later run's first second).
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	res, err := l.inner.Embed(ctx, req)
	var rl *RateLimit
	if res != nil {
		rl = res.RateLimit
	} else if pe, ok := errors.AsType[*ProviderError](err); ok {
		rl = pe.RateLimit
	}
	if rl != nil {
		l.observe(rl)
	}
	return res, err
}

// noteWait logs, at most once a second, that a request is held back by
// the tokens (tpm) or the requests budget for d.
func (l *RateLimited) noteWait(ctx context.Context, tpm bool, d time.Duration) {
	if d < minLoggedWait || !l.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastWaitLog.Load()
	if now-last < int64(time.Second) || !l.lastWaitLog.CompareAndSwap(last, now) {
		return
	}
	msg := WaitingForRPM
	if tpm {
		msg = WaitingForTPM
	}
	l.log.DebugContext(ctx, msg, "wait", d.Round(time.Millisecond))
}

// minLoggedWait is the shortest hold that is logged: shorter ones are the
// ordinary pacing of a request stream.
const minLoggedWait = 100 * time.Millisecond

// wait reserves 1 request and n tokens now and sleeps until both are due.
// Weights above a limiter's burst are reserved in burst-sized pieces, so a
// big request waits for its whole weight instead of failing. Before it
// sleeps it calls note with the longer of the two waits and whether it is
// the tokens' (tpm).
func wait(ctx context.Context, reqLim *rate.Limiter, r int, tokLim *rate.Limiter, n int, note func(ctx context.Context, tpm bool, d time.Duration)) error {
	now := time.Now()
	var rs []*rate.Reservation
	cancel := func() {
		// Newest first: a reservation gives back only what no later one
		// has built on.
		t := time.Now()
		for i := len(rs) - 1; i >= 0; i-- {
			rs[i].CancelAt(t)
		}
	}
	var delay time.Duration
	tpm := false // the tokens' wait is the longer
	for _, w := range []struct {
		lim *rate.Limiter
		n   int
	}{{reqLim, r}, {tokLim, n}} {
		if w.lim == nil {
			continue
		}
		for left := w.n; left > 0; {
			k := min(left, w.lim.Burst())
			x := w.lim.ReserveN(now, k)
			if !x.OK() {
				cancel()
				return fmt.Errorf("reserving %d of the rate limit: %w", k, ErrRequestTooLarge)
			}
			rs = append(rs, x)
			if d := x.DelayFrom(now); d > delay {
				delay, tpm = d, w.lim == tokLim
			}
			left -= k
		}
	}
	if delay <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(delay).After(dl) {
		cancel()
		return fmt.Errorf("waiting %s for the rate limit would pass the deadline: %w", delay.Round(time.Millisecond), context.DeadlineExceeded)
	}
	note(ctx, tpm, delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	case <-gateDone(ctx):
		cancel()
		return ErrStopped
	}
}

// observe learns unknown limits and lowers our budget to what the provider
// reports remaining. It never raises it: we may know of requests in flight
// that the provider has not counted yet.
func (l *RateLimited) observe(rl *RateLimit) {
	now := time.Now()
	l.mu.Lock()
	if l.req == nil && rl.LimitRequests > 0 {
		l.req = l.newRequestLimiter(rl.LimitRequests)
		l.log.Info("requests per minute learned from provider headers", "rpm", rl.LimitRequests)
	}
	if l.tok == nil && rl.LimitTokens > 0 {
		l.tok = l.newTokenLimiter(rl.LimitTokens)
		l.log.Info("tokens per minute learned from provider headers", "tpm", rl.LimitTokens)
	}
	reqLim, tokLim := l.req, l.tok
	l.mu.Unlock()
	lower(reqLim, now, rl.RemainingRequests)
	lower(tokLim, now, rl.RemainingTokens)
}

// lower takes tokens out of lim so that it holds at most remaining.
func lower(lim *rate.Limiter, now time.Time, remaining int) {
	if lim == nil || remaining < 0 {
		return
	}
	if excess := lim.TokensAt(now) - float64(remaining); excess >= 1 {
		for k := int(excess); k > 0; k -= lim.Burst() {
			lim.ReserveN(now, min(k, lim.Burst()))
		}
	}
}
