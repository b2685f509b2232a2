package embedder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BatchSimConfig configures the simulator's Files and Batches API. The zero
// value completes a batch in about 300 ms (p90 1 s), fails no request, and
// enforces OpenAI's per-batch and enqueued-request caps with no enqueued-token
// cap.
type BatchSimConfig struct {
	// CompletionP50 and CompletionP90 define the log-normal time a batch
	// takes from creation to completion (defaults 300ms and 1s). Realistic
	// figures are minutes to hours (shared/reference/batch-api.md).
	CompletionP50, CompletionP90 time.Duration
	// Window is the completion window: a batch whose drawn completion time
	// exceeds it expires at Window with the requests it finished by then
	// (billed) and the rest in the error file (code batch_expired). Default 24h.
	Window time.Duration
	// FailRate is the share of requests that fail (status 500 in the error
	// file), drawn per request with Seed.
	FailRate float64
	// MaxEnqueuedRequests (default 1,000,000) and MaxEnqueuedTokens (0:
	// none) cap the requests and tokens of batches not yet finished; a batch
	// that would pass one fails with request_limit_exceeded or
	// token_limit_exceeded and costs nothing.
	MaxEnqueuedRequests int
	MaxEnqueuedTokens   int64
	// MaxRequests and MaxInputs per batch (default 50,000 each; more:
	// too_many_tasks) and MaxFileBytes per upload (default 200 MB).
	MaxRequests, MaxInputs int
	MaxFileBytes           int64
	// Seed makes the completion times and failures repeatable.
	Seed uint64
	// Now is the batch clock; nil means time.Now. Tests move it by hand.
	Now func() time.Time
}

func (c *BatchSimConfig) fill() error {
	if c.CompletionP50 <= 0 {
		c.CompletionP50 = 300 * time.Millisecond
	}
	if c.CompletionP90 <= 0 {
		c.CompletionP90 = max(c.CompletionP50, time.Second)
	}
	if c.CompletionP90 < c.CompletionP50 {
		return fmt.Errorf("batch completion p90 %s is below p50 %s", c.CompletionP90, c.CompletionP50)
	}
	if c.Window <= 0 {
		c.Window = 24 * time.Hour
	}
	if c.FailRate < 0 || c.FailRate > 1 || math.IsNaN(c.FailRate) {
		return fmt.Errorf("batch fail rate %v is not in [0, 1]", c.FailRate)
	}
	c.MaxEnqueuedRequests = cmp0(c.MaxEnqueuedRequests, MaxEnqueuedRequests)
	c.MaxRequests = cmp0(c.MaxRequests, MaxBatchRequests)
	c.MaxInputs = cmp0(c.MaxInputs, MaxBatchInputs)
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = MaxBatchFileBytes
	}
	if c.MaxEnqueuedTokens < 0 {
		return fmt.Errorf("batch enqueued-token cap %d is negative", c.MaxEnqueuedTokens)
	}
	return nil
}

// BatchLedger is the batch side of the simulator's ledger: every file and
// batch, and what completed batch requests were billed (at the batch price:
// the caller multiplies PromptTokens by the model's batch price).
type BatchLedger struct {
	FilesUploaded  int           `json:"files_uploaded"`
	BatchesCreated int           `json:"batches_created"`
	BilledRequests int           `json:"billed_requests"`
	BilledInputs   int           `json:"billed_inputs"`
	PromptTokens   int64         `json:"prompt_tokens"`
	Batches        []LedgerBatch `json:"batches"`
}

// LedgerBatch is one batch as the simulator saw it.
type LedgerBatch struct {
	ID           string            `json:"id"`
	InputFileID  string            `json:"input_file_id"`
	Status       string            `json:"status"`
	Metadata     map[string]string `json:"metadata"`
	Requests     int               `json:"requests"`
	Completed    int               `json:"completed"`
	Failed       int               `json:"failed"`
	BilledTokens int64             `json:"billed_tokens"`
}

type simFile struct {
	obj  FileObject
	data []byte
}

type simBatchReq struct {
	line   int
	id     string
	body   BatchRequestBody
	tokens int
	bad    string // per-request validation error, answered 400
	fail   bool   // drawn failure, answered 500
}

type simBatch struct {
	obj      BatchObject
	reqs     []simBatchReq
	tokens   int64
	created  time.Time
	dur      time.Duration
	cancelAt time.Time
	done     bool
}

// batchSim is the Files and Batches state of a Simulator.
type batchSim struct {
	cfg    BatchSimConfig
	sim    *Simulator
	mu     sync.Mutex
	rng    *rand.Rand
	seq    int
	files  map[string]*simFile
	order  []*simBatch // creation order
	byID   map[string]*simBatch
	ledger BatchLedger
	now    func() time.Time
}

func newBatchSim(s *Simulator, cfg BatchSimConfig) (*batchSim, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &batchSim{cfg: cfg, sim: s, rng: rand.New(rand.NewPCG(cfg.Seed, 0xba7c4)),
		files: map[string]*simFile{}, byID: map[string]*simBatch{}, now: cmpFunc(cfg.Now, time.Now)}, nil
}

func cmpFunc(f, def func() time.Time) func() time.Time {
	if f == nil {
		return def
	}
	return f
}

func (b *batchSim) nextID(prefix string) string {
	b.seq++
	return fmt.Sprintf("%s-sim%06d", prefix, b.seq)
}

// drawDuration draws a log-normal completion time from p50 and p90.
func (b *batchSim) drawDuration() time.Duration {
	p50, p90 := b.cfg.CompletionP50.Seconds(), b.cfg.CompletionP90.Seconds()
	sigma := math.Log(p90/p50) / 1.2815515655446004
	return time.Duration(p50 * math.Exp(sigma*b.rng.NormFloat64()) * float64(time.Second))
}

// serveBatchAPI routes /v1/files and /v1/batches.
func (s *Simulator) serveBatchAPI(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeAPIError(w, 401, &apiError{Type: "invalid_request_error", Code: strp("invalid_api_key"), Message: "Incorrect API key provided."}, nil, 0)
		return
	}
	b := s.batch
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1"), "/"), "/")
	switch {
	case parts[0] == "files" && len(parts) == 1 && r.Method == http.MethodPost:
		b.upload(w, r)
	case parts[0] == "files" && len(parts) == 1 && r.Method == http.MethodGet:
		b.listFiles(w)
	case parts[0] == "files" && len(parts) == 2 && r.Method == http.MethodGet:
		b.withFile(w, parts[1], func(f *simFile) { writeJSON(w, 200, f.obj) })
	case parts[0] == "files" && len(parts) == 2 && r.Method == http.MethodDelete:
		b.deleteFile(w, parts[1])
	case parts[0] == "files" && len(parts) == 3 && parts[2] == "content" && r.Method == http.MethodGet:
		b.withFile(w, parts[1], func(f *simFile) {
			w.Header().Set("Content-Type", "application/jsonl")
			w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
			_, _ = w.Write(f.data)
		})
	case parts[0] == "batches" && len(parts) == 1 && r.Method == http.MethodPost:
		b.create(w, r)
	case parts[0] == "batches" && len(parts) == 1 && r.Method == http.MethodGet:
		b.list(w, r)
	case parts[0] == "batches" && len(parts) == 2 && r.Method == http.MethodGet:
		b.withBatch(w, parts[1], false)
	case parts[0] == "batches" && len(parts) == 3 && parts[2] == "cancel" && r.Method == http.MethodPost:
		b.withBatch(w, parts[1], true)
	default:
		writeAPIError(w, http.StatusNotFound, &apiError{Type: "invalid_request_error",
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)}, nil, 0)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badBatchRequest(w http.ResponseWriter, status int, param, msg string) {
	e := &apiError{Type: "invalid_request_error", Message: msg}
	if param != "" {
		e.Param = strp(param)
	}
	writeAPIError(w, status, e, nil, 0)
}

func (b *batchSim) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, b.cfg.MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		badBatchRequest(w, 400, "file", fmt.Sprintf("could not parse the multipart upload: %v", err))
		return
	}
	defer r.MultipartForm.RemoveAll()
	purpose := r.FormValue("purpose")
	if purpose == "" {
		badBatchRequest(w, 400, "purpose", "purpose is required")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		badBatchRequest(w, 400, "file", "file is required")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, b.cfg.MaxFileBytes+1))
	if err != nil {
		badBatchRequest(w, 400, "file", fmt.Sprintf("reading the upload: %v", err))
		return
	}
	if int64(len(data)) > b.cfg.MaxFileBytes {
		badBatchRequest(w, 400, "file", fmt.Sprintf("file is over the %d-byte limit for batch files", b.cfg.MaxFileBytes))
		return
	}
	b.mu.Lock()
	id := b.nextID("file")
	sf := &simFile{obj: FileObject{ID: id, Object: "file", Bytes: int64(len(data)), CreatedAt: b.now().Unix(),
		Filename: hdr.Filename, Purpose: purpose, Status: "processed"}, data: data}
	b.files[id] = sf
	b.ledger.FilesUploaded++
	b.mu.Unlock()
	writeJSON(w, 200, sf.obj)
}

func (b *batchSim) listFiles(w http.ResponseWriter) {
	b.mu.Lock()
	out := make([]FileObject, 0, len(b.files))
	for _, f := range b.files {
		out = append(out, f.obj)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y FileObject) int { return strings.Compare(y.ID, x.ID) })
	writeJSON(w, 200, map[string]any{"object": "list", "data": out, "has_more": false})
}

func (b *batchSim) withFile(w http.ResponseWriter, id string, f func(*simFile)) {
	b.mu.Lock()
	b.refreshLocked()
	sf := b.files[id]
	b.mu.Unlock()
	if sf == nil {
		badBatchRequest(w, 404, "file_id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	f(sf)
}

func (b *batchSim) deleteFile(w http.ResponseWriter, id string) {
	b.mu.Lock()
	_, ok := b.files[id]
	delete(b.files, id)
	b.mu.Unlock()
	if !ok {
		badBatchRequest(w, 404, "file_id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	writeJSON(w, 200, map[string]any{"id": id, "object": "file", "deleted": true})
}

type createBatchWire struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

func (b *batchSim) create(w http.ResponseWriter, r *http.Request) {
	var req createBatchWire
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		badBatchRequest(w, 400, "", fmt.Sprintf("We could not parse the JSON body of your request: %v", err))
		return
	}
	switch {
	case req.Endpoint != "/v1/embeddings":
		badBatchRequest(w, 400, "endpoint", fmt.Sprintf("endpoint %q: the simulator batches /v1/embeddings only", req.Endpoint))
		return
	case req.CompletionWindow != "24h":
		badBatchRequest(w, 400, "completion_window", fmt.Sprintf("completion_window %q: only 24h is supported", req.CompletionWindow))
		return
	case len(req.Metadata) > 16:
		badBatchRequest(w, 400, "metadata", "metadata holds at most 16 keys")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.files[req.InputFileID]
	if f == nil {
		badBatchRequest(w, 400, "input_file_id", fmt.Sprintf("No such File object: %s", req.InputFileID))
		return
	}
	if f.obj.Purpose != "batch" {
		badBatchRequest(w, 400, "input_file_id", fmt.Sprintf("file %s has purpose %q, not batch", f.obj.ID, f.obj.Purpose))
		return
	}
	b.refreshLocked()
	now := b.now()
	sb := &simBatch{created: now, obj: BatchObject{ID: b.nextID("batch"), Object: "batch", Endpoint: req.Endpoint,
		InputFileID: f.obj.ID, CompletionWindow: "24h", Status: BatchValidating, CreatedAt: now.Unix(),
		ExpiresAt: ptr(now.Add(b.cfg.Window).Unix()), Metadata: req.Metadata}}
	if sb.obj.Metadata == nil {
		sb.obj.Metadata = map[string]string{}
	}
	errs := b.parseInput(sb, f.data)
	if len(errs) == 0 {
		errs = b.checkEnqueueLocked(sb)
	}
	if len(errs) > 0 {
		sb.obj.Status, sb.obj.FailedAt, sb.done = BatchFailed, ptr(now.Unix()), true
		sb.obj.Errors = &BatchErrors{Object: "list", Data: errs}
	} else {
		sb.dur = b.drawDuration()
		for i := range sb.reqs {
			sb.reqs[i].fail = sb.reqs[i].bad == "" && b.rng.Float64() < b.cfg.FailRate
		}
	}
	sb.obj.RequestCounts.Total = len(sb.reqs)
	if len(errs) > 0 {
		sb.obj.RequestCounts.Total = 0
	}
	b.order = append(b.order, sb)
	b.byID[sb.obj.ID] = sb
	b.ledger.BatchesCreated++
	writeJSON(w, 200, sb.obj)
}

func ptr[T any](v T) *T { return &v }

// parseInput validates the JSONL input as OpenAI's validator does and fills
// sb.reqs and sb.tokens; it returns the batch's errors.
func (b *batchSim) parseInput(sb *simBatch, data []byte) []BatchError {
	var errs []BatchError
	seen := map[string]bool{}
	inputs := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), int(b.cfg.MaxFileBytes))
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l BatchRequestLine
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&l); err != nil || l.CustomID == "" || l.Method != "POST" || l.URL != "/v1/embeddings" {
			msg := "This line is not parseable as valid JSON, or lacks custom_id, method POST or url /v1/embeddings."
			errs = append(errs, BatchError{Code: "invalid_json_line", Message: msg, Line: ptr(line)})
			continue
		}
		if seen[l.CustomID] {
			errs = append(errs, BatchError{Code: "duplicate_custom_id", Line: ptr(line),
				Message: fmt.Sprintf("The custom_id %q for this request is a duplicate of another request. The custom_id parameter must be unique for each individual request in a batch.", l.CustomID)})
			continue
		}
		seen[l.CustomID] = true
		inputs += len(l.Body.Input)
		sb.reqs = append(sb.reqs, b.checkRequest(line, l))
		sb.tokens += int64(sb.reqs[len(sb.reqs)-1].tokens)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, BatchError{Code: "invalid_json_line", Message: fmt.Sprintf("reading the file: %v", err), Line: ptr(line + 1)})
	}
	if len(sb.reqs) == 0 && len(errs) == 0 {
		errs = append(errs, BatchError{Code: "empty_file", Message: "The batch input file is empty."})
	}
	if len(sb.reqs) > b.cfg.MaxRequests || inputs > b.cfg.MaxInputs {
		errs = append(errs, BatchError{Code: "too_many_tasks", Message: fmt.Sprintf(
			"The batch holds %d requests and %d embedding inputs; the limits are %d requests and %d inputs per batch.",
			len(sb.reqs), inputs, b.cfg.MaxRequests, b.cfg.MaxInputs)})
	}
	return errs
}

// checkRequest validates one embeddings request; a bad one is answered 400
// in the error file, as at OpenAI, and the batch goes on.
func (b *batchSim) checkRequest(line int, l BatchRequestLine) simBatchReq {
	cfg := &b.sim.cfg
	r := simBatchReq{line: line, id: l.CustomID, body: l.Body}
	switch {
	case l.Body.Model == "":
		r.bad = "you must provide a model parameter"
	case len(l.Body.Input) == 0:
		r.bad = "'$.input' is invalid: an empty list of inputs"
	case len(l.Body.Input) > cfg.MaxInputs:
		r.bad = fmt.Sprintf("'$.input' is invalid: %d inputs, over the maximum of %d per request", len(l.Body.Input), cfg.MaxInputs)
	case l.Body.Dimensions < 0 || l.Body.Dimensions > cfg.MaxDimensions:
		r.bad = fmt.Sprintf("dimensions %d is not between 1 and %d", l.Body.Dimensions, cfg.MaxDimensions)
	}
	for i, t := range l.Body.Input {
		n := b.sim.tok.Count([]byte(t))
		if r.bad == "" && (t == "" || n > cfg.MaxInputTokens) {
			r.bad = fmt.Sprintf("input[%d] is empty or over %d tokens", i, cfg.MaxInputTokens)
		}
		r.tokens += n
	}
	if r.bad == "" && r.tokens > cfg.MaxRequestTokens {
		r.bad = fmt.Sprintf("Requested %d tokens, max %d tokens per request", r.tokens, cfg.MaxRequestTokens)
	}
	return r
}

// checkEnqueueLocked applies the enqueued-request and enqueued-token caps.
func (b *batchSim) checkEnqueueLocked(sb *simBatch) []BatchError {
	reqs, toks := 0, int64(0)
	for _, o := range b.order {
		if !o.done {
			reqs += len(o.reqs)
			toks += o.tokens
		}
	}
	model := ""
	if len(sb.reqs) > 0 {
		model = sb.reqs[0].body.Model
	}
	if reqs+len(sb.reqs) > b.cfg.MaxEnqueuedRequests {
		return []BatchError{{Code: "request_limit_exceeded", Message: fmt.Sprintf(
			"Enqueued request limit reached for %s: Limit %d enqueued requests, %d enqueued, %d requested. Please try again once some in_progress batches have been completed.",
			model, b.cfg.MaxEnqueuedRequests, reqs, len(sb.reqs))}}
	}
	if b.cfg.MaxEnqueuedTokens > 0 && toks+sb.tokens > b.cfg.MaxEnqueuedTokens {
		return []BatchError{{Code: "token_limit_exceeded", Message: fmt.Sprintf(
			"Enqueued token limit reached for %s in organization org-simulated. Limit: %d enqueued tokens. Please try again once some in_progress batches have been completed.",
			model, b.cfg.MaxEnqueuedTokens)}}
	}
	return nil
}

func (b *batchSim) withBatch(w http.ResponseWriter, id string, cancel bool) {
	b.mu.Lock()
	sb := b.byID[id]
	if sb != nil && cancel && !sb.done && sb.cancelAt.IsZero() {
		sb.cancelAt = b.now()
		sb.obj.CancellingAt = ptr(sb.cancelAt.Unix())
	}
	b.refreshLocked()
	var obj BatchObject
	if sb != nil {
		obj = sb.obj
		if cancel && sb.obj.Status == BatchCancelled {
			// OpenAI answers the cancel with the batch still cancelling.
			obj.Status = BatchCancelling
		}
	}
	b.mu.Unlock()
	if sb == nil {
		badBatchRequest(w, 404, "batch_id", fmt.Sprintf("No such Batch object: %s", id))
		return
	}
	writeJSON(w, 200, obj)
}

func (b *batchSim) list(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 {
		limit = min(v, 100)
	}
	after := r.URL.Query().Get("after")
	b.mu.Lock()
	b.refreshLocked()
	var page []BatchObject
	started := after == ""
	more := false
	for i := len(b.order) - 1; i >= 0; i-- {
		o := b.order[i]
		if !started {
			started = o.obj.ID == after
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, o.obj)
	}
	b.mu.Unlock()
	l := BatchList{Object: "list", Data: page, HasMore: more}
	if l.Data == nil {
		l.Data = []BatchObject{}
	}
	if len(page) > 0 {
		l.FirstID, l.LastID = page[0].ID, page[len(page)-1].ID
	}
	writeJSON(w, 200, l)
}

// refreshLocked moves every batch to the status its clock says, finishing
// those that are due; b.mu is held.
func (b *batchSim) refreshLocked() {
	now := b.now()
	for _, sb := range b.order {
		if sb.done {
			continue
		}
		el := now.Sub(sb.created)
		n := len(sb.reqs)
		switch {
		case !sb.cancelAt.IsZero():
			b.finishLocked(sb, BatchCancelled, processedBy(n, sb.cancelAt.Sub(sb.created), sb.dur), now)
		case el >= sb.dur && sb.dur <= b.cfg.Window:
			b.finishLocked(sb, BatchCompleted, n, now)
		case el >= b.cfg.Window:
			b.finishLocked(sb, BatchExpired, processedBy(n, b.cfg.Window, sb.dur), now)
		case el < sb.dur/20:
			sb.obj.Status = BatchValidating
		default:
			sb.obj.Status = BatchInProgress
			if sb.obj.InProgressAt == nil {
				sb.obj.InProgressAt = ptr(now.Unix())
			}
			k := processedBy(n, el, sb.dur)
			sb.obj.RequestCounts.Completed, sb.obj.RequestCounts.Failed = 0, 0
			for _, r := range sb.reqs[:k] {
				if r.bad != "" || r.fail {
					sb.obj.RequestCounts.Failed++
				} else {
					sb.obj.RequestCounts.Completed++
				}
			}
		}
	}
}

// processedBy is how many of n requests a batch taking total has processed
// after el.
func processedBy(n int, el, total time.Duration) int {
	if total <= 0 || el >= total {
		return n
	}
	return int(float64(n) * float64(el) / float64(total))
}

// finishLocked ends a batch: the first k requests are processed, their
// successes billed and written to the output file (shuffled: lines are
// matched by custom_id, not order), the rest to the error file.
func (b *batchSim) finishLocked(sb *simBatch, status string, k int, now time.Time) {
	sb.done = true
	sb.obj.Status = status
	t := ptr(now.Unix())
	sb.obj.FinalizingAt = t
	switch status {
	case BatchCompleted:
		sb.obj.CompletedAt = t
	case BatchExpired:
		sb.obj.ExpiredAt = t
	case BatchCancelled:
		sb.obj.CancelledAt = t
	}
	var out, errOut bytes.Buffer
	var billed []string
	counts := BatchCounts{Total: len(sb.reqs)}
	usage := BatchUsage{}
	perm := b.rng.Perm(len(sb.reqs))
	for _, i := range perm {
		r := sb.reqs[i]
		reqID := fmt.Sprintf("batch_req_%s_%d", sb.obj.ID, r.line)
		switch {
		case i >= k:
			code := "batch_expired"
			if status == BatchCancelled {
				code = "batch_cancelled"
			}
			writeLine(&errOut, BatchOutputLine{ID: reqID, CustomID: r.id,
				Error: &BatchError{Code: code, Message: "This request could not be executed before the batch " + status + "."}})
		case r.bad != "" || r.fail:
			counts.Failed++
			st, typ, msg := 400, "invalid_request_error", r.bad
			if r.bad == "" {
				st, typ, msg = 500, "server_error", "The server had an error while processing your request. Sorry about that!"
			}
			body, _ := json.Marshal(map[string]*apiError{"error": {Type: typ, Message: msg}})
			writeLine(&errOut, BatchOutputLine{ID: reqID, CustomID: r.id,
				Response: &BatchOutputResponse{StatusCode: st, RequestID: reqID, Body: body}})
		default:
			counts.Completed++
			usage.InputTokens += int64(r.tokens)
			billed = append(billed, r.body.Input...)
			writeLine(&out, BatchOutputLine{ID: reqID, CustomID: r.id,
				Response: &BatchOutputResponse{StatusCode: 200, RequestID: reqID, Body: b.embedBody(r)}})
		}
	}
	usage.TotalTokens = usage.InputTokens
	sb.obj.RequestCounts, sb.obj.Usage = counts, &usage
	if len(sb.reqs) > 0 {
		sb.obj.Model = sb.reqs[0].body.Model
	}
	if out.Len() > 0 {
		id := b.addFileLocked("batch_output.jsonl", out.Bytes())
		sb.obj.OutputFileID = &id
	}
	if errOut.Len() > 0 {
		id := b.addFileLocked("batch_errors.jsonl", errOut.Bytes())
		sb.obj.ErrorFileID = &id
	}
	b.ledger.BilledRequests += counts.Completed
	b.ledger.BilledInputs += len(billed)
	b.ledger.PromptTokens += usage.InputTokens
	b.sim.billInputs(billed)
}

func writeLine(buf *bytes.Buffer, l BatchOutputLine) {
	b, _ := json.Marshal(l)
	buf.Write(b)
	buf.WriteByte('\n')
}

func (b *batchSim) addFileLocked(name string, data []byte) string {
	id := b.nextID("file")
	b.files[id] = &simFile{obj: FileObject{ID: id, Object: "file", Bytes: int64(len(data)), CreatedAt: b.now().Unix(),
		Filename: name, Purpose: "batch_output", Status: "processed"}, data: data}
	return id
}

// embedBody is the /v1/embeddings answer to a batch request.
func (b *batchSim) embedBody(r simBatchReq) json.RawMessage {
	dims := r.body.Dimensions
	if dims == 0 {
		dims = b.sim.cfg.DefaultDimensions
	}
	req := simRequest{model: r.body.Model, dims: dims, texts: r.body.Input, base64: r.body.EncodingFormat == "base64"}
	rep := simReply{tokens: r.tokens, dims: dims, vectors: make([][]float32, len(r.body.Input))}
	for i, t := range r.body.Input {
		rep.vectors[i] = SimulatedVector(r.body.Model, dims, t)
	}
	return bytes.TrimSpace(encodeEmbeddings(req, rep))
}

// billInputs counts batch-billed inputs in the ledger's per-text counts,
// which sync and batch share: a chunk paid on both paths shows as 2.
func (s *Simulator) billInputs(texts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range texts {
		s.ledger.inputs[sha256Sum(t)]++
	}
}

// batchLedger copies the batch ledger after bringing batches up to date.
func (b *batchSim) batchLedger() BatchLedger {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshLocked()
	l := b.ledger
	l.Batches = make([]LedgerBatch, 0, len(b.order))
	for _, sb := range b.order {
		lb := LedgerBatch{ID: sb.obj.ID, InputFileID: sb.obj.InputFileID, Status: sb.obj.Status, Metadata: sb.obj.Metadata,
			Requests: len(sb.reqs), Completed: sb.obj.RequestCounts.Completed, Failed: sb.obj.RequestCounts.Failed}
		if sb.obj.Usage != nil {
			lb.BilledTokens = sb.obj.Usage.InputTokens
		}
		l.Batches = append(l.Batches, lb)
	}
	return l
}
