package embedder_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

// TestSurvives429Storm runs the production stack, Retrying(RateLimited(
// OpenAI)), with go-openai speaking HTTP to the simulator, through a storm:
// the client does not know the limits (30 RPM), 16 workers start at once,
// and on top of the real limits about 70% of requests are answered 429 (some
// as a 200 with a rate-limit body), and some with 5xx, resets and malformed
// bodies. More than half of all requests are 429s, and still every
// chunk is embedded, with its own vector, and billed exactly once.
func TestSurvives429Storm(t *testing.T) {
	for _, format := range []string{"float", "base64"} {
		t.Run(format, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := newSim(t, embedder.SimulatorConfig{
					RPM: 30, TPM: 20_000, Latency: 50 * time.Millisecond,
					Fault429: 0.6, FaultRateLimitBody: 0.2, Fault5xx: 0.05, FaultReset: 0.02, FaultMalformed: 0.02, Seed: 7,
				})
				o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: "http://sim/v1", EncodingFormat: format,
					Transport: embeddertest.HandlerTransport{Handler: sim}})
				e := newRetrying(t, newRateLimited(t, o, embedder.RateLimitConfig{}),
					embedder.RetryConfig{MaxConcurrency: 16, BaseDelay: 200 * time.Millisecond, MaxDelay: 10 * time.Second})
				reqs := batches(t, 24, 16, 8) // 384 chunks in 48 batches
				if err := embedAll(t, e, reqs, 16); err != nil {
					t.Fatalf("embedding through the storm: %v", err)
				}
				l := sim.Ledger()
				if l.Totals.RateLimited*2 <= l.Totals.Requests {
					t.Errorf("only %d of %d requests were 429: not a storm", l.Totals.RateLimited, l.Totals.Requests)
				}
				if l.Totals.OverLimit != 0 {
					t.Errorf("%d requests went over the real RPM/TPM; once learned from the headers, the limiter keeps under them", l.Totals.OverLimit)
				}
				checkLedgerOnce(t, l, reqs)
				t.Logf("%d requests, %d rate limited, %d faults, %d billed", l.Totals.Requests, l.Totals.RateLimited, l.Totals.Faults, l.Totals.Billed)
			})
		})
	}
}
