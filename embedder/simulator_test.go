package embedder_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/reembed/reembed/embedder"
)

// TestSimulatorServesGoOpenAI: the go-openai client, unmodified, gets the
// simulator's vectors and exact usage over real HTTP, in float and base64.
func TestSimulatorServesGoOpenAI(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{})
	texts := []string{"hello world", "<|endoftext|> is ordinary text", "日本語のテキスト", "a"}
	want := 0
	for _, s := range texts {
		want += countTokens(t, s)
	}
	for _, format := range []openai.EmbeddingEncodingFormat{"", openai.EmbeddingEncodingFormatFloat, openai.EmbeddingEncodingFormatBase64} {
		t.Run("format="+string(format), func(t *testing.T) {
			cfg := openai.DefaultConfig("")
			cfg.BaseURL = srv.URL + "/v1"
			c := openai.NewClientWithConfig(cfg)
			resp, err := c.CreateEmbeddings(t.Context(), openai.EmbeddingRequestStrings{
				Input: texts, Model: openai.SmallEmbedding3, Dimensions: 256, EncodingFormat: format})
			if err != nil {
				t.Fatalf("CreateEmbeddings: %v", err)
			}
			if got := resp.Usage.PromptTokens; got != want {
				t.Errorf("usage.prompt_tokens = %d, want the exact cl100k count %d", got, want)
			}
			if len(resp.Data) != len(texts) {
				t.Fatalf("got %d vectors, want %d", len(resp.Data), len(texts))
			}
			for i, d := range resp.Data {
				if d.Index != i {
					t.Errorf("data[%d].index = %d", i, d.Index)
				}
				if w := embedder.SimulatedVector("text-embedding-3-small", 256, texts[i]); !sameVector(d.Embedding, w) {
					t.Errorf("vector %d differs from SimulatedVector", i)
				}
			}
		})
	}
}

func TestSimulatedVectorIsDeterministicUnit(t *testing.T) {
	t.Parallel()
	a := embedder.SimulatedVector("m", 1536, "text")
	if !sameVector(a, embedder.SimulatedVector("m", 1536, "text")) {
		t.Fatal("same inputs gave different vectors")
	}
	var norm float64
	for _, x := range a {
		norm += float64(x) * float64(x)
	}
	if math.Abs(norm-1) > 1e-5 {
		t.Errorf("|v|^2 = %v, want 1", norm)
	}
	for _, other := range [][]float32{
		embedder.SimulatedVector("m2", 1536, "text"),
		embedder.SimulatedVector("m", 1536, "text2"),
		embedder.SimulatedVector("m", 1535, "text")[:0],
	} {
		if sameVector(a, other) {
			t.Error("a different model, text or dimension gave the same vector")
		}
	}
}

// post sends a raw JSON request and returns status, headers and body.
func post(t *testing.T, url, key, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// errorBody decodes OpenAI's error shape and fails if it is not that shape.
func errorBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not {\"error\":{...}}: %v", b, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, b)
		}
	}
	return e.Error
}

func TestSimulatorRejectsBadRequests(t *testing.T) {
	t.Parallel()
	const key = "sk-sim-key-0123456789"
	_, srv := serveSim(t, embedder.SimulatorConfig{APIKey: key, MaxInputs: 3, MaxInputTokens: 5, MaxRequestTokens: 10})
	long := strings.Repeat("word ", 20)
	tests := []struct {
		name, key, body string
		status          int
		param           string
	}{
		{"WrongKey", "sk-wrong-key-9999", `{"model":"m","input":"hi"}`, 401, ""},
		{"NoKey", "", `{"model":"m","input":"hi"}`, 401, ""},
		{"TooManyInputs", key, `{"model":"m","input":["a","b","c","d"]}`, 400, "input"},
		{"InputOverLimit", key, `{"model":"m","input":["a","` + long + `"]}`, 400, "input[1]"},
		{"RequestOverLimit", key, `{"model":"m","input":["one two three four","one two three four","one two three four"]}`, 400, "input"},
		{"EmptyInput", key, `{"model":"m","input":["a",""]}`, 400, "input[1]"},
		{"NoModel", key, `{"input":"hi"}`, 400, "model"},
		{"BadEncoding", key, `{"model":"m","input":"hi","encoding_format":"bytes"}`, 400, "encoding_format"},
		{"TokenArrays", key, `{"model":"m","input":[[1,2,3]]}`, 400, "input"},
		{"NotJSON", key, `{"model":`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := post(t, srv.URL+"/v1/embeddings", tt.key, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d; body %s", status, tt.status, body)
			}
			e := errorBody(t, body)
			if tt.param != "" && e["param"] != tt.param {
				t.Errorf("param = %v, want %q", e["param"], tt.param)
			}
			if strings.Contains(string(body), "sk-") {
				t.Errorf("error body echoes a key: %s", body)
			}
		})
	}
	status, _, _ := post(t, srv.URL+"/embeddings", key, `{"model":"m","input":"hi"}`)
	if status != 200 {
		t.Errorf("POST /embeddings (no /v1, as Infinity): status %d, want 200", status)
	}
	status, _, body := post(t, srv.URL+"/v1/nothing", key, `{}`)
	if status != 404 {
		t.Errorf("unknown path: status %d, want 404", status)
	}
	errorBody(t, body)
}

var resetRE = regexp.MustCompile(`^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$`)

// TestSimulatorAnswersRateLimitsLikeOpenAI: the request and token buckets,
// the 429, retry-after, retry-after-ms and x-ratelimit-* in OpenAI's formats.
func TestSimulatorAnswersRateLimitsLikeOpenAI(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{RPM: 2, TPM: 1_000_000})
	body := `{"model":"text-embedding-3-small","input":["hello world"]}`
	for i := range 2 {
		status, h, b := post(t, srv.URL+"/v1/embeddings", "", body)
		if status != 200 {
			t.Fatalf("request %d: status %d: %s", i, status, b)
		}
		if got, want := h.Get("x-ratelimit-remaining-requests"), strconv.Itoa(1-i); got != want {
			t.Errorf("request %d: remaining-requests %q, want %q", i, got, want)
		}
		// The bucket refills continuously, so up to 2 tokens may be back.
		if got, err := strconv.Atoi(h.Get("x-ratelimit-remaining-tokens")); err != nil || got < 1_000_000-2*(i+1) || got > 1_000_000-2 {
			t.Errorf("request %d: remaining-tokens %q, want %d..%d", i, h.Get("x-ratelimit-remaining-tokens"), 1_000_000-2*(i+1), 1_000_000-2)
		}
	}
	status, h, b := post(t, srv.URL+"/v1/embeddings", "", body)
	if status != 429 {
		t.Fatalf("third request in a minute at RPM 2: status %d, want 429", status)
	}
	e := errorBody(t, b)
	if e["code"] != "rate_limit_exceeded" || e["type"] != "requests" {
		t.Errorf("error = %v, want code rate_limit_exceeded, type requests", e)
	}
	ra, err := strconv.Atoi(h.Get("retry-after"))
	if err != nil || ra < 1 || ra > 30 {
		t.Errorf("retry-after %q, want whole seconds until one request is back (<= 30s)", h.Get("retry-after"))
	}
	if ms, err := strconv.Atoi(h.Get("retry-after-ms")); err != nil || ms <= 0 || ms > 30000 {
		t.Errorf("retry-after-ms %q", h.Get("retry-after-ms"))
	}
	for _, k := range []string{"x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} {
		if _, err := strconv.Atoi(h.Get(k)); err != nil {
			t.Errorf("%s = %q, want an integer", k, h.Get(k))
		}
	}
	for _, k := range []string{"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} {
		if v := h.Get(k); !resetRE.MatchString(v) {
			t.Errorf("%s = %q, want OpenAI's 6m0s / 12ms form", k, v)
		}
	}
	if got := h.Get("x-ratelimit-limit-requests"); got != "2" {
		t.Errorf("limit-requests %q, want 2", got)
	}
}

// TestSimulatorFaults: each seeded fault looks to a client as it would from
// a real provider, and none of them is billed.
func TestSimulatorFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   embedder.SimulatorConfig
		check func(t *testing.T, err error)
	}{
		{"5xx", embedder.SimulatorConfig{Fault5xx: 1}, func(t *testing.T, err error) {
			var e *openai.APIError
			if !errors.As(err, &e) || e.HTTPStatusCode != 500 {
				t.Errorf("err = %v, want an APIError 500", err)
			}
		}},
		{"Reset", embedder.SimulatorConfig{FaultReset: 1}, func(t *testing.T, err error) {
			if err == nil || errors.As(err, new(*openai.APIError)) {
				t.Errorf("err = %v, want a transport error", err)
			}
		}},
		{"Malformed", embedder.SimulatorConfig{FaultMalformed: 1}, func(t *testing.T, err error) {
			if err == nil {
				t.Error("a truncated body decoded without error")
			}
		}},
		{"Hang", embedder.SimulatorConfig{FaultHang: 1}, func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the client's deadline", err)
			}
		}},
		{"RateLimitBody", embedder.SimulatorConfig{FaultRateLimitBody: 1}, func(t *testing.T, err error) {
			// go-openai decodes a 200 error body as an empty success;
			// embedder.OpenAI turns it into a 429 (see its tests).
			if err != nil {
				t.Errorf("err = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, srv := serveSim(t, tt.cfg)
			cfg := openai.DefaultConfig("")
			cfg.BaseURL = srv.URL + "/v1"
			ctx := t.Context()
			if tt.name == "Hang" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
			}
			_, err := openai.NewClientWithConfig(cfg).CreateEmbeddings(ctx,
				openai.EmbeddingRequestStrings{Input: []string{"x"}, Model: "m"})
			tt.check(t, err)
			if l := sim.Ledger(); l.Totals.Billed != 0 || l.Totals.PromptTokens != 0 {
				t.Errorf("a fault was billed: %+v", l.Totals)
			}
		})
	}
}

// TestSimulatorLedger: GET /v1/ledger lists each request's billed tokens
// and counts each input text by sha256.
func TestSimulatorLedger(t *testing.T) {
	t.Parallel()
	_, srv := serveSim(t, embedder.SimulatorConfig{RPM: 1})
	post(t, srv.URL+"/v1/embeddings", "", `{"model":"m","input":["alpha","beta"]}`)
	post(t, srv.URL+"/v1/embeddings", "", `{"model":"m","input":["alpha"]}`) // 429 at RPM 1
	resp, err := http.Get(srv.URL + "/v1/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l embedder.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	if l.Totals.Requests != 2 || l.Totals.Billed != 1 || l.Totals.RateLimited != 1 || l.Totals.PromptTokens != 2 {
		t.Errorf("totals = %+v, want 2 requests, 1 billed for 2 tokens, 1 rate limited", l.Totals)
	}
	if l.Inputs[embedder.TextSHA256("alpha")] != 1 || l.Inputs[embedder.TextSHA256("beta")] != 1 || len(l.Inputs) != 2 {
		t.Errorf("inputs = %v, want alpha and beta once", l.Inputs)
	}
	if len(l.Requests) != 2 || l.Requests[0].BilledTokens != 2 || l.Requests[1].Status != 429 || l.Requests[1].BilledTokens != 0 {
		t.Errorf("requests = %+v", l.Requests)
	}
	resp, err = http.Get(srv.URL + "/v1/ledger?summary=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil || len(sum) != 1 || sum["totals"] == nil {
		t.Errorf("summary = %v (%v), want only totals", sum, err)
	}
}
