package embedder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// AzureConfig switches [OpenAI] to Azure OpenAI's classic URL shape,
// {BaseURL}/openai/deployments/{Deployment}/embeddings?api-version=..., with
// the key in an api-key header.
type AzureConfig struct {
	// APIVersion is the data-plane api-version; default "2024-10-21".
	APIVersion string
	// Deployment is the deployment name; default the model name.
	Deployment string
}

// OpenAIConfig configures an [OpenAI] embedder.
type OpenAIConfig struct {
	// BaseURL is the API root the client appends /embeddings to: default
	// "https://api.openai.com/v1"; e.g. "http://127.0.0.1:8080/v1" for a
	// local server, "http://host:7997" for Infinity's default. With Azure,
	// the resource endpoint "https://NAME.openai.azure.com".
	BaseURL string
	// Model is used when a Request names none.
	Model string
	// Dimensions is used when a Request names none; 0 lets the server pick.
	Dimensions int
	// APIKey is sent as a bearer token (api-key header with Azure); empty
	// sends none, which local servers accept.
	APIKey APIKey
	// Azure, when set, uses Azure OpenAI's URLs and header.
	Azure *AzureConfig
	// EncodingFormat is "base64" (default: a quarter of the bytes) or
	// "float" (for servers that do not support base64, such as Ollama
	// before v0.12.7).
	EncodingFormat string
	// MaxInputTokens is the model's per-input limit, used only to tell which
	// chunk a 400 is about when the provider does not say. 0: unknown.
	MaxInputTokens int
	// Timeout bounds each HTTP request; default 2 minutes. A request that
	// gets no answer in time fails with ErrTimeout (retryable).
	Timeout time.Duration
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport with more idle connections per host.
	Transport http.RoundTripper
}

// OpenAI embeds through an OpenAI-compatible HTTP API with go-openai. It
// does not retry and does not limit its rate: wrap it in [RateLimited] and
// [Retrying]. It is safe for concurrent use.
type OpenAI struct {
	client         *openai.Client
	model          string
	dims           int
	base64         bool
	hasKey         bool
	scrubKey       func(string) string // removes the key; a func so fmt cannot print it
	maxInputTokens int
	timeout        time.Duration
}

var _ Embedder = (*OpenAI)(nil)

// NewOpenAI checks cfg and builds the client.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.Model == "" {
		return nil, errors.New("openai embedder: a model is required")
	}
	if cfg.Dimensions < 0 {
		return nil, fmt.Errorf("openai embedder: dimensions %d is negative", cfg.Dimensions)
	}
	var b64 bool
	switch cfg.EncodingFormat {
	case "", "base64":
		b64 = true
	case "float":
	default:
		return nil, fmt.Errorf("openai embedder: encoding format %q is not float or base64", cfg.EncodingFormat)
	}
	var oc openai.ClientConfig
	if cfg.Azure != nil {
		if cfg.BaseURL == "" {
			return nil, errors.New("openai embedder: Azure needs the resource endpoint as base URL")
		}
		oc = openai.DefaultAzureConfig("", cfg.BaseURL)
		oc.APIVersion = cfg.Azure.APIVersion
		if oc.APIVersion == "" {
			oc.APIVersion = "2024-10-21"
		}
		if d := cfg.Azure.Deployment; d != "" {
			oc.AzureModelMapperFunc = func(string) string { return d }
		} else {
			oc.AzureModelMapperFunc = func(m string) string { return m }
		}
	} else {
		oc = openai.DefaultConfig("")
		if cfg.BaseURL != "" {
			oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
		}
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		tr = t
	}
	// The key lives only in closures: go-openai would keep it in a plain
	// string field, which fmt prints raw when the client is printed.
	key := cfg.APIKey.Reveal()
	authorize := func(h http.Header) {}
	if key != "" {
		authorize = func(h http.Header) { h.Set("Authorization", "Bearer "+key) }
		if cfg.Azure != nil {
			authorize = func(h http.Header) { h.Set("api-key", key) }
		}
	}
	scrub := func(s string) string { return scrubSecret(s, key) }
	oc.HTTPClient = &http.Client{Transport: &captureTransport{base: tr, authorize: authorize}}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	return &OpenAI{
		client:         openai.NewClientWithConfig(oc),
		model:          cfg.Model,
		dims:           cfg.Dimensions,
		base64:         b64,
		hasKey:         key != "",
		scrubKey:       scrub,
		maxInputTokens: cfg.MaxInputTokens,
		timeout:        timeout,
	}, nil
}

// Embed sends one request. Errors are *ProviderError (or ctx's error when
// ctx ends, or ErrStopped, unsent, when ctx's [Gate] is closed); the API key
// never appears in them.
func (o *OpenAI) Embed(ctx context.Context, req *Request) (*Result, error) {
	model, dims := req.Model, req.Dimensions
	if model == "" {
		model = o.model
	}
	if dims == 0 {
		dims = o.dims
	}
	texts := make([]string, len(req.Inputs))
	for i, in := range req.Inputs {
		texts[i] = in.Text
	}
	er := openai.EmbeddingRequestStrings{Input: texts, Model: openai.EmbeddingModel(model), Dimensions: dims}
	if o.base64 {
		er.EncodingFormat = openai.EmbeddingEncodingFormatBase64
	}
	done, err := startRequest(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	capt := &captured{}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, captureKey{}, capt), o.timeout)
	defer cancel()
	resp, err := o.client.CreateEmbeddings(actx, er)
	now := time.Now()
	rl := parseRateLimit(capt.header)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, o.providerError(req, err, capt, rl, actx.Err() != nil, now)
	}
	vecs, err := orderVectors(resp.Data, len(texts), dims)
	if err != nil {
		pe := &ProviderError{Status: capt.status, RateLimit: rl, Err: err}
		pe.attribute(req, -1)
		return nil, pe
	}
	return &Result{
		Vectors:   vecs,
		Usage:     Usage{PromptTokens: resp.Usage.PromptTokens, TotalTokens: resp.Usage.TotalTokens},
		Received:  now,
		RateLimit: rl,
	}, nil
}

// orderVectors checks that data has one vector per input, each index once,
// all of the same (requested) length, and returns them in input order.
func orderVectors(data []openai.Embedding, n, dims int) ([][]float32, error) {
	if len(data) != n {
		return nil, fmt.Errorf("%w: %d vectors for %d inputs", ErrMalformedResponse, len(data), n)
	}
	out := make([][]float32, n)
	for _, d := range data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, fmt.Errorf("%w: vector index %d is out of range or repeated", ErrMalformedResponse, d.Index)
		}
		if len(d.Embedding) == 0 || dims > 0 && len(d.Embedding) != dims || len(d.Embedding) != len(data[0].Embedding) {
			return nil, fmt.Errorf("%w: vector %d has %d dimensions", ErrMalformedResponse, d.Index, len(d.Embedding))
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// providerError turns a go-openai or transport error into a *ProviderError.
func (o *OpenAI) providerError(req *Request, err error, capt *captured, rl *RateLimit, timedOut bool, now time.Time) *ProviderError {
	pe := &ProviderError{Status: capt.status, RateLimit: rl}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		pe.Status = apiErr.HTTPStatusCode
		pe.Type = o.scrub(apiErr.Type)
		pe.Message = o.scrub(apiErr.Message)
		if apiErr.Code != nil {
			pe.Code = o.scrub(fmt.Sprint(apiErr.Code))
		}
		if apiErr.Param != nil {
			pe.Param = o.scrub(*apiErr.Param)
		}
	case errors.As(err, &reqErr):
		// Not OpenAI-shaped (TEI's flat errors, a proxy's HTML page).
		pe.Status = reqErr.HTTPStatusCode
		// Scrub the whole body first: a cut could keep part of the key.
		pe.Message = flatMessage([]byte(o.scrub(string(reqErr.Body))))
	case timedOut:
		pe.Status, pe.Err = 0, fmt.Errorf("%w (%s)", ErrTimeout, o.timeout)
	case capt.status != 0:
		// An answer came but its body did not decode.
		pe.Err = fmt.Errorf("%w: %s", ErrMalformedResponse, o.scrub(err.Error()))
	case isReset(err):
		pe.Err = ErrConnectionReset
	default:
		pe.Err = err // a transport error: it names the URL, never the key
	}
	if pe.Status == 429 || pe.Status >= 500 {
		pe.RetryAfter = retryAfter(capt.header, now, rl, req.tokens())
	}
	pe.attribute(req, o.culprit(req, pe))
	return pe
}

// flatMessage pulls a message out of a non-OpenAI error body such as TEI's
// {"message": ..., "code": ..., "type": ...}, or returns the start of it.
func flatMessage(body []byte) string {
	var flat struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &flat) == nil {
		if flat.Message != "" {
			return flat.Message
		}
		if flat.Error != "" {
			return flat.Error
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

var inputIndexRE = regexp.MustCompile(`input\[(\d+)\]`)

// culprit returns the index of the input an error is about, or -1.
func (o *OpenAI) culprit(req *Request, pe *ProviderError) int {
	if pe.Status < 400 || pe.Status >= 500 || pe.Status == 429 {
		return -1
	}
	if m := inputIndexRE.FindStringSubmatch(pe.Param + " " + pe.Message); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(req.Inputs) {
			return i
		}
	}
	for i, in := range req.Inputs {
		if in.Text == "" || o.maxInputTokens > 0 && in.Tokens > o.maxInputTokens {
			return i
		}
	}
	return -1
}

var keyLikeRE = regexp.MustCompile(`\b(sk|key|api|pk|rk)-[A-Za-z0-9_\-*.]{3,}`)

// minKeyPrefix is the shortest start of the key that [scrubSecret] removes
// (the whole key when it is shorter).
const minKeyPrefix = 8

// scrubSecret removes from s the key, every run of minKeyPrefix or more of
// its first characters (what a cut, a log line or a provider's echo may keep
// of it), and anything shaped like a key (sk-..., key-...). Call it before
// cutting text to a length.
func scrubSecret(s, key string) string {
	if key != "" {
		n := min(minKeyPrefix, len(key))
		var b strings.Builder
		for {
			i := strings.Index(s, key[:n])
			if i < 0 {
				break
			}
			m := n
			for m < len(key) && i+m < len(s) && s[i+m] == key[m] {
				m++
			}
			b.WriteString(s[:i])
			b.WriteString(redacted)
			s = s[i+m:]
		}
		b.WriteString(s)
		s = b.String()
	}
	return keyLikeRE.ReplaceAllString(s, redacted)
}

// scrub removes the API key and anything shaped like one from provider text
// (OpenAI's 401 message quotes a masked key).
func (o *OpenAI) scrub(s string) string { return o.scrubKey(s) }

// isReset reports a connection closed under a request.
func isReset(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	return false
}

// captureKey carries a *captured in a request context.
type captureKey struct{}

// captured is what captureTransport saw of the answer.
type captured struct {
	status int
	header http.Header
}

// captureTransport records the status and headers of each answer for
// OpenAI.Embed (go-openai drops headers on base64 answers and errors), and
// turns a 200 whose body is an error object into the status it means: 429
// for a rate limit, 502 otherwise.
type captureTransport struct {
	base      http.RoundTripper
	authorize func(http.Header) // sets the key's header
}

// peekBytes is how much of a 200 body is examined for a leading "error" key.
const peekBytes = 64

// RoundTrip adds the key's header, sends req and records the answer.
func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	t.authorize(req.Header)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		br := bufio.NewReaderSize(resp.Body, 4096)
		head, _ := br.Peek(peekBytes)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{br, resp.Body}
		if startsWithErrorKey(head) {
			body, _ := io.ReadAll(io.LimitReader(br, 1<<20))
			_ = resp.Body.Close()
			resp.StatusCode, resp.Status = http.StatusBadGateway, "502 Bad Gateway"
			if isRateLimitBody(body) {
				resp.StatusCode, resp.Status = http.StatusTooManyRequests, "429 Too Many Requests"
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	if c, ok := req.Context().Value(captureKey{}).(*captured); ok {
		c.status = resp.StatusCode
		c.header = resp.Header.Clone()
	}
	return resp, nil
}

// startsWithErrorKey reports whether a JSON body begins {"error":
func startsWithErrorKey(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return bytes.HasPrefix(b, []byte(`"error"`))
}

// isRateLimitBody reports whether an error body is about a rate limit.
func isRateLimitBody(body []byte) bool {
	var e struct {
		Error struct {
			Code    any    `json:"code"`
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return bytes.Contains(bytes.ToLower(body), []byte("rate limit"))
	}
	code := strings.ToLower(fmt.Sprint(e.Error.Code))
	if strings.Contains(code, "insufficient_quota") {
		return true // still a 429; ProviderError.Is tells quota apart
	}
	text := strings.ToLower(code + " " + e.Error.Type + " " + e.Error.Message)
	return strings.Contains(text, "rate_limit") || strings.Contains(text, "rate limit")
}

// String describes the embedder without its key.
func (o *OpenAI) String() string {
	return fmt.Sprintf("embedder.OpenAI{model: %q, dimensions: %d, api key set: %t}", o.model, o.dims, o.hasKey)
}

// GoString is String, for %#v.
func (o *OpenAI) GoString() string { return o.String() }

// LogValue is String, for slog.
func (o *OpenAI) LogValue() slog.Value { return slog.StringValue(o.String()) }
