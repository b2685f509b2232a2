package embedder_test

import (
	"errors"
	"testing"

	"github.com/reembed/reembed/embedder"
)

// newEmbedderFunc builds the embedder under test in front of a simulator
// configured with cfg, and returns both.
type newEmbedderFunc func(t *testing.T, cfg embedder.SimulatorConfig) (embedder.Embedder, *embedder.Simulator)

// TestConformance runs one suite against the in-process simulator and
// against OpenAI talking to the simulator over HTTP, in both encodings.
func TestConformance(t *testing.T) {
	t.Parallel()
	impls := map[string]newEmbedderFunc{
		"Simulator": func(t *testing.T, cfg embedder.SimulatorConfig) (embedder.Embedder, *embedder.Simulator) {
			s := newSim(t, cfg)
			return s, s
		},
	}
	for _, format := range []string{"float", "base64"} {
		impls["OpenAI/"+format] = func(t *testing.T, cfg embedder.SimulatorConfig) (embedder.Embedder, *embedder.Simulator) {
			s, srv := serveSim(t, cfg)
			return newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1", EncodingFormat: format}), s
		}
	}
	for name, newE := range impls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runConformance(t, newE)
		})
	}
}

func runConformance(t *testing.T, newE newEmbedderFunc) {
	t.Run("VectorsUsageAndOrder", func(t *testing.T) {
		e, sim := newE(t, embedder.SimulatorConfig{})
		in := chunks(t, "a.txt", 5)
		res, err := e.Embed(t.Context(), &embedder.Request{Model: "text-embedding-3-small", Dimensions: 32, Inputs: in})
		if err != nil {
			t.Fatalf("Embed: %v", err)
		}
		want := 0
		for i, x := range in {
			want += x.Tokens
			if !sameVector(res.Vectors[i], embedder.SimulatedVector("text-embedding-3-small", 32, x.Text)) {
				t.Errorf("vector %d is not the input's own", i)
			}
		}
		if res.Usage.PromptTokens != want || res.Usage.TotalTokens != want {
			t.Errorf("usage = %+v, want %d tokens", res.Usage, want)
		}
		if res.Received.IsZero() {
			t.Error("Received not set")
		}
		if l := sim.Ledger(); l.Totals.PromptTokens != int64(want) || l.Totals.BilledInputs != 5 {
			t.Errorf("ledger totals = %+v, want %d tokens for 5 inputs", l.Totals, want)
		}
	})
	t.Run("DefaultDimensions", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{})
		res, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: chunks(t, "a", 1)})
		if err != nil {
			t.Fatalf("Embed: %v", err)
		}
		if len(res.Vectors[0]) != 1536 {
			t.Errorf("len = %d, want the default 1536", len(res.Vectors[0]))
		}
	})
	t.Run("InputOverLimitIsPermanentAndNamed", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{MaxInputTokens: 30})
		in := chunks(t, "b.md", 3)
		in[1].Text += " and then a great many more words than thirty tokens allow, on and on and on and on"
		_, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: in})
		pe, ok := errors.AsType[*embedder.ProviderError](err)
		if !ok || pe.Status != 400 || pe.Retryable() || pe.DocID != "b.md" || pe.ChunkIndex != 1 {
			t.Fatalf("err = %v, want a permanent 400 naming chunk 1 of b.md", err)
		}
	})
	t.Run("TooManyInputs", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{MaxInputs: 2})
		_, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: chunks(t, "c", 3)})
		if pe, ok := errors.AsType[*embedder.ProviderError](err); !ok || pe.Status != 400 || pe.Inputs != 3 {
			t.Fatalf("err = %v, want 400 for the batch of 3", err)
		}
	})
	t.Run("RateLimitIs429WithRetryAfter", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{TPM: 60})
		in := chunks(t, "d", 2)
		if _, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: in}); err != nil {
			t.Fatalf("first: %v", err)
		}
		_, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: in})
		pe, ok := errors.AsType[*embedder.ProviderError](err)
		if !ok || !errors.Is(err, embedder.ErrRateLimited) || pe.RetryAfter <= 0 || pe.RateLimit == nil || pe.RateLimit.LimitTokens != 60 {
			t.Fatalf("err = %v, want a 429 with retry-after and the token limit", err)
		}
	})
	t.Run("ServerErrorIsRetryable", func(t *testing.T) {
		e, sim := newE(t, embedder.SimulatorConfig{Fault5xx: 1})
		_, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: chunks(t, "e", 1)})
		if pe, ok := errors.AsType[*embedder.ProviderError](err); !ok || pe.Status != 500 || !pe.Retryable() {
			t.Fatalf("err = %v, want a retryable 500", err)
		}
		if sim.Ledger().Totals.Billed != 0 {
			t.Error("a 500 was billed")
		}
	})
	t.Run("MalformedIsRetryable", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{FaultMalformed: 1})
		_, err := e.Embed(t.Context(), &embedder.Request{Model: "m", Inputs: chunks(t, "f", 1)})
		if pe, ok := errors.AsType[*embedder.ProviderError](err); !ok || !pe.Retryable() || !errors.Is(err, embedder.ErrMalformedResponse) {
			t.Fatalf("err = %v, want a retryable ErrMalformedResponse", err)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		e, _ := newE(t, embedder.SimulatorConfig{})
		ctx, cancel := contextWithCancel(t)
		cancel()
		if _, err := e.Embed(ctx, &embedder.Request{Model: "m", Inputs: chunks(t, "g", 1)}); err == nil {
			t.Fatal("Embed with a cancelled context succeeded")
		}
	})
}

// TestRequestTooLargeForTPMIsPermanent: a request over the whole TPM gets
// OpenAI's "Request too large" 429, which is not retried.
func TestRequestTooLargeForTPMIsPermanent(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{TPM: 50})
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1"})
	_, err := newRetrying(t, o, embedder.RetryConfig{}).Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "big", 4)})
	if !errors.Is(err, embedder.ErrRequestTooLarge) || errors.Is(err, embedder.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRequestTooLarge", err)
	}
}
