package embedder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
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
	// MaxRequestTokens is the largest request the caller will send, in
	// tokens (the model's per-request limit): it is how many tokens may go
	// out at once. Default, and at most, TPM. A bigger request fails with
	// ErrRequestTooLarge.
	MaxRequestTokens int
	// Margin is the fraction of each limit left unused, so that requests
	// bunched by the network still fit the provider's bucket; default 0.01.
	Margin float64
	// Logger gets a line when a limit is learned from headers; nil discards.
	Logger *slog.Logger
}

// RateLimited holds each request back until both the requests-per-minute
// and the token-weighted tokens-per-minute budgets allow it, so that neither
// limit is exceeded. At most one second of requests and MaxRequestTokens
// tokens go out at once; after that requests flow at the limits' rates.
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

func (l *RateLimited) newRequestLimiter(rpm int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(rpm)*(1-l.margin)/60), max(1, rpm/60))
}

func (l *RateLimited) newTokenLimiter(tpm int) *rate.Limiter {
	burst := tpm
	if l.maxTokens > 0 {
		burst = min(burst, l.maxTokens)
	}
	return rate.NewLimiter(rate.Limit(float64(tpm)*(1-l.margin)/60), burst)
}

func (l *RateLimited) limiters() (req, tok *rate.Limiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.req, l.tok
}

// Embed waits for one request and the request's tokens (Input.Tokens, or an
// estimate for inputs without a count), then calls the wrapped embedder.
// It returns ErrRequestTooLarge, without waiting, for a request larger than
// the token burst, and ctx's error if ctx ends while waiting.
func (l *RateLimited) Embed(ctx context.Context, req *Request) (*Result, error) {
	n := req.tokens()
	reqLim, tokLim := l.limiters()
	if tokLim != nil && n > tokLim.Burst() {
		return nil, fmt.Errorf("request of %d tokens, more than the %d that may be sent at once under %d tokens per minute: %w",
			n, tokLim.Burst(), int(float64(tokLim.Limit())*60/(1-l.margin)+0.5), ErrRequestTooLarge)
	}
	if reqLim != nil {
		if err := reqLim.Wait(ctx); err != nil {
			return nil, waitError(ctx, "a request", err)
		}
	}
	if tokLim != nil {
		if err := tokLim.WaitN(ctx, n); err != nil {
			return nil, waitError(ctx, fmt.Sprintf("%d tokens", n), err)
		}
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

func waitError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("waiting for the rate limit to allow %s: %w", what, err)
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
		lim.ReserveN(now, min(int(excess), lim.Burst()))
	}
}
