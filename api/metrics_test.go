package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/planner/jobs"
)

// TestMetricsCountWhatTheEmbedderStackDoes stacks the metrics decorators
// as `reembed serve` does, Batches(Retrying(Attempts(provider))), and checks
// the counters after a 413 that splits the batch (its halves are not
// retries), then a 429, a 500 and successes.
func TestMetricsCountWhatTheEmbedderStackDoes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := api.NewMetrics(func() map[jobs.State]int {
		return map[jobs.State]int{jobs.Running: 2, jobs.Succeeded: 5}
	}, 60, 1000, func() time.Time { return now })
	fake := &embeddertest.Fake{Script: []embeddertest.Step{embeddertest.Status(413), embeddertest.RateLimited(time.Millisecond), embeddertest.ServerError()}}
	retry, err := embedder.NewRetrying(m.Attempts(fake), embedder.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	stack := m.Batches(retry, 20_000) // $0.02 per 1M tokens
	req := &embedder.Request{Inputs: []embedder.Input{{Text: "a", Tokens: 300}, {Text: "b", Tokens: 200}}}
	if _, err := stack.Embed(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP reembed_embed_batches_total Batches the rebuild jobs sent to the embedder (each may take several attempts).
# TYPE reembed_embed_batches_total counter
reembed_embed_batches_total 1
# HELP reembed_embed_billed_tokens_total Tokens the provider billed, over all jobs.
# TYPE reembed_embed_billed_tokens_total counter
reembed_embed_billed_tokens_total 500
# HELP reembed_embed_cost_usd_total Cost of the billed tokens in US dollars, at the catalog price.
# TYPE reembed_embed_cost_usd_total counter
reembed_embed_cost_usd_total 1e-05
# HELP reembed_embed_rate_limited_total Provider answers 429 (rate limited), retried after retry-after.
# TYPE reembed_embed_rate_limited_total counter
reembed_embed_rate_limited_total 1
# HELP reembed_embed_requests_total HTTP requests (attempts) sent to the provider, by outcome: ok, rate_limited, error.
# TYPE reembed_embed_requests_total counter
reembed_embed_requests_total{outcome="error"} 2
reembed_embed_requests_total{outcome="ok"} 2
reembed_embed_requests_total{outcome="rate_limited"} 1
# HELP reembed_embed_retries_total Attempts beyond the first of a batch (429, 5xx, timeouts, resets); the halves of a batch split for its size are new requests, not retries.
# TYPE reembed_embed_retries_total counter
reembed_embed_retries_total 2
# HELP reembed_jobs Rebuild jobs by state.
# TYPE reembed_jobs gauge
reembed_jobs{state="budget_exhausted"} 0
reembed_jobs{state="cancelled"} 0
reembed_jobs{state="failed"} 0
reembed_jobs{state="interrupted"} 0
reembed_jobs{state="queued"} 0
reembed_jobs{state="running"} 2
reembed_jobs{state="succeeded"} 5
`
	names := []string{"reembed_embed_batches_total", "reembed_embed_billed_tokens_total", "reembed_embed_cost_usd_total",
		"reembed_embed_rate_limited_total", "reembed_embed_requests_total", "reembed_embed_retries_total", "reembed_jobs"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Five attempts in this minute, against 60 RPM and 1000 TPM: the whole
	// batch (500 tokens), three of its first half (300) and its second (200).
	util := `
# HELP reembed_rate_limit_utilization Fraction of the provider limit used in the last minute: requests over RPM (limit=rpm), tokens over TPM (limit=tpm); 0 when the limit is unknown.
# TYPE reembed_rate_limit_utilization gauge
reembed_rate_limit_utilization{limit="rpm"} 0.08333333333333333
reembed_rate_limit_utilization{limit="tpm"} 1.6
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(util), "reembed_rate_limit_utilization"); err != nil {
		t.Error(err)
	}
	now = now.Add(61 * time.Second) // the minute has passed
	m.SetLimits(60, 1000)
	after := strings.ReplaceAll(strings.ReplaceAll(util, "} 0.08333333333333333", "} 0"), "} 1.6", "} 0")
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(after), "reembed_rate_limit_utilization"); err != nil {
		t.Error(err)
	}
}
