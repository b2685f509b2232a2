package embedder

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    map[string]string
		want *RateLimit
	}{
		{"None", map[string]string{}, nil},
		{"OpenAI", map[string]string{
			"x-ratelimit-limit-requests": "3000", "x-ratelimit-remaining-requests": "2999", "x-ratelimit-reset-requests": "20ms",
			"x-ratelimit-limit-tokens": "1000000", "x-ratelimit-remaining-tokens": "999000", "x-ratelimit-reset-tokens": "6m0s",
		}, &RateLimit{3000, 1000000, 2999, 999000, 20 * time.Millisecond, 6 * time.Minute}},
		{"LiteLLMIntegerSeconds", map[string]string{"x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "20"},
			&RateLimit{-1, -1, -1, 5, -1, 20 * time.Second}},
		{"AzureMinusOneIsUnknown", map[string]string{"x-ratelimit-remaining-tokens": "-1", "x-ratelimit-remaining-requests": "0"},
			&RateLimit{-1, -1, 0, -1, -1, -1}},
		{"Garbage", map[string]string{"x-ratelimit-remaining-tokens": "lots", "x-ratelimit-reset-tokens": "soon"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			got := parseRateLimit(h)
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    map[string]string
		need int
		want time.Duration
	}{
		{"MillisecondsFirst", map[string]string{"retry-after-ms": "1500", "retry-after": "9"}, 0, 1500 * time.Millisecond},
		{"Seconds", map[string]string{"retry-after": "9"}, 0, 9 * time.Second},
		{"HTTPDate", map[string]string{"retry-after": now.Add(30 * time.Second).Format(http.TimeFormat)}, 0, 30 * time.Second},
		// 1000 tokens refill in 60s; 100 are left and 400 are needed: 18s, not the full reset.
		{"FromTokenReset", map[string]string{"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "100",
			"x-ratelimit-reset-tokens": "54s"}, 400, 18 * time.Second},
		{"FromRequestReset", map[string]string{"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
			"x-ratelimit-reset-requests": "1m0s"}, 1, time.Second},
		{"EnoughTokensLeft", map[string]string{"x-ratelimit-remaining-tokens": "500", "x-ratelimit-reset-tokens": "1s"}, 400, 0},
		{"Nothing", map[string]string{}, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			if got := retryAfter(h, now, parseRateLimit(h), tt.need); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFormatResetLikeOpenAI(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 12 * time.Millisecond: "12ms", 400 * time.Microsecond: "1ms", time.Second: "1s",
		1500 * time.Millisecond: "1.5s", 6 * time.Minute: "6m0s", 8640 * time.Millisecond: "8.64s",
	} {
		if got := formatReset(d); got != want {
			t.Errorf("formatReset(%v) = %q, want %q", d, got, want)
		}
		if d > 0 {
			if back, err := time.ParseDuration(formatReset(d)); err != nil || back <= 0 {
				t.Errorf("%q does not parse back: %v", formatReset(d), err)
			}
		}
	}
}
