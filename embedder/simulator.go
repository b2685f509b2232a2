package embedder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/pricing"
)

// TokenCounter counts the tokens of a text; tokenizer.Tokenizer is one.
type TokenCounter interface {
	Count(text []byte) int
}

// SimulatorConfig configures a [Simulator]. The zero value serves an
// unlimited, fault-free, unauthenticated provider with OpenAI's request
// limits.
type SimulatorConfig struct {
	// APIKey, when set, is required as "Authorization: Bearer KEY" or
	// "api-key: KEY"; other requests get 401. It is never logged or echoed.
	APIKey APIKey
	// Model is what the in-process Embed uses when a Request names none.
	// Default pricing.DefaultModel.
	Model string
	// RPM and TPM are the requests and tokens per minute, enforced as
	// OpenAI's token buckets: each holds one minute of its limit, starts
	// full and refills continuously at limit/60s. 0 means unlimited.
	// A request is charged when it passes the check, whatever happens next;
	// requests answered 429 are not charged.
	RPM, TPM int
	// MaxInputs per request (default 2048), MaxInputTokens per input
	// (default 8192) and MaxRequestTokens per request (default 300,000):
	// beyond them the answer is 400.
	MaxInputs, MaxInputTokens, MaxRequestTokens int
	// DefaultDimensions (default 1536) is used when a request names none;
	// MaxDimensions (default 3072) is the largest accepted.
	DefaultDimensions, MaxDimensions int
	// Latency is added to every successful answer.
	Latency time.Duration
	// Fault rates, each a probability in [0, 1] drawn per request from a
	// generator seeded with Seed: Fault5xx answers 500; FaultHang never
	// answers (until the client gives up or HangFor passes); FaultReset
	// closes the connection; FaultMalformed answers 200 with a truncated
	// body; Fault429 answers 429 rate_limit_exceeded with retry-after 1s
	// (a storm); FaultRateLimitBody answers 200 with a rate-limit error body.
	// Faults are drawn after validation; 5xx, hang, reset and malformed are
	// drawn after the rate-limit charge, so they cost rate-limit tokens.
	Fault5xx, FaultHang, FaultReset, FaultMalformed, Fault429, FaultRateLimitBody float64
	// HangFor bounds a hang (default 30s); then the connection is dropped.
	HangFor time.Duration
	// Seed makes fault draws repeatable for a serial client.
	Seed uint64
	// Tokenizer counts usage.prompt_tokens; nil means tokenizer.Default()
	// (exact cl100k_base).
	Tokenizer TokenCounter
	// MaxLedgerRequests bounds the per-request records the ledger keeps
	// (default 1,000,000); older records are dropped and counted, totals and
	// per-text counts are kept for every request.
	MaxLedgerRequests int
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
	// Batch configures the Files and Batches API (simulator_batch.go).
	Batch BatchSimConfig
}

// Simulator is a simulated OpenAI-compatible embeddings provider.
//
// As an http.Handler it serves POST /v1/embeddings, POST /embeddings and
// Azure's POST /openai/deployments/{deployment}/embeddings, the Files and
// Batches API under /v1/files and /v1/batches ([BatchSimConfig]), and the billing
// ledger at GET /v1/ledger ([Ledger] as JSON; ?summary=1 for the totals
// only). The ledger needs no key. Its Embed method applies the same rules in
// process. Vectors are [SimulatedVector]; usage is the exact token count.
// It is safe for concurrent use.
type Simulator struct {
	cfg SimulatorConfig // cfg.APIKey is cleared: the key lives in keyOK only
	// keyOK reports whether a request's key is the configured one (or none
	// is configured). A func, so that printing a Simulator cannot show it.
	keyOK func(got string) bool
	auth  bool
	tok   TokenCounter
	log   *slog.Logger
	done  chan struct{}
	stop  sync.Once

	mu     sync.Mutex
	rng    *rand.Rand
	reqs   bucket
	toks   bucket
	ledger ledgerState
	batch  *batchSim
}

var _ Embedder = (*Simulator)(nil)

// NewSimulator checks cfg, fills defaults and loads the tokenizer.
func NewSimulator(cfg SimulatorConfig) (*Simulator, error) {
	if cfg.Model == "" {
		cfg.Model = pricing.DefaultModel
	}
	cfg.MaxInputs = cmp0(cfg.MaxInputs, 2048)
	cfg.MaxInputTokens = cmp0(cfg.MaxInputTokens, 8192)
	cfg.MaxRequestTokens = cmp0(cfg.MaxRequestTokens, 300000)
	cfg.DefaultDimensions = cmp0(cfg.DefaultDimensions, 1536)
	cfg.MaxDimensions = cmp0(cfg.MaxDimensions, 3072)
	cfg.MaxLedgerRequests = cmp0(cfg.MaxLedgerRequests, 1_000_000)
	if cfg.HangFor <= 0 {
		cfg.HangFor = 30 * time.Second
	}
	switch {
	case cfg.RPM < 0 || cfg.TPM < 0:
		return nil, fmt.Errorf("simulator limits must not be negative (rpm %d, tpm %d)", cfg.RPM, cfg.TPM)
	case cfg.Latency < 0:
		return nil, fmt.Errorf("simulator latency %s is negative", cfg.Latency)
	}
	for name, r := range map[string]float64{"5xx": cfg.Fault5xx, "hang": cfg.FaultHang, "reset": cfg.FaultReset,
		"malformed": cfg.FaultMalformed, "429": cfg.Fault429, "rate-limit body": cfg.FaultRateLimitBody} {
		if r < 0 || r > 1 || math.IsNaN(r) {
			return nil, fmt.Errorf("simulator %s fault rate %v is not in [0, 1]", name, r)
		}
	}
	tok := cfg.Tokenizer
	if tok == nil {
		t, err := tokenizer.Default()
		if err != nil {
			return nil, fmt.Errorf("loading the simulator's tokenizer: %w", err)
		}
		tok = t
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := cfg.APIKey.Reveal()
	cfg.APIKey = ""
	keyOK := func(got string) bool {
		return key == "" || subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
	}
	now := time.Now()
	s := &Simulator{
		cfg:   cfg,
		keyOK: keyOK,
		auth:  key != "",
		tok:   tok,
		log:   log,
		done:  make(chan struct{}),
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		reqs:  bucket{limit: float64(cfg.RPM), level: float64(cfg.RPM), last: now},
		toks:  bucket{limit: float64(cfg.TPM), level: float64(cfg.TPM), last: now},
		ledger: ledgerState{
			inputs: make(map[[32]byte]int),
			max:    cfg.MaxLedgerRequests,
		},
	}
	b, err := newBatchSim(s, cfg.Batch)
	if err != nil {
		return nil, fmt.Errorf("simulator batch api: %w", err)
	}
	s.batch = b
	return s, nil
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Close ends every hanging request. The simulator keeps answering others.
func (s *Simulator) Close() { s.stop.Do(func() { close(s.done) }) }

// bucket is one of OpenAI's limits: limit per minute, one minute deep.
type bucket struct {
	limit float64
	level float64
	last  time.Time
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.level = min(b.limit, b.level+b.limit*dt.Seconds()/60)
		b.last = now
	}
}

// waitFor is how long until the bucket holds n.
func (b *bucket) waitFor(n float64) time.Duration {
	if b.level >= n {
		return 0
	}
	return time.Duration((n - b.level) / b.limit * 60 * float64(time.Second))
}

// untilFull is OpenAI's reset: the time until the bucket is full again.
func (b *bucket) untilFull() time.Duration { return b.waitFor(b.limit) }

// apiError is OpenAI's error object.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func strp(s string) *string { return &s }

// outcome names what happened to a request, in the ledger and logs.
type outcome string

const (
	outcomeOK           outcome = "ok"
	outcomeRejected     outcome = "rejected"     // 4xx other than 429
	outcomeRateLimited  outcome = "rate_limited" // 429: a limit (RPM, TPM) was hit
	outcomeStorm        outcome = "fault_429"    // 429 injected by Fault429
	outcomeServerError  outcome = "fault_5xx"
	outcomeHang         outcome = "fault_hang"
	outcomeReset        outcome = "fault_reset"
	outcomeMalformed    outcome = "fault_malformed"
	outcomeCanceled     outcome = "canceled"
	outcomeRateLimitMsg outcome = "rate_limited_200"
)

// simRequest is a parsed embeddings request.
type simRequest struct {
	started time.Time // when the request arrived
	model   string
	dims    int
	texts   []string
	base64  bool
}

// simReply is the simulator's decision about a request.
type simReply struct {
	status  int
	err     *apiError
	badIdx  int // input the error is about, or -1
	rl      *RateLimit
	wait    time.Duration // retry-after
	outcome outcome
	vectors [][]float32
	tokens  int
	dims    int
}

// serve decides and, for a success, computes the answer. Hang, reset and
// malformed faults are returned for the caller to act out.
func (s *Simulator) serve(ctx context.Context, req simRequest, authorized bool) simReply {
	r := s.decide(req, authorized)
	if r.outcome != outcomeOK {
		return r
	}
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			s.record(req, &simReply{status: 499, outcome: outcomeCanceled})
			return simReply{status: 499, outcome: outcomeCanceled, badIdx: -1}
		case <-t.C:
		}
	}
	r.vectors = make([][]float32, len(req.texts))
	for i, t := range req.texts {
		r.vectors[i] = SimulatedVector(req.model, r.dims, t)
	}
	s.record(req, &r)
	return r
}

// decide validates, draws faults and charges the rate limits.
func (s *Simulator) decide(req simRequest, authorized bool) simReply {
	r := simReply{badIdx: -1}
	if rej := s.validate(req, authorized, &r); rej != nil {
		r.status, r.outcome, r.badIdx = rej.status, outcomeRejected, rej.idx
		r.err = &apiError{Message: rej.msg, Type: "invalid_request_error"}
		if rej.param != "" {
			r.err.Param = strp(rej.param)
		}
		if rej.code != "" {
			r.err.Code = strp(rej.code)
		}
		s.record(req, &r)
		return r
	}
	s.mu.Lock()
	s.chargeLocked(req, &r)
	r.rl = s.rateLimitLocked()
	s.mu.Unlock()
	if r.outcome != outcomeOK {
		s.record(req, &r)
	}
	return r
}

// simRejection is a request the simulator refuses as OpenAI would: an
// invalid_request_error with its status, param, code and message; idx is
// the bad input's index, or -1.
type simRejection struct {
	status           int
	param, code, msg string
	idx              int
}

// validate checks the key and the request against the model's limits; it
// sets r's dimensions and tokens, or returns the rejection.
func (s *Simulator) validate(req simRequest, authorized bool, r *simReply) *simRejection {
	reject := func(status int, param, code, msg string, idx int) *simRejection {
		return &simRejection{status: status, param: param, code: code, msg: msg, idx: idx}
	}
	if !authorized {
		return reject(401, "", "invalid_api_key",
			"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", -1)
	}
	if req.model == "" {
		return reject(400, "model", "", "you must provide a model parameter", -1)
	}
	if len(req.texts) == 0 {
		return reject(400, "input", "", "'$.input' is invalid: an empty list of inputs", -1)
	}
	if len(req.texts) > s.cfg.MaxInputs {
		return reject(400, "input", "",
			fmt.Sprintf("'$.input' is invalid: %d inputs, over the maximum of %d per request", len(req.texts), s.cfg.MaxInputs), -1)
	}
	r.dims = req.dims
	if r.dims == 0 {
		r.dims = s.cfg.DefaultDimensions
	}
	if r.dims < 1 || r.dims > s.cfg.MaxDimensions {
		return reject(400, "dimensions", "",
			fmt.Sprintf("dimensions %d is not between 1 and %d", req.dims, s.cfg.MaxDimensions), -1)
	}
	total := 0
	for i, t := range req.texts {
		if t == "" {
			return reject(400, fmt.Sprintf("input[%d]", i), "",
				fmt.Sprintf("'$.input[%d]' is invalid: empty string", i), i)
		}
		n := s.tok.Count([]byte(t))
		if n > s.cfg.MaxInputTokens {
			return reject(400, fmt.Sprintf("input[%d]", i), "context_length_exceeded",
				fmt.Sprintf("input[%d] has %d tokens, over this model's maximum input length of %d tokens", i, n, s.cfg.MaxInputTokens), i)
		}
		total += n
	}
	if total > s.cfg.MaxRequestTokens {
		return reject(400, "input", "max_tokens_per_request",
			fmt.Sprintf("Requested %d tokens, max %d tokens per request", total, s.cfg.MaxRequestTokens), -1)
	}
	r.tokens = total
	return nil
}

// chargeLocked draws the request's faults and charges the rate limits,
// setting r's status and outcome; s.mu is held.
func (s *Simulator) chargeLocked(req simRequest, r *simReply) {
	total := r.tokens
	draw := func(p float64) bool { return s.rng.Float64() < p }
	f429, fBody := draw(s.cfg.Fault429), draw(s.cfg.FaultRateLimitBody)
	f5xx, fHang, fReset, fBad := draw(s.cfg.Fault5xx), draw(s.cfg.FaultHang), draw(s.cfg.FaultReset), draw(s.cfg.FaultMalformed)
	now := time.Now()
	s.reqs.refill(now)
	s.toks.refill(now)
	switch {
	case f429 || fBody:
		r.status, r.outcome, r.wait = 429, outcomeStorm, time.Second
		r.err = &apiError{Type: "requests", Code: strp("rate_limit_exceeded"),
			Message: "Rate limit reached for requests (simulated storm). Please try again in 1s."}
		if fBody {
			r.status, r.outcome = 200, outcomeRateLimitMsg
		}
	case s.cfg.TPM > 0 && total > s.cfg.TPM:
		// Never fits, as OpenAI says it: a 429 that no wait will cure.
		r.status, r.outcome = 429, outcomeRateLimited
		r.err = &apiError{Type: "tokens", Code: strp("rate_limit_exceeded"), Message: fmt.Sprintf(
			"Request too large for %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully.",
			req.model, s.cfg.TPM, total)}
	case s.cfg.RPM > 0 && s.reqs.level < 1, s.cfg.TPM > 0 && s.toks.level < float64(total):
		s.rateLimitedLocked(req, r)
	default:
		if s.cfg.RPM > 0 {
			s.reqs.level--
		}
		if s.cfg.TPM > 0 {
			s.toks.level -= float64(total)
		}
		r.status, r.outcome = 200, outcomeOK
		switch {
		case f5xx:
			r.status, r.outcome = 500, outcomeServerError
			r.err = &apiError{Type: "server_error", Message: "The server had an error while processing your request. Sorry about that!"}
		case fHang:
			r.status, r.outcome = 0, outcomeHang
		case fReset:
			r.status, r.outcome = 0, outcomeReset
		case fBad:
			r.outcome = outcomeMalformed
		}
	}
}

// rateLimitedLocked answers a request the buckets cannot hold now: a 429
// naming the limit that binds and when it will fit; s.mu is held.
func (s *Simulator) rateLimitedLocked(req simRequest, r *simReply) {
	total := r.tokens
	r.status, r.outcome = 429, outcomeRateLimited
	if s.cfg.RPM > 0 {
		r.wait = s.reqs.waitFor(1)
	}
	if s.cfg.TPM > 0 {
		r.wait = max(r.wait, s.toks.waitFor(float64(total)))
	}
	kind, limit, used := "requests per min (RPM)", s.cfg.RPM, s.cfg.RPM-int(s.reqs.level)
	typ, requested := "requests", 1
	if s.cfg.TPM > 0 && s.toks.level < float64(total) {
		kind, limit, used, typ, requested = "tokens per min (TPM)", s.cfg.TPM, s.cfg.TPM-int(s.toks.level), "tokens", total
	}
	r.err = &apiError{Type: typ, Code: strp("rate_limit_exceeded"), Message: fmt.Sprintf(
		"Rate limit reached for %s on %s: Limit %d, Used %d, Requested %d. Please try again in %s.",
		req.model, kind, limit, used, requested, formatReset(r.wait))}
}

// rateLimitLocked snapshots the buckets as OpenAI's headers; s.mu is held.
func (s *Simulator) rateLimitLocked() *RateLimit {
	if s.cfg.RPM == 0 && s.cfg.TPM == 0 {
		return nil
	}
	rl := &RateLimit{-1, -1, -1, -1, -1, -1}
	if s.cfg.RPM > 0 {
		rl.LimitRequests, rl.RemainingRequests, rl.ResetRequests = s.cfg.RPM, max(0, int(s.reqs.level)), s.reqs.untilFull()
	}
	if s.cfg.TPM > 0 {
		rl.LimitTokens, rl.RemainingTokens, rl.ResetTokens = s.cfg.TPM, max(0, int(s.toks.level)), s.toks.untilFull()
	}
	return rl
}

// Embed runs req through the simulator in process: the same validation,
// limits, faults, latency and ledger as over HTTP. A hang waits for ctx or
// HangFor and then fails with ErrTimeout; a reset fails with
// ErrConnectionReset; a malformed body with ErrMalformedResponse.
func (s *Simulator) Embed(ctx context.Context, req *Request) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	started := time.Now()
	done, err := startRequest(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	sr := simRequest{started: started, model: req.Model, dims: req.Dimensions, texts: make([]string, len(req.Inputs))}
	if sr.model == "" {
		sr.model = s.cfg.Model
	}
	for i, in := range req.Inputs {
		sr.texts[i] = in.Text
	}
	r := s.serve(ctx, sr, true)
	if r.outcome == outcomeOK {
		return &Result{Vectors: r.vectors, Usage: Usage{r.tokens, r.tokens}, Received: time.Now(), RateLimit: r.rl}, nil
	}
	pe := &ProviderError{Status: r.status, RetryAfter: r.wait, RateLimit: r.rl}
	if r.err != nil {
		pe.Type, pe.Message = r.err.Type, r.err.Message
		if r.err.Code != nil {
			pe.Code = *r.err.Code
		}
		if r.err.Param != nil {
			pe.Param = *r.err.Param
		}
	}
	switch r.outcome {
	case outcomeCanceled:
		return nil, ctx.Err()
	case outcomeHang:
		if err := s.hang(ctx); err != nil {
			return nil, err
		}
		pe.Err = ErrTimeout
	case outcomeReset:
		pe.Err = ErrConnectionReset
	case outcomeMalformed:
		pe.Err = ErrMalformedResponse
	case outcomeRateLimitMsg:
		pe.Status = 429 // what OpenAI does with a 200 carrying a rate-limit body
	}
	pe.attribute(req, r.badIdx)
	return nil, pe
}

// hang waits until ctx ends (returning its error), the simulator closes or
// HangFor passes (returning nil).
func (s *Simulator) hang(ctx context.Context) error {
	t := time.NewTimer(s.cfg.HangFor)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
	case <-t.C:
	}
	return nil
}

// ServeHTTP answers the OpenAI embeddings API and the ledger.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/v1/ledger" || path == "/ledger":
		if r.Method != http.MethodGet {
			writeAPIError(w, http.StatusMethodNotAllowed, &apiError{Type: "invalid_request_error", Message: "use GET for the ledger"}, nil, 0)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("summary") != "" {
			_ = json.NewEncoder(w).Encode(struct {
				Totals LedgerTotals `json:"totals"`
			}{s.Ledger().Totals})
			return
		}
		_ = json.NewEncoder(w).Encode(s.Ledger())
	case path == "/v1/embeddings" || path == "/embeddings" ||
		strings.HasPrefix(path, "/openai/deployments/") && strings.HasSuffix(path, "/embeddings"):
		if r.Method != http.MethodPost {
			writeAPIError(w, http.StatusMethodNotAllowed, &apiError{Type: "invalid_request_error",
				Message: fmt.Sprintf("Invalid method for URL (%s %s)", r.Method, path)}, nil, 0)
			return
		}
		s.serveEmbeddings(w, r)
	case strings.HasPrefix(path, "/v1/files") || strings.HasPrefix(path, "/v1/batches"):
		s.serveBatchAPI(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, &apiError{Type: "invalid_request_error",
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, path)}, nil, 0)
	}
}

// authorized reports whether r carries the configured key (or none is set).
func (s *Simulator) authorized(r *http.Request) bool {
	if !s.auth {
		return true
	}
	got := r.Header.Get("api-key")
	if a := r.Header.Get("Authorization"); a != "" {
		got, _ = strings.CutPrefix(a, "Bearer ")
	}
	return s.keyOK(got)
}

// wireRequest is the JSON body of POST /v1/embeddings.
type wireRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
	User           string          `json:"user"`
}

// maxBody bounds a request body: 2048 inputs of 8192 tokens fit.
const maxBody = 256 << 20

func (s *Simulator) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	badRequest := func(param, msg string) {
		writeAPIError(w, 400, &apiError{Type: "invalid_request_error", Param: strp(param), Message: msg}, nil, 0)
	}
	if !s.authorized(r) {
		// Validation happens after auth, as at OpenAI; serve records it.
		rep := s.serve(r.Context(), simRequest{started: start}, false)
		writeAPIError(w, rep.status, rep.err, nil, 0)
		return
	}
	var wr wireRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&wr); err != nil {
		badRequest("", fmt.Sprintf("We could not parse the JSON body of your request: %v", err))
		return
	}
	req := simRequest{started: start, model: wr.Model, dims: wr.Dimensions}
	if wr.Model == "" {
		if d, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/"); ok {
			req.model = strings.TrimSuffix(d, "/embeddings")
		}
	}
	switch wr.EncodingFormat {
	case "", "float":
	case "base64":
		req.base64 = true
	default:
		badRequest("encoding_format", fmt.Sprintf("encoding_format %q is not one of float, base64", wr.EncodingFormat))
		return
	}
	in := bytes.TrimSpace(wr.Input)
	switch {
	case len(in) > 0 && in[0] == '"':
		var t string
		if err := json.Unmarshal(in, &t); err != nil {
			badRequest("input", "'$.input' is invalid")
			return
		}
		req.texts = []string{t}
	case len(in) > 0 && in[0] == '[':
		if err := json.Unmarshal(in, &req.texts); err != nil {
			badRequest("input", "'$.input' is invalid: the simulator accepts a string or a list of strings (token arrays are not supported)")
			return
		}
	default:
		badRequest("input", "you must provide an input parameter")
		return
	}
	rep := s.serve(r.Context(), req, true)
	s.log.Debug("simulated embeddings request", "inputs", len(req.texts), "tokens", rep.tokens,
		"status", rep.status, "outcome", string(rep.outcome), "elapsed", time.Since(start))
	switch rep.outcome {
	case outcomeOK:
		setRateLimitHeaders(w.Header(), rep.rl, 0)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Openai-Processing-Ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
		_, _ = w.Write(encodeEmbeddings(req, rep))
	case outcomeCanceled:
		// The client is gone; nothing to write.
	case outcomeHang:
		_ = s.hang(r.Context())
		panic(http.ErrAbortHandler)
	case outcomeReset:
		resetConnection(w)
	case outcomeMalformed:
		setRateLimitHeaders(w.Header(), rep.rl, 0)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.01`)
	case outcomeRateLimitMsg:
		setRateLimitHeaders(w.Header(), rep.rl, 0)
		writeAPIError(w, 200, rep.err, nil, 0)
	default:
		writeAPIError(w, rep.status, rep.err, rep.rl, rep.wait)
	}
}

// resetConnection drops the connection without an answer, with a TCP RST
// where it can.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeAPIError writes OpenAI's {"error":{...}} body with rate-limit headers.
func writeAPIError(w http.ResponseWriter, status int, e *apiError, rl *RateLimit, wait time.Duration) {
	setRateLimitHeaders(w.Header(), rl, wait)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{e})
}

// encodeEmbeddings writes the OpenAI response body by hand: encoding/json
// would spend most of the time on the floats.
func encodeEmbeddings(req simRequest, rep simReply) []byte {
	per := 16 * rep.dims
	if req.base64 {
		per = rep.dims*4*4/3 + 8
	}
	b := make([]byte, 0, 128+len(rep.vectors)*(per+48))
	b = append(b, `{"object":"list","data":[`...)
	for i, v := range rep.vectors {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if req.base64 {
			b = appendBase64(b, v)
		} else {
			b = appendFloatJSON(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = strconv.AppendQuote(b, req.model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(rep.tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(rep.tokens), 10)
	return append(b, "}}\n"...)
}

// Ledger is the simulator's billing record: what a provider would charge.
// Only answers the simulator completed with 200 and vectors are billed.
type Ledger struct {
	// Requests lists requests in arrival order (the most recent
	// MaxLedgerRequests; RequestsDropped counts the older ones).
	Requests        []LedgerRequest `json:"requests"`
	RequestsDropped int             `json:"requests_dropped"`
	// Inputs maps the hex sha256 of each billed input text to the number of
	// times it was billed. A chunk paid for twice shows as 2.
	Inputs map[string]int `json:"inputs"`
	// Totals sums every request.
	Totals LedgerTotals `json:"totals"`
	// Batch is what the Files and Batches API saw and billed.
	Batch BatchLedger `json:"batch"`
}

// LedgerRequest is one request as the simulator saw it.
type LedgerRequest struct {
	Seq int `json:"seq"`
	// Started is when the request arrived; At when it was answered (and
	// recorded). Seq follows At.
	Started      time.Time `json:"started"`
	At           time.Time `json:"at"`
	Model        string    `json:"model"`
	Inputs       int       `json:"inputs"`
	BilledTokens int       `json:"billed_tokens"`
	Status       int       `json:"status"`
	Outcome      string    `json:"outcome"`
}

// LedgerTotals counts requests by outcome and the billed tokens.
type LedgerTotals struct {
	Requests     int   `json:"requests"`
	Billed       int   `json:"billed_requests"`
	BilledInputs int   `json:"billed_inputs"`
	PromptTokens int64 `json:"prompt_tokens"`
	// RateLimited counts every 429 answer (and 200 with a rate-limit body),
	// injected ones included; OverLimit only those for a limit really hit,
	// which a client that respects the limits never sees.
	RateLimited int `json:"rate_limited"`
	OverLimit   int `json:"over_limit"`
	Rejected    int `json:"rejected"`
	Faults      int `json:"faults"`
	Canceled    int `json:"canceled"`
}

type ledgerState struct {
	seq     int
	reqs    []LedgerRequest
	dropped int
	inputs  map[[32]byte]int
	totals  LedgerTotals
	max     int
}

// record adds a request to the ledger; a success is billed.
func (s *Simulator) record(req simRequest, r *simReply) {
	var sums [][32]byte
	if r.outcome == outcomeOK {
		sums = make([][32]byte, len(req.texts))
		for i, t := range req.texts {
			sums[i] = sha256Sum(t)
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.ledger
	l.seq++
	l.totals.Requests++
	rec := LedgerRequest{Seq: l.seq, Started: req.started, At: now, Model: req.model, Inputs: len(req.texts), Status: r.status, Outcome: string(r.outcome)}
	switch r.outcome {
	case outcomeOK:
		rec.BilledTokens = r.tokens
		l.totals.Billed++
		l.totals.BilledInputs += len(req.texts)
		l.totals.PromptTokens += int64(r.tokens)
		for _, h := range sums {
			l.inputs[h]++
		}
	case outcomeRateLimited:
		l.totals.RateLimited++
		l.totals.OverLimit++
	case outcomeStorm, outcomeRateLimitMsg:
		l.totals.RateLimited++
	case outcomeRejected:
		l.totals.Rejected++
	case outcomeCanceled:
		l.totals.Canceled++
	default:
		l.totals.Faults++
	}
	if len(l.reqs) >= l.max {
		drop := max(1, l.max/8)
		l.reqs = append(l.reqs[:0], l.reqs[drop:]...)
		l.dropped += drop
	}
	l.reqs = append(l.reqs, rec)
}

// Ledger returns a copy of the billing ledger.
func (s *Simulator) Ledger() Ledger {
	bl := s.batch.batchLedger() // first: finishing a due batch bills it
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Ledger{
		Batch:           bl,
		Requests:        append([]LedgerRequest(nil), s.ledger.reqs...),
		RequestsDropped: s.ledger.dropped,
		Inputs:          make(map[string]int, len(s.ledger.inputs)),
		Totals:          s.ledger.totals,
	}
	for h, n := range s.ledger.inputs {
		l.Inputs[hex.EncodeToString(h[:])] = n
	}
	return l
}

func sha256Sum(t string) [32]byte { return sha256.Sum256([]byte(t)) }

// TextSHA256 returns the ledger key of text: its hex sha256.
func TextSHA256(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])
}

// String describes the simulator without its key, so that printing a
// *Simulator (whose unexported fields fmt would otherwise print raw) is safe.
func (s *Simulator) String() string {
	return fmt.Sprintf("embedder.Simulator{rpm: %d, tpm: %d, api key required: %t}", s.cfg.RPM, s.cfg.TPM, s.auth)
}

// GoString is String, for %#v.
func (s *Simulator) GoString() string { return s.String() }

// LogValue is String, for slog.
func (s *Simulator) LogValue() slog.Value { return slog.StringValue(s.String()) }
