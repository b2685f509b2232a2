package embedder_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

func newRateLimited(t testing.TB, inner embedder.Embedder, cfg embedder.RateLimitConfig) *embedder.RateLimited {
	t.Helper()
	l, err := embedder.NewRateLimited(inner, cfg)
	if err != nil {
		t.Fatalf("NewRateLimited: %v", err)
	}
	return l
}

// batches splits docs × per chunks into batches of size b.
func batches(t testing.TB, docs, per, b int) []*embedder.Request {
	t.Helper()
	var all []embedder.Input
	for d := range docs {
		all = append(all, chunks(t, fmt.Sprintf("doc-%03d", d), per)...)
	}
	var reqs []*embedder.Request
	for len(all) > 0 {
		n := min(b, len(all))
		reqs = append(reqs, &embedder.Request{Model: "text-embedding-3-small", Dimensions: 16, Inputs: all[:n]})
		all = all[n:]
	}
	return reqs
}

// embedAll embeds every batch with workers goroutines and checks every
// vector; it returns the first error.
func embedAll(t *testing.T, e embedder.Embedder, reqs []*embedder.Request, workers int) error {
	t.Helper()
	next := make(chan *embedder.Request)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Go(func() {
			for req := range next {
				res, err := e.Embed(t.Context(), req)
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					continue
				}
				for i, in := range req.Inputs {
					if !sameVector(res.Vectors[i], embedder.SimulatedVector(req.Model, req.Dimensions, in.Text)) {
						t.Errorf("chunk %s#%d got another input's vector", in.DocID, in.ChunkIndex)
					}
				}
			}
		})
	}
	for _, r := range reqs {
		next <- r
	}
	close(next)
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// checkLedgerOnce asserts that every input of reqs was billed exactly once.
func checkLedgerOnce(t *testing.T, l embedder.Ledger, reqs []*embedder.Request) {
	t.Helper()
	n := 0
	for _, r := range reqs {
		for _, in := range r.Inputs {
			n++
			if c := l.Inputs[embedder.TextSHA256(in.Text)]; c != 1 {
				t.Errorf("chunk %s#%d billed %d times, want once", in.DocID, in.ChunkIndex, c)
			}
		}
	}
	if len(l.Inputs) != n || l.Totals.BilledInputs != n {
		t.Errorf("ledger bills %d texts / %d inputs, want %d", len(l.Inputs), l.Totals.BilledInputs, n)
	}
}

// TestRateLimitedNeverExceedsKnownLimits: with the provider's RPM and TPM
// known, eight workers never get a 429, and the run takes as long as the
// binding limit says (not much longer).
func TestRateLimitedNeverExceedsKnownLimits(t *testing.T) {
	reqs := batches(t, 30, 20, 6) // 100 batches of ~6 x 25 tokens
	tokens := 0
	for _, r := range reqs {
		for _, in := range r.Inputs {
			tokens += in.Tokens
		}
	}
	for _, lim := range []struct {
		name     string
		rpm, tpm int
	}{
		{"TPMBinds", 6000, tokens / 2}, // 2 minutes of tokens
		{"RPMBinds", 50, 10_000_000},   // 2 minutes of requests
	} {
		t.Run(lim.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := newSim(t, embedder.SimulatorConfig{RPM: lim.rpm, TPM: lim.tpm, Latency: 200 * time.Millisecond})
				start := time.Now()
				e := newRetrying(t, newRateLimited(t, sim, embedder.RateLimitConfig{RPM: lim.rpm, TPM: lim.tpm}),
					embedder.RetryConfig{MaxConcurrency: 8})
				if err := embedAll(t, e, reqs, 8); err != nil {
					t.Fatalf("embedding: %v", err)
				}
				elapsed := time.Since(start)
				l := sim.Ledger()
				if got := l.Totals.RateLimited; got != 0 {
					t.Errorf("simulator answered 429 %d times; the limiter should have kept under both limits", got)
				}
				// The limiter sends one second of each limit at once, then
				// the rest at the limits' rates.
				bound := max(time.Duration(float64(len(reqs)-max(1, lim.rpm/60))/float64(lim.rpm)*float64(time.Minute)),
					time.Duration(float64(tokens-lim.tpm/60)/float64(lim.tpm)*float64(time.Minute)))
				if elapsed < bound*97/100 || elapsed > bound*110/100 {
					t.Errorf("took %v, want about the binding limit's %v", elapsed, bound)
				}
			})
		})
	}
}

// TestRateLimitedRejectsRequestLargerThanTPM: a request that could never
// fit is an error at once, not a hang, and is never sent.
func TestRateLimitedRejectsRequestLargerThanTPM(t *testing.T) {
	t.Parallel()
	fake := &embeddertest.Fake{}
	l := newRateLimited(t, fake, embedder.RateLimitConfig{RPM: 100, TPM: 1000})
	req := &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 1001, DocID: "big", ChunkIndex: 0}}}
	_, err := l.Embed(t.Context(), req)
	if !errors.Is(err, embedder.ErrRequestTooLarge) {
		t.Fatalf("err = %v, want ErrRequestTooLarge", err)
	}
	if fake.Calls() != 0 {
		t.Errorf("the request was sent")
	}
	// Nor does Retrying retry it.
	r := newRetrying(t, l, embedder.RetryConfig{})
	if _, err := r.Embed(t.Context(), req); !errors.Is(err, embedder.ErrRequestTooLarge) || fake.Calls() != 0 {
		t.Errorf("Retrying: err = %v, calls = %d", err, fake.Calls())
	}
}

// TestRateLimitedLearnsLimitsFromHeaders: with no limits configured, the
// x-ratelimit-* headers of the first answer set them, and a serial client
// then never gets a 429.
func TestRateLimitedLearnsLimitsFromHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := newSim(t, embedder.SimulatorConfig{RPM: 30, TPM: 100_000})
		o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: "http://sim/v1", Transport: embeddertest.HandlerTransport{Handler: sim}})
		l := newRateLimited(t, o, embedder.RateLimitConfig{})
		reqs := batches(t, 10, 10, 1) // 100 requests, over 3 minutes at 30 RPM
		if err := embedAll(t, l, reqs, 4); err != nil {
			t.Fatalf("embedding: %v", err)
		}
		if got := sim.Ledger().Totals.RateLimited; got != 0 {
			t.Errorf("%d answers were 429", got)
		}
	})
}

// TestRateLimitedFollowsRemainingHeader: when another client spends the
// same key's budget, the remaining-tokens header lowers ours, so at most
// the first request after that meets a 429.
func TestRateLimitedFollowsRemainingHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := newSim(t, embedder.SimulatorConfig{TPM: 6000})
		l := newRateLimited(t, sim, embedder.RateLimitConfig{TPM: 6000, MaxRequestTokens: 1000})
		r := newRetrying(t, l, embedder.RetryConfig{MaxConcurrency: 1})
		reqs := batches(t, 20, 10, 10) // 200 inputs of ~25 tokens in 20 batches
		if err := embedAll(t, r, reqs[:1], 1); err != nil {
			t.Fatal(err)
		}
		// Someone else takes most of the bucket behind our back.
		other := &embedder.Request{Model: "other", Dimensions: 1}
		for i := 0; i < 4; i++ {
			other.Inputs = append(other.Inputs, chunks(t, fmt.Sprintf("other-%d", i), 40)...)
		}
		if _, err := sim.Embed(t.Context(), other); err != nil {
			t.Fatalf("other client: %v", err)
		}
		if err := embedAll(t, r, reqs[1:], 1); err != nil {
			t.Fatal(err)
		}
		if got := sim.Ledger().Totals.RateLimited; got > 1 {
			t.Errorf("%d answers were 429, want at most the first after the other client", got)
		}
	})
}

// TestRateLimitedBigRequestWaitsForItsWeight: a request heavier than one
// second of tokens (but within TPM) waits until its whole weight has accrued,
// then goes; cancelling a wait gives the tokens back.
func TestRateLimitedBigRequestWaitsForItsWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &embeddertest.Fake{}
		l := newRateLimited(t, fake, embedder.RateLimitConfig{TPM: 600, Margin: 0.0001}) // 10 tokens a second
		big := &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 300}}}
		start := time.Now()
		if _, err := l.Embed(t.Context(), big); err != nil {
			t.Fatalf("Embed: %v", err)
		}
		// 10 tokens were there at the start; 290 more take 29s.
		if got := time.Since(start).Round(time.Second); got != 29*time.Second {
			t.Errorf("waited %v, want 29s", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := l.Embed(ctx, big)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		// The cancelled reservation was returned: a 10-token request now
		// waits one second, not 31.
		start = time.Now()
		if _, err := l.Embed(t.Context(), &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 10}}}); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start).Round(time.Second); got > time.Second {
			t.Errorf("after the cancelled wait, a 10-token request waited %v", got)
		}
		if fake.Calls() != 2 {
			t.Errorf("calls = %d, want 2", fake.Calls())
		}
	})
}

// recordHandler keeps the records logged to it, at every level.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// waits returns the messages and "wait" attributes of the waiting lines.
func (h *recordHandler) waits() (msgs []string, waits []time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message != embedder.WaitingForTPM && r.Message != embedder.WaitingForRPM {
			continue
		}
		msgs = append(msgs, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "wait" {
				waits = append(waits, a.Value.Duration())
			}
			return true
		})
	}
	return msgs, waits
}

// TestRateLimitedSaysWhatItWaitsFor: a request held back logs, at debug
// level, which budget holds it (TPM or RPM) and for how long, at most once a
// second; a request that goes at once logs nothing.
func TestRateLimitedSaysWhatItWaitsFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rpm, tpm int
		want     string
	}{
		{"TPM", 0, 600, embedder.WaitingForTPM}, // 10 tokens a second
		{"RPM", 60, 0, embedder.WaitingForRPM},  // 1 request a second
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &recordHandler{}
				l := newRateLimited(t, &embeddertest.Fake{}, embedder.RateLimitConfig{RPM: tc.rpm, TPM: tc.tpm, Margin: 0.0001, Logger: slog.New(h)})
				req := &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 10}}}
				if _, err := l.Embed(t.Context(), req); err != nil { // the first second's budget: no wait
					t.Fatal(err)
				}
				if msgs, _ := h.waits(); len(msgs) != 0 {
					t.Fatalf("a request sent at once logged %q", msgs)
				}
				var wg sync.WaitGroup
				for range 5 { // five more wait 1..5 s, together
					wg.Go(func() {
						if _, err := l.Embed(t.Context(), req); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				msgs, waits := h.waits()
				if len(msgs) != 1 || msgs[0] != tc.want {
					t.Fatalf("waiting lines %q, want one %q (at most one a second)", msgs, tc.want)
				}
				if len(waits) != 1 || waits[0] < 900*time.Millisecond {
					t.Errorf("wait attributes %v, want the hold of about 1s or more", waits)
				}
				time.Sleep(2 * time.Second) // the budget refills a second's worth
				wg.Go(func() { l.Embed(t.Context(), req) })
				wg.Go(func() { l.Embed(t.Context(), req) })
				wg.Wait()
				if msgs, _ := h.waits(); len(msgs) != 2 {
					t.Errorf("after a second, a new hold logged %d lines in all, want 2", len(msgs))
				}
			})
		})
	}
}
