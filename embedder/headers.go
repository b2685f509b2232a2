package embedder

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names OpenAI uses for rate limits. retry-after-ms is what OpenAI's
// own SDKs read first, then retry-after (seconds or an HTTP date).
const (
	headerRetryAfter        = "Retry-After"
	headerRetryAfterMS      = "Retry-After-Ms"
	headerLimitRequests     = "X-Ratelimit-Limit-Requests"
	headerLimitTokens       = "X-Ratelimit-Limit-Tokens"
	headerRemainingRequests = "X-Ratelimit-Remaining-Requests"
	headerRemainingTokens   = "X-Ratelimit-Remaining-Tokens"
	headerResetRequests     = "X-Ratelimit-Reset-Requests"
	headerResetTokens       = "X-Ratelimit-Reset-Tokens"
)

// RateLimit is what a provider's x-ratelimit-* headers said. A field is -1
// when its header was missing or unparsable: absent is "unknown", not zero.
// Counts are requests or tokens; resets are the time until that bucket is
// full again (OpenAI's "6m0s", "12ms" format; LiteLLM's integer seconds are
// accepted too).
type RateLimit struct {
	LimitRequests, LimitTokens         int
	RemainingRequests, RemainingTokens int
	ResetRequests, ResetTokens         time.Duration
}

// parseRateLimit reads the x-ratelimit-* headers of h, or returns nil when
// there are none.
func parseRateLimit(h http.Header) *RateLimit {
	rl := &RateLimit{
		LimitRequests:     headerInt(h, headerLimitRequests),
		LimitTokens:       headerInt(h, headerLimitTokens),
		RemainingRequests: headerInt(h, headerRemainingRequests),
		RemainingTokens:   headerInt(h, headerRemainingTokens),
		ResetRequests:     headerDuration(h, headerResetRequests),
		ResetTokens:       headerDuration(h, headerResetTokens),
	}
	if *rl == (RateLimit{-1, -1, -1, -1, -1, -1}) {
		return nil
	}
	return rl
}

// headerInt returns the non-negative integer value of header k, or -1.
// Azure has been seen sending -1; that reads as unknown too.
func headerInt(h http.Header, k string) int {
	v := strings.TrimSpace(h.Get(k))
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// headerDuration parses "6m0s", "12ms", "1.5s" or plain seconds ("20").
func headerDuration(h http.Header, k string) time.Duration {
	v := strings.TrimSpace(h.Get(k))
	if v == "" {
		return -1
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e9 {
		return time.Duration(f * float64(time.Second))
	}
	return -1
}

// retryAfter returns how long the provider asked to wait: retry-after-ms,
// then retry-after (seconds or HTTP date), else, on a 429 whose headers show
// an empty bucket, the time until that bucket holds what this request needs
// (not the full reset, which is when the bucket is full again). 0: unknown.
func retryAfter(h http.Header, now time.Time, rl *RateLimit, needTokens int) time.Duration {
	if v := strings.TrimSpace(h.Get(headerRetryAfterMS)); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e12 {
			return time.Duration(f * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get(headerRetryAfter)); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1e9 {
			return time.Duration(f * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d
			}
			return 0
		}
	}
	if rl == nil {
		return 0
	}
	var d time.Duration
	if rl.RemainingRequests == 0 && rl.ResetRequests > 0 {
		// One request comes back after reset/limit; without the limit, the
		// reset is all we know.
		w := rl.ResetRequests
		if rl.LimitRequests > 0 {
			w = time.Duration(math.Ceil(float64(rl.ResetRequests) / float64(rl.LimitRequests)))
		}
		d = max(d, w)
	}
	if rl.RemainingTokens >= 0 && rl.RemainingTokens < needTokens && rl.ResetTokens > 0 {
		w := rl.ResetTokens
		if rl.LimitTokens > rl.RemainingTokens {
			// The bucket refills (limit-remaining) tokens in reset.
			perToken := float64(rl.ResetTokens) / float64(rl.LimitTokens-rl.RemainingTokens)
			w = min(w, time.Duration(perToken*float64(needTokens-rl.RemainingTokens)))
		}
		d = max(d, w)
	}
	return d
}

// formatReset writes d the way OpenAI does: "6m0s", "1.5s", "12ms", "0s".
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Second {
		return strconv.FormatInt(int64(max(d.Round(time.Millisecond), time.Millisecond)/time.Millisecond), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// setRateLimitHeaders writes rl and, when wait > 0, retry-after headers.
func setRateLimitHeaders(h http.Header, rl *RateLimit, wait time.Duration) {
	if rl != nil {
		if rl.LimitRequests >= 0 {
			h.Set(headerLimitRequests, strconv.Itoa(rl.LimitRequests))
			h.Set(headerRemainingRequests, strconv.Itoa(rl.RemainingRequests))
			h.Set(headerResetRequests, formatReset(rl.ResetRequests))
		}
		if rl.LimitTokens >= 0 {
			h.Set(headerLimitTokens, strconv.Itoa(rl.LimitTokens))
			h.Set(headerRemainingTokens, strconv.Itoa(rl.RemainingTokens))
			h.Set(headerResetTokens, formatReset(rl.ResetTokens))
		}
	}
	if wait > 0 {
		h.Set(headerRetryAfterMS, strconv.FormatInt(int64(max(wait.Round(time.Millisecond), time.Millisecond)/time.Millisecond), 10))
		h.Set(headerRetryAfter, strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
	}
}
