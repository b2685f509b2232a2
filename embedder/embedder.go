package embedder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Input is one text to embed.
type Input struct {
	// Text is sent to the provider as is.
	Text string
	// Tokens is our exact count of Text's tokens (cl100k_base for OpenAI's
	// models); the TPM limiter weighs requests by it. Zero means unknown, and
	// the limiter then estimates one token per two bytes.
	Tokens int
	// DocID and ChunkIndex identify the chunk, so that an error names it.
	DocID      string
	ChunkIndex int
}

// Request is one batch of inputs for one model.
type Request struct {
	// Model is the provider's model name (for Azure, see [AzureConfig]).
	// Empty means the embedder's configured model.
	Model string
	// Dimensions of the returned vectors; 0 means the model's default.
	Dimensions int
	// Inputs are embedded in order; the result has one vector per input.
	Inputs []Input
}

// tokens returns the tokens the request will be billed for, as far as we know.
func (r *Request) tokens() int {
	n := 0
	for _, in := range r.Inputs {
		if in.Tokens > 0 {
			n += in.Tokens
		} else {
			n += len(in.Text)/2 + 1
		}
	}
	return n
}

// Usage is what the provider reports it billed, in tokens.
type Usage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// Result is a successful batch.
type Result struct {
	// Vectors holds one vector per input, in the order of Request.Inputs.
	Vectors [][]float32
	// Usage is the provider's billed usage for the batch.
	Usage Usage
	// Received is when the response arrived.
	Received time.Time
	// RateLimit is what the provider's x-ratelimit-* headers said, or nil
	// when it sent none.
	RateLimit *RateLimit
	// RetriedTokens is, by our count, the tokens of earlier attempts of this
	// batch that the provider answered 2xx (so billed) but that could not be
	// used (malformed, or vectors refused by [Validating]) and were sent
	// again by [Retrying]. A budget should count them on top of Usage.
	RetriedTokens int
}

// Embedder embeds a batch of texts.
//
// Embed returns one vector per input in input order plus the billed usage, or
// an error and no vectors. Provider answers and transport failures are
// *[ProviderError] values; ctx cancellation returns ctx's error.
// Implementations are safe for concurrent use.
type Embedder interface {
	Embed(ctx context.Context, req *Request) (*Result, error)
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrRateLimited matches a *ProviderError for a 429 rate_limit_exceeded
	// (or a 200 whose body reports a rate limit). Worth retrying later.
	ErrRateLimited = errors.New("rate limited by the provider")
	// ErrQuotaExceeded matches a *ProviderError for a 429 insufficient_quota:
	// the account is out of credit, and retrying will not help.
	ErrQuotaExceeded = errors.New("provider quota exceeded")
	// ErrRequestTooLarge is returned by [RateLimited] for a request with more
	// tokens than the per-minute limit (or the configured largest request):
	// it could never be sent, so it is an error rather than a wait. It also
	// matches a *ProviderError for OpenAI's 429 "Request too large".
	ErrRequestTooLarge = errors.New("request larger than the rate limit allows")
	// ErrMalformedResponse matches a *ProviderError for a response that could
	// not be decoded or does not match the request (wrong count or length of
	// vectors). Worth retrying.
	ErrMalformedResponse = errors.New("malformed provider response")
	// ErrTimeout matches a *ProviderError for a request that got no answer
	// within the per-request timeout. Worth retrying.
	ErrTimeout = errors.New("no response from the provider in time")
	// ErrConnectionReset matches a *ProviderError for a connection the
	// provider closed mid-request. Worth retrying.
	ErrConnectionReset = errors.New("connection reset by the provider")
)

// ProviderError is a provider's error answer, or a failure to get one.
// It is returned by every Embedder of this package and passed through the
// decorators, so callers can report the chunk and the status.
type ProviderError struct {
	// Status is the HTTP status, or 0 when no answer came (timeout, reset).
	Status int
	// Type, Code, Param and Message come from the OpenAI-shaped error body,
	// with anything that looks like an API key removed.
	Type, Code, Param, Message string
	// RetryAfter is how long the provider asked us to wait (retry-after-ms,
	// retry-after, or derived from the x-ratelimit-* headers); 0 if unknown.
	RetryAfter time.Duration
	// RateLimit holds the x-ratelimit-* headers of the answer, or nil.
	RateLimit *RateLimit
	// DocID and ChunkIndex name the chunk that caused the error when the
	// provider said (or we could tell) which input it was, and otherwise the
	// first chunk of the batch. InputIndex is that input's position in the
	// batch, or -1 when the culprit is unknown. Inputs is the batch size.
	DocID      string
	ChunkIndex int
	InputIndex int
	Inputs     int
	// Err is the underlying cause for failures without an error body
	// (ErrTimeout, ErrConnectionReset, ErrMalformedResponse, a net error).
	Err error
}

// Error describes the failure and the chunk. It never contains an API key.
func (e *ProviderError) Error() string {
	var what string
	switch {
	case e.Status == 0 && e.Err != nil:
		what = fmt.Sprintf("provider request failed: %v", e.Err)
	case e.Message != "" || e.Code != "":
		what = fmt.Sprintf("provider answered %d", e.Status)
		if e.Code != "" {
			what += " " + e.Code
		}
		if e.Message != "" {
			what += ": " + e.Message
		}
	case e.Err != nil:
		what = fmt.Sprintf("provider answered %d: %v", e.Status, e.Err)
	default:
		what = fmt.Sprintf("provider answered %d", e.Status)
	}
	switch {
	case e.InputIndex >= 0:
		what += fmt.Sprintf(" (chunk %d of document %q, input %d of %d)", e.ChunkIndex, e.DocID, e.InputIndex, e.Inputs)
	case e.Inputs > 0:
		what += fmt.Sprintf(" (batch of %d inputs from chunk %d of document %q)", e.Inputs, e.ChunkIndex, e.DocID)
	}
	return what
}

// Unwrap returns the underlying cause, if any.
func (e *ProviderError) Unwrap() error { return e.Err }

// Is reports ErrRateLimited, ErrQuotaExceeded and ErrRequestTooLarge for
// the 429 answers that mean them.
func (e *ProviderError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.Status == 429 && e.Code != "insufficient_quota" && !e.tooLarge()
	case ErrQuotaExceeded:
		return e.Status == 429 && e.Code == "insufficient_quota"
	case ErrRequestTooLarge:
		return e.tooLarge()
	}
	return false
}

// tooLarge reports OpenAI's 429 "Request too large for ... tokens per min":
// a request over the whole per-minute limit, which no wait will cure.
func (e *ProviderError) tooLarge() bool {
	return e.Status == 429 && strings.HasPrefix(strings.ToLower(e.Message), "request too large")
}

// BatchTooLarge reports a refusal of the batch for its size, which fewer
// inputs cure: 413 (payload too large), TEI's 422 "batch size 64 > maximum
// allowed batch size 32", and the simulator's 400 "64 inputs, over the
// maximum of 32 per request".
func (e *ProviderError) BatchTooLarge() bool {
	if e.Status == 413 {
		return true
	}
	m := strings.ToLower(e.Message)
	return (e.Status == 400 || e.Status == 422) &&
		(strings.Contains(m, "maximum allowed batch size") || strings.Contains(m, "inputs, over the maximum"))
}

// Retryable reports whether sending the same request again may succeed:
// rate limits (not quota, not "request too large"), 408, 409, 5xx,
// timeouts, resets and malformed answers. 400, 401, 403, 404, 413, 422 and
// every other 4xx are permanent.
func (e *ProviderError) Retryable() bool {
	switch {
	case e.Status == 0:
		return true
	case e.Status == 429:
		return e.Code != "insufficient_quota" && !e.tooLarge()
	case e.Status == 408, e.Status == 409:
		return true
	case e.Status >= 500:
		return true
	case e.Status >= 200 && e.Status < 300:
		return true // a 2xx we could not use: malformed
	}
	return false
}

// attribute names the chunk of req that err is about: the input at idx when
// idx >= 0, else the batch's first input.
func (e *ProviderError) attribute(req *Request, idx int) {
	e.Inputs = len(req.Inputs)
	if idx < 0 && len(req.Inputs) == 1 {
		idx = 0
	}
	if idx >= len(req.Inputs) {
		idx = -1
	}
	e.InputIndex = idx
	if len(req.Inputs) == 0 {
		return
	}
	in := req.Inputs[0]
	if idx >= 0 {
		in = req.Inputs[idx]
	}
	e.DocID, e.ChunkIndex = in.DocID, in.ChunkIndex
}

// APIKey is a secret. It prints, logs and marshals as "[redacted]"; only
// [APIKey.Reveal] returns the key itself, for the Authorization header.
type APIKey string

const redacted = "[redacted]"

// Reveal returns the key. Call it only to put the key on the wire.
func (k APIKey) Reveal() string { return string(k) }

// String returns "[redacted]".
func (k APIKey) String() string { return redacted }

// GoString returns "[redacted]", so %#v hides the key too.
func (k APIKey) GoString() string { return redacted }

// LogValue returns "[redacted]", so slog never logs the key.
func (k APIKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "[redacted]" as a JSON string.
func (k APIKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (k APIKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format writes "[redacted]" for every verb (%s, %v, %q, %x, ...).
func (k APIKey) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
