package embedder_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

// TestValidatingRefusesLies: a provider answering 200 with NaN or infinite
// base64 vectors, zero vectors, vectors one element short (with and without
// --dimensions sent), lying indexes or too few vectors gets each request
// retried MaxAttempts times, then a ProviderError naming the request's chunk
// that matches ErrMalformedResponse; no vector comes out.
func TestValidatingRefusesLies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lie      embeddertest.Lie
		reqDims  int // Request.Dimensions; 0 = the model's, known only to Validating
		wantText string
	}{
		{embeddertest.LieNaN, 0, "NaN at element 0"},
		{embeddertest.LieInf, 64, "+Inf at element 63"},
		{embeddertest.LieZero, 0, "all zeros"},
		{embeddertest.LieShort, 0, "has 63 dimensions, want 64"},
		{embeddertest.LieShort, 64, "63 dimensions"},
		{embeddertest.LieDupIndex, 0, "index 0 is out of range or repeated"},
		{embeddertest.LieShiftedIx, 0, "index 3 is out of range"},
		{embeddertest.LieFewer, 0, "2 vectors for 3 inputs"},
	}
	for _, c := range cases {
		t.Run(string(c.lie), func(t *testing.T) {
			t.Parallel()
			liar := &embeddertest.Liar{Lie: c.lie, Dimensions: 64}
			srv := httptest.NewServer(liar)
			t.Cleanup(srv.Close)
			o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, EncodingFormat: "base64"})
			v, err := embedder.NewValidating(o, 64)
			if err != nil {
				t.Fatal(err)
			}
			r := newRetrying(t, v, embedder.RetryConfig{MaxAttempts: 3, BaseDelay: time.Millisecond})
			req := &embedder.Request{Dimensions: c.reqDims, Inputs: chunks(t, "guide.md", 3)}
			res, err := r.Embed(t.Context(), req)
			if res != nil {
				t.Fatalf("a lying answer came through: %d vectors", len(res.Vectors))
			}
			if !errors.Is(err, embedder.ErrMalformedResponse) {
				t.Fatalf("err = %v, want ErrMalformedResponse", err)
			}
			if got := liar.Calls(); got != 3 {
				t.Errorf("provider called %d times, want 3 (retried within the budget)", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.wantText) || !strings.Contains(msg, `document "guide.md"`) || !strings.Contains(msg, "embedding 3 inputs") {
				t.Errorf("err = %q, want it to say %q and name the request and the chunk", msg, c.wantText)
			}
		})
	}
}

// TestValidatingPassesAfterOneLie: a provider that lies once is retried and
// the honest answer passes.
func TestValidatingPassesAfterOneLie(t *testing.T) {
	t.Parallel()
	liar := &embeddertest.Liar{Lie: embeddertest.LieNaN, LieTimes: 1, Dimensions: 32}
	srv := httptest.NewServer(liar)
	t.Cleanup(srv.Close)
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, EncodingFormat: "base64"})
	v, err := embedder.NewValidating(o, 32)
	if err != nil {
		t.Fatal(err)
	}
	r := newRetrying(t, v, embedder.RetryConfig{MaxAttempts: 3, BaseDelay: time.Millisecond})
	in := chunks(t, "a", 4)
	res, err := r.Embed(t.Context(), &embedder.Request{Inputs: in})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if liar.Calls() != 2 || len(res.Vectors) != 4 || len(res.Vectors[0]) != 32 {
		t.Errorf("calls %d, %d vectors of %d: want 2 calls, 4 vectors of 32", liar.Calls(), len(res.Vectors), len(res.Vectors[0]))
	}
}

// TestCheckResultNamesTheInput: the error names the bad input, not the
// batch's first.
func TestCheckResultNamesTheInput(t *testing.T) {
	t.Parallel()
	req := &embedder.Request{Inputs: chunks(t, "d", 3)}
	res := embeddertest.Vectors(req, "m", 8)
	res.Vectors[2] = make([]float32, 8)
	err := embedder.CheckResult(req, res, 8)
	pe, ok := errors.AsType[*embedder.ProviderError](err)
	if !ok || pe.InputIndex != 2 || pe.ChunkIndex != 2 || !errors.Is(err, embedder.ErrInvalidVector) || !pe.Retryable() {
		t.Fatalf("err = %v (%+v), want a retryable ProviderError about input 2", err, pe)
	}
	if err := embedder.CheckResult(req, embeddertest.Vectors(req, "m", 8), 8); err != nil {
		t.Errorf("a sane answer: %v", err)
	}
}
