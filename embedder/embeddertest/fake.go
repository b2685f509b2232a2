// Package embeddertest provides a scripted fake [embedder.Embedder] for tests
// of code that embeds: it answers a sequence of 429s, 5xx, 4xx, hangs and
// successes, and counts the calls. It imports only embedder.
package embeddertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"time"

	"github.com/reembed/reembed/embedder"
)

// Step is one scripted answer.
type Step struct {
	// Status is the HTTP status to fail with; 0 or 200 succeeds with
	// embedder.SimulatedVector vectors and usage = the inputs' Tokens.
	Status int
	// Code is the error code (e.g. "rate_limit_exceeded",
	// "insufficient_quota"); a 429 without one gets "rate_limit_exceeded".
	Code string
	// RetryAfter is the provider's requested wait, for a 429.
	RetryAfter time.Duration
	// Err, when set with Status 0, fails as a transport failure: a
	// *ProviderError with Status 0 and this cause (embedder.ErrTimeout,
	// embedder.ErrConnectionReset).
	Err error
	// Hang blocks until ctx ends and returns ctx's error.
	Hang bool
}

// OK succeeds.
func OK() Step { return Step{} }

// RateLimited answers 429 rate_limit_exceeded with retry-after d.
func RateLimited(d time.Duration) Step { return Step{Status: 429, RetryAfter: d} }

// ServerError answers 500.
func ServerError() Step { return Step{Status: 500} }

// Status answers status with no body.
func Status(status int) Step { return Step{Status: status} }

// Fake is a scripted embedder.Embedder. Calls take the steps of Script in
// order; after the script every call succeeds, unless Func is set, which
// then answers every call (n counts calls from 1). Safe for concurrent use.
type Fake struct {
	Script []Step
	Func   func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error)

	mu    sync.Mutex
	calls int
}

var _ embedder.Embedder = (*Fake)(nil)

// Calls returns how many times Embed was called.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Embed answers the next step.
func (f *Fake) Embed(ctx context.Context, req *embedder.Request) (*embedder.Result, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	step := Step{}
	if n <= len(f.Script) {
		step = f.Script[n-1]
	}
	f.mu.Unlock()
	if f.Func != nil {
		return f.Func(ctx, n, req)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case step.Hang:
		<-ctx.Done()
		return nil, ctx.Err()
	case step.Status != 0 && step.Status != 200 || step.Err != nil:
		pe := &embedder.ProviderError{Status: step.Status, Code: step.Code, RetryAfter: step.RetryAfter, Err: step.Err,
			Message: "scripted failure", InputIndex: -1, Inputs: len(req.Inputs)}
		if step.Status == 429 && pe.Code == "" {
			pe.Code = "rate_limit_exceeded"
		}
		if len(req.Inputs) > 0 {
			pe.DocID, pe.ChunkIndex = req.Inputs[0].DocID, req.Inputs[0].ChunkIndex
		}
		if len(req.Inputs) == 1 {
			pe.InputIndex = 0
		}
		return nil, pe
	}
	return Vectors(req, "", 0), nil
}

// Vectors returns the successful result the fake gives for req: the
// simulator's vectors under model and dims unless req names its own.
func Vectors(req *embedder.Request, model string, dims int) *embedder.Result {
	if req.Model != "" {
		model = req.Model
	}
	if model == "" {
		model = "fake"
	}
	if req.Dimensions > 0 {
		dims = req.Dimensions
	}
	if dims <= 0 {
		dims = 8
	}
	res := &embedder.Result{Vectors: make([][]float32, len(req.Inputs)), Received: time.Now()}
	for i, in := range req.Inputs {
		res.Vectors[i] = embedder.SimulatedVector(model, dims, in.Text)
		res.Usage.PromptTokens += in.Tokens
	}
	res.Usage.TotalTokens = res.Usage.PromptTokens
	return res
}

// HandlerTransport is an http.RoundTripper that serves requests with a
// handler in process, so that a client (go-openai included) talks to an
// [embedder.Simulator] without a socket, inside a testing/synctest bubble
// too. A handler that aborts (http.ErrAbortHandler, as the simulator does
// for a reset) gives a connection-reset error.
type HandlerTransport struct {
	Handler http.Handler
}

// RoundTrip serves req with the handler.
func (t HandlerTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			resp, err = nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		}
	}()
	if req.Body != nil {
		defer req.Body.Close()
	}
	t.Handler.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	res := rec.Result()
	res.Request = req
	return res, nil
}
