package embedder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

// TestGateStopsBatchesWaitingOnTheLimiter: batches queued on the rate
// limiter when the gate closes return ErrStopped at once and are never sent;
// the simulator's ledger shows no request that started after Close.
func TestGateStopsBatchesWaitingOnTheLimiter(t *testing.T) {
	t.Parallel()
	sim := newSim(t, embedder.SimulatorConfig{})
	// 60 RPM with a burst of 1: one request now, the next a second later.
	l := newRateLimited(t, sim, embedder.RateLimitConfig{RPM: 60, Margin: 0.001})
	r := newRetrying(t, l, embedder.RetryConfig{MaxConcurrency: 8})
	gate := embedder.NewGate()
	ctx := embedder.WithGate(t.Context(), gate)
	in := chunks(t, "doc", 6)

	if _, err := r.Embed(ctx, &embedder.Request{Inputs: in[:1]}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 1; i < 6; i++ {
		wg.Go(func() {
			_, err := r.Embed(ctx, &embedder.Request{Inputs: in[i : i+1]})
			errs <- err
		})
	}
	// Nothing can be sent for the next second; close the gate now.
	if n := gate.Close(); n != 0 {
		t.Errorf("Close: %d requests in flight, want 0 (all wait on the limiter)", n)
	}
	closed := time.Now()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, embedder.ErrStopped) {
			t.Errorf("waiting batch: err = %v, want ErrStopped", err)
		}
	}
	led := sim.Ledger()
	if led.Totals.Requests != 1 {
		t.Errorf("ledger: %d requests, want 1 (the one sent before the gate closed)", led.Totals.Requests)
	}
	for _, q := range led.Requests {
		if q.Started.After(closed) {
			t.Errorf("request %d started at %s, after the gate closed at %s", q.Seq, q.Started, closed)
		}
	}
	// A closed gate starts nothing, not even with the limiter empty.
	if _, err := sim.Embed(ctx, &embedder.Request{Inputs: in[:1]}); !errors.Is(err, embedder.ErrStopped) {
		t.Errorf("simulator with a closed gate: err = %v, want ErrStopped", err)
	}
}

// TestGateCountsRequestsOnTheWire: InFlight counts requests inside the
// provider client, and the one on the wire finishes after Close.
func TestGateCountsRequestsOnTheWire(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}`)
	}))
	t.Cleanup(srv.Close)
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, EncodingFormat: "float"})
	gate := embedder.NewGate()
	ctx := embedder.WithGate(t.Context(), gate)
	done := make(chan error, 1)
	go func() {
		_, err := o.Embed(ctx, &embedder.Request{Inputs: []embedder.Input{{Text: "abc", Tokens: 1}}})
		done <- err
	}()
	<-arrived
	if n := gate.Close(); n != 1 {
		t.Errorf("Close: %d in flight, want 1", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("request on the wire: %v, want it to finish", err)
	}
	if n := gate.InFlight(); n != 0 {
		t.Errorf("InFlight after the answer = %d", n)
	}
	if _, err := o.Embed(ctx, &embedder.Request{Inputs: []embedder.Input{{Text: "abc", Tokens: 1}}}); !errors.Is(err, embedder.ErrStopped) {
		t.Errorf("after Close: err = %v, want ErrStopped", err)
	}
}

// TestGateStopsRetryBackoff: a batch backing off after a 5xx does not try
// again once the gate closes.
func TestGateStopsRetryBackoff(t *testing.T) {
	t.Parallel()
	fake := &embeddertest.Fake{Script: []embeddertest.Step{embeddertest.ServerError()}}
	r := newRetrying(t, fake, embedder.RetryConfig{BaseDelay: time.Hour, MaxDelay: time.Hour})
	gate := embedder.NewGate()
	ctx := embedder.WithGate(t.Context(), gate)
	done := make(chan error, 1)
	go func() {
		_, err := r.Embed(ctx, &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 1}}})
		done <- err
	}()
	for fake.Calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	gate.Close()
	if err := <-done; !errors.Is(err, embedder.ErrStopped) {
		t.Errorf("err = %v, want ErrStopped", err)
	}
	if n := fake.Calls(); n != 1 {
		t.Errorf("calls = %d, want 1 (no retry after the stop)", n)
	}
}

// TestRetryAfterIsCapped: a provider asking for 999999999 seconds is tried
// again after MaxRetryAfter, and the wait is logged with its cause.
func TestRetryAfterIsCapped(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "999999999")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"message":"Rate limit reached, try again later","type":"requests","code":"rate_limit_exceeded"}}`)
			return
		}
		fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}`)
	}))
	t.Cleanup(srv.Close)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, EncodingFormat: "float"})
	r := newRetrying(t, o, embedder.RetryConfig{MaxRetryAfter: 5 * time.Millisecond, LongWait: time.Millisecond, Logger: logger})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a stall fails the test instead of hanging it
	defer cancel()
	if _, err := r.Embed(ctx, &embedder.Request{Inputs: []embedder.Input{{Text: "abc", Tokens: 1}}}); err != nil {
		t.Fatalf("Embed: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "waiting before retrying", "status=429", "retry_after_asked=", "retry_after_capped_to=5ms", "rate_limit_exceeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRetryWindowRidesOutAnOutage: with a retry window, a batch keeps
// retrying 5xx past MaxAttempts until the window has passed.
func TestRetryWindowRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	outage := make([]embeddertest.Step, 20)
	for i := range outage {
		outage[i] = embeddertest.ServerError()
	}
	fake := &embeddertest.Fake{Script: outage}
	r := newRetrying(t, fake, embedder.RetryConfig{MaxAttempts: 3, RetryWindow: time.Hour, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond})
	if _, err := r.Embed(t.Context(), &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 1}}}); err != nil {
		t.Fatalf("Embed through 20 failures with a window of an hour: %v", err)
	}
	if n := fake.Calls(); n != 21 {
		t.Errorf("calls = %d, want 21", n)
	}
	// Without a window, MaxAttempts decides as before.
	fake = &embeddertest.Fake{Script: outage}
	r = newRetrying(t, fake, embedder.RetryConfig{MaxAttempts: 3, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond})
	if _, err := r.Embed(t.Context(), &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 1}}}); err == nil || fake.Calls() != 3 {
		t.Errorf("no window: err %v after %d calls, want an error after 3", err, fake.Calls())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRetriedTokensCountBilledUnusableAnswers: an answer the provider sent
// (2xx, so billed) but that could not be used is retried, and its tokens
// are reported in RetriedTokens for the budget; a 5xx is not.
func TestRetriedTokensCountBilledUnusableAnswers(t *testing.T) {
	t.Parallel()
	fake := &embeddertest.Fake{Func: func(_ context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
		switch n {
		case 1:
			return nil, &embedder.ProviderError{Status: 200, Err: embedder.ErrMalformedResponse, InputIndex: -1}
		case 2:
			return nil, &embedder.ProviderError{Status: 500, InputIndex: -1}
		}
		return embeddertest.Vectors(req, "m", 4), nil
	}}
	r := newRetrying(t, fake, embedder.RetryConfig{BaseDelay: time.Microsecond, MaxDelay: time.Microsecond})
	res, err := r.Embed(t.Context(), &embedder.Request{Inputs: []embedder.Input{{Text: "abc", Tokens: 7}, {Text: "def", Tokens: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RetriedTokens != 12 {
		t.Errorf("RetriedTokens = %d, want 12 (the malformed 200 only)", res.RetriedTokens)
	}
}
