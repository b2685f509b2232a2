package embedder_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

func newRetrying(t testing.TB, inner embedder.Embedder, cfg embedder.RetryConfig) *embedder.Retrying {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	r, err := embedder.NewRetrying(inner, cfg)
	if err != nil {
		t.Fatalf("NewRetrying: %v", err)
	}
	return r
}

func oneChunk(doc string, idx int) *embedder.Request {
	return &embedder.Request{Inputs: []embedder.Input{{Text: "text of " + doc, Tokens: 3, DocID: doc, ChunkIndex: idx}}}
}

// TestRetryingHonoursRetryAfter: after a 429 asking for 7s, the next
// attempt comes no sooner (time is synctest's fake clock).
func TestRetryingHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &embeddertest.Fake{Script: []embeddertest.Step{embeddertest.RateLimited(7 * time.Second), embeddertest.OK()}}
		r := newRetrying(t, fake, embedder.RetryConfig{BaseDelay: 100 * time.Millisecond})
		start := time.Now()
		if _, err := r.Embed(t.Context(), oneChunk("a", 0)); err != nil {
			t.Fatalf("Embed: %v", err)
		}
		if waited := time.Since(start); waited < 7*time.Second {
			t.Errorf("retried after %v, before the provider's retry-after of 7s", waited)
		}
		if fake.Calls() != 2 {
			t.Errorf("calls = %d, want 2", fake.Calls())
		}
	})
}

// TestRetryingNeverRetriesPermanentErrors: bad input, auth, not found, too
// large, unprocessable and an exhausted quota are returned after one call,
// naming the chunk.
func TestRetryingNeverRetriesPermanentErrors(t *testing.T) {
	t.Parallel()
	steps := map[string]embeddertest.Step{
		"400": embeddertest.Status(400), "401": embeddertest.Status(401), "403": embeddertest.Status(403),
		"404": embeddertest.Status(404), "413": embeddertest.Status(413), "422": embeddertest.Status(422),
		"429insufficient_quota": {Status: 429, Code: "insufficient_quota"},
	}
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := &embeddertest.Fake{Script: []embeddertest.Step{step, embeddertest.OK()}}
			r := newRetrying(t, fake, embedder.RetryConfig{})
			_, err := r.Embed(t.Context(), oneChunk("docs/guide.md", 4))
			if err == nil {
				t.Fatal("Embed succeeded; the fake failed first")
			}
			if fake.Calls() != 1 {
				t.Errorf("calls = %d, want 1 (never retried)", fake.Calls())
			}
			pe, ok := errors.AsType[*embedder.ProviderError](err)
			if !ok || pe.DocID != "docs/guide.md" || pe.ChunkIndex != 4 {
				t.Errorf("err = %v, want a ProviderError naming chunk 4 of docs/guide.md", err)
			}
			if !strings.Contains(err.Error(), `chunk 4 of document "docs/guide.md"`) {
				t.Errorf("error %q does not name the chunk", err)
			}
		})
	}
}

// TestRetryingRetriesTransientFailures: 5xx, reset, timeout and malformed
// answers are retried; a provider that keeps failing is given up on after
// MaxAttempts.
func TestRetryingRetriesTransientFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &embeddertest.Fake{Script: []embeddertest.Step{
			embeddertest.ServerError(), {Err: embedder.ErrConnectionReset}, {Err: embedder.ErrTimeout},
			{Status: 200, Err: embedder.ErrMalformedResponse}, embeddertest.Status(503), embeddertest.OK(),
		}}
		r := newRetrying(t, fake, embedder.RetryConfig{})
		if _, err := r.Embed(t.Context(), oneChunk("a", 0)); err != nil {
			t.Fatalf("Embed: %v", err)
		}
		if fake.Calls() != 6 {
			t.Errorf("calls = %d, want 6", fake.Calls())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		fake := &embeddertest.Fake{Func: func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
			return nil, &embedder.ProviderError{Status: 502, InputIndex: -1}
		}}
		r := newRetrying(t, fake, embedder.RetryConfig{MaxAttempts: 4})
		_, err := r.Embed(t.Context(), oneChunk("a", 0))
		if pe, ok := errors.AsType[*embedder.ProviderError](err); !ok || pe.Status != 502 {
			t.Fatalf("err = %v, want the last 502", err)
		}
		if fake.Calls() != 4 {
			t.Errorf("calls = %d, want MaxAttempts = 4", fake.Calls())
		}
	})
}

// TestRetryingStopsOnCancel: cancelling stops a hung request at once and
// a retry-after wait at once; nothing more is sent.
func TestRetryingStopsOnCancel(t *testing.T) {
	for name, step := range map[string]embeddertest.Step{
		"InFlight":      {Hang: true},
		"InRetryAfter":  embeddertest.RateLimited(time.Hour),
		"InBackoffWait": embeddertest.ServerError(),
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &embeddertest.Fake{Script: []embeddertest.Step{step, step, step}}
				r := newRetrying(t, fake, embedder.RetryConfig{BaseDelay: time.Hour})
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() {
					_, err := r.Embed(ctx, oneChunk("a", 0))
					done <- err
				}()
				synctest.Wait() // Embed is blocked: in the request, or waiting to retry
				start := time.Now()
				cancel()
				err := <-done
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("returned %v after cancel, want at once", d)
				}
				if fake.Calls() != 1 {
					t.Errorf("calls = %d, want 1", fake.Calls())
				}
			})
		})
	}
}

// TestRetryingLowersAndRecoversConcurrency: a burst of 429s halves the
// batches in flight down to 1; successes bring it back to the maximum.
func TestRetryingLowersAndRecoversConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		storm := true
		inFlight, peakAfterStorm := 0, 0
		fake := &embeddertest.Fake{Func: func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
			mu.Lock()
			inFlight++
			s := storm
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if !s {
				peakAfterStorm = max(peakAfterStorm, inFlight)
			}
			inFlight--
			if s {
				return nil, &embedder.ProviderError{Status: 429, Code: "rate_limit_exceeded", RetryAfter: time.Second, InputIndex: -1}
			}
			return embeddertest.Vectors(req, "m", 4), nil
		}}
		r := newRetrying(t, fake, embedder.RetryConfig{MaxConcurrency: 8, ShrinkInterval: time.Millisecond})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 20 {
					if _, err := r.Embed(t.Context(), oneChunk(fmt.Sprint(i), j)); err != nil {
						t.Errorf("Embed: %v", err)
					}
				}
			})
		}
		time.Sleep(10 * time.Second)
		if c := r.Concurrency(); c != 1 {
			t.Errorf("concurrency during the storm = %d, want 1", c)
		}
		mu.Lock()
		storm = false
		mu.Unlock()
		wg.Wait()
		if c := r.Concurrency(); c != 8 {
			t.Errorf("concurrency after the storm = %d, want 8 again", c)
		}
		if peakAfterStorm < 2 {
			t.Errorf("peak in flight after the storm = %d, want recovery above 1", peakAfterStorm)
		}
	})
}

// TestRetryingSplitsBatchesTheServerRefusesAsTooLarge: a server with a small
// input cap (TEI's is 32) refuses the batch; the batch is split until it
// fits, every chunk is embedded once and in order, and later batches are
// split before they are sent, so only the first batch sees refusals.
func TestRetryingSplitsBatchesTheServerRefusesAsTooLarge(t *testing.T) {
	t.Parallel()
	sim, srv := serveSim(t, embedder.SimulatorConfig{MaxInputs: 4})
	r := newRetrying(t, newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1"}), embedder.RetryConfig{})
	for round, doc := range []string{"first.md", "second.md"} {
		in := chunks(t, doc, 13)
		res, err := r.Embed(t.Context(), &embedder.Request{Model: "text-embedding-3-small", Inputs: in})
		if err != nil {
			t.Fatalf("round %d: Embed: %v", round, err)
		}
		want := 0
		for i, c := range in {
			want += c.Tokens
			if !sameVector(res.Vectors[i], embedder.SimulatedVector("text-embedding-3-small", 1536, c.Text)) {
				t.Fatalf("round %d: vector %d is not chunk %d's", round, i, i)
			}
		}
		if len(res.Vectors) != len(in) || res.Usage.PromptTokens != want {
			t.Errorf("round %d: %d vectors, %d tokens; want %d, %d", round, len(res.Vectors), res.Usage.PromptTokens, len(in), want)
		}
	}
	led := sim.Ledger()
	// 13 refused → at most 6: the 6 refused → at most 3; the 7 is split
	// before it is sent. Two refusals, then none in the second round.
	if led.Totals.Rejected != 2 || led.Totals.BilledInputs != 26 {
		t.Errorf("ledger: %d rejected, %d billed inputs; want 2 and 26", led.Totals.Rejected, led.Totals.BilledInputs)
	}
	for _, req := range led.Requests {
		if req.Status == 200 && req.Inputs > 3 {
			t.Errorf("a batch of %d inputs was sent after the server's cap was learned", req.Inputs)
		}
	}
	for sha, n := range led.Inputs {
		if n != 1 {
			t.Errorf("input %s… billed %d times", sha[:12], n)
		}
	}
}

// TestBatchTooLarge: which refusals mean "send fewer inputs".
func TestBatchTooLarge(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pe   embedder.ProviderError
		want bool
	}{
		{embedder.ProviderError{Status: 413, Message: "Payload Too Large"}, true},
		{embedder.ProviderError{Status: 422, Message: "batch size 64 > maximum allowed batch size 32"}, true}, // TEI
		{embedder.ProviderError{Status: 400, Message: "'$.input' is invalid: 64 inputs, over the maximum of 32 per request"}, true},
		{embedder.ProviderError{Status: 400, Message: "This model's maximum context length is 8192 tokens"}, false},
		{embedder.ProviderError{Status: 422, Message: "Input validation error: inputs cannot be empty"}, false},
		{embedder.ProviderError{Status: 429, Message: "Request too large for text-embedding-3-small"}, false},
	} {
		if got := tt.pe.BatchTooLarge(); got != tt.want {
			t.Errorf("%d %q: BatchTooLarge = %v, want %v", tt.pe.Status, tt.pe.Message, got, tt.want)
		}
	}
}
