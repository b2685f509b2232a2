package embedder_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

func newOpenAI(t testing.TB, cfg embedder.OpenAIConfig) *embedder.OpenAI {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "text-embedding-3-small"
	}
	o, err := embedder.NewOpenAI(cfg)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	return o
}

// TestOpenAICapturesHeadersOnBase64: go-openai drops response headers on
// base64 answers; our transport keeps them, on success and on 429.
func TestOpenAICapturesHeadersOnBase64(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{RPM: 1, TPM: 1000})
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1", EncodingFormat: "base64", Dimensions: 64})
	in := chunks(t, "doc", 2)
	res, err := o.Embed(t.Context(), &embedder.Request{Inputs: in})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if res.RateLimit == nil || res.RateLimit.LimitRequests != 1 || res.RateLimit.RemainingRequests != 0 || res.RateLimit.LimitTokens != 1000 {
		t.Fatalf("RateLimit = %+v, want limit 1 request, 0 remaining, 1000 tokens", res.RateLimit)
	}
	_, err = o.Embed(t.Context(), &embedder.Request{Inputs: in})
	pe, ok := errors.AsType[*embedder.ProviderError](err)
	if !ok || pe.Status != 429 || !errors.Is(err, embedder.ErrRateLimited) {
		t.Fatalf("second request at RPM 1: err = %v, want a 429 ProviderError", err)
	}
	if pe.RetryAfter <= 0 || pe.RetryAfter > 61*time.Second || pe.RateLimit == nil {
		t.Errorf("RetryAfter = %v, RateLimit = %+v: want the server's retry-after and headers", pe.RetryAfter, pe.RateLimit)
	}
	if !pe.Retryable() {
		t.Error("a 429 rate_limit_exceeded is not retryable")
	}
}

// TestOpenAIAzureMode: deployment in the path, api-version in the query,
// the key in an api-key header.
func TestOpenAIAzureMode(t *testing.T) {
	t.Parallel()
	const key = "azure-key-abcdef"
	sim := newSim(t, embedder.SimulatorConfig{APIKey: key})
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+"?"+r.URL.RawQuery+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, APIKey: key,
		Azure: &embedder.AzureConfig{Deployment: "my-embeddings", APIVersion: "2024-10-21"}})
	res, err := o.Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "doc", 1)})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if len(res.Vectors) != 1 {
		t.Fatalf("got %d vectors", len(res.Vectors))
	}
	if want := "/openai/deployments/my-embeddings/embeddings?api-version=2024-10-21 auth="; len(seen) != 1 || seen[0] != want {
		t.Errorf("requests = %q, want [%q]", seen, want)
	}
}

// TestOpenAITreatsRateLimitBodyAs429: a 200 whose body is a rate-limit
// error is a 429, not an empty success.
func TestOpenAITreatsRateLimitBodyAs429(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{FaultRateLimitBody: 1})
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1"})
	_, err := o.Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "doc", 3)})
	if !errors.Is(err, embedder.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
}

// TestOpenAINamesTheChunk: a 400 about one input names that chunk.
func TestOpenAINamesTheChunk(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{MaxInputTokens: 40})
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1"})
	in := chunks(t, "guide.md", 4)
	in[2].Text = strings.Repeat("too long ", 50)
	_, err := o.Embed(t.Context(), &embedder.Request{Inputs: in})
	pe, ok := errors.AsType[*embedder.ProviderError](err)
	if !ok || pe.Status != 400 || pe.Retryable() {
		t.Fatalf("err = %v, want a permanent 400", err)
	}
	if pe.DocID != "guide.md" || pe.ChunkIndex != 2 || pe.InputIndex != 2 {
		t.Errorf("names doc %q chunk %d input %d, want guide.md chunk 2 input 2", pe.DocID, pe.ChunkIndex, pe.InputIndex)
	}
	if !strings.Contains(err.Error(), `chunk 2 of document "guide.md"`) {
		t.Errorf("error %q does not name the chunk", err)
	}
}

// TestOpenAIReadsNonOpenAIErrors: TEI's flat error body still gives a
// status and a message, and a 422 is permanent.
func TestOpenAIReadsNonOpenAIErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(422)
		io.WriteString(w, `{"message":"batch size 40 > maximum allowed batch size 32","code":422,"type":"Validation"}`)
	}))
	t.Cleanup(srv.Close)
	o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL})
	_, err := o.Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "d", 2)})
	pe, ok := errors.AsType[*embedder.ProviderError](err)
	if !ok || pe.Status != 422 || pe.Retryable() || !strings.Contains(pe.Message, "maximum allowed batch size 32") {
		t.Fatalf("err = %#v, want a permanent 422 with TEI's message", err)
	}
}

// TestOpenAITransportFailuresAreRetryable: reset, malformed and hung
// answers become retryable ProviderErrors with their causes.
func TestOpenAITransportFailuresAreRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  embedder.SimulatorConfig
		want error
	}{
		{"Reset", embedder.SimulatorConfig{FaultReset: 1}, nil},
		{"Malformed", embedder.SimulatorConfig{FaultMalformed: 1}, embedder.ErrMalformedResponse},
		{"Hang", embedder.SimulatorConfig{FaultHang: 1}, embedder.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, srv := serveSim(t, tt.cfg)
			o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1", Timeout: 50 * time.Millisecond})
			_, err := o.Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "d", 1)})
			pe, ok := errors.AsType[*embedder.ProviderError](err)
			if !ok || !pe.Retryable() {
				t.Fatalf("err = %v, want a retryable ProviderError", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
