package embedder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Batch API limits (OpenAI, see shared/reference/batch-api.md): a batch file
// holds at most MaxBatchRequests requests and MaxBatchInputs embedding inputs
// across them, in at most MaxBatchFileBytes; at most MaxEnqueuedRequests
// embedding requests may be enqueued at once.
const (
	MaxBatchRequests    = 50_000
	MaxBatchInputs      = 50_000
	MaxBatchFileBytes   = 200 << 20
	MaxEnqueuedRequests = 1_000_000
)

// Batch statuses, as OpenAI names them.
const (
	BatchValidating = "validating"
	BatchInProgress = "in_progress"
	BatchFinalizing = "finalizing"
	BatchCompleted  = "completed"
	BatchFailed     = "failed"
	BatchExpired    = "expired"
	BatchCancelling = "cancelling"
	BatchCancelled  = "cancelled"
)

// BatchTerminal reports whether a batch in status will not change again.
func BatchTerminal(status string) bool {
	switch status {
	case BatchCompleted, BatchFailed, BatchExpired, BatchCancelled:
		return true
	}
	return false
}

// FileObject is the Files API's file object.
type FileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

// BatchError is one entry of a batch's errors.data: an input validation
// error (code invalid_json_line, duplicate_custom_id, too_many_tasks,
// token_limit_exceeded, ...), with the 1-based line it is about.
type BatchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// BatchErrors is a batch's errors list.
type BatchErrors struct {
	Object string       `json:"object"`
	Data   []BatchError `json:"data"`
}

// BatchCounts is a batch's request_counts.
type BatchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// BatchUsage is a batch's usage: the tokens billed for its completed
// requests. go-openai's Batch type lacks it, hence this type.
type BatchUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

// BatchObject is the Batches API's batch object, usage and model included.
type BatchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            string            `json:"model,omitempty"`
	Errors           *BatchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    BatchCounts       `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
	Usage            *BatchUsage       `json:"usage,omitempty"`
}

// BatchList is a page of GET /v1/batches.
type BatchList struct {
	Object  string        `json:"object"`
	Data    []BatchObject `json:"data"`
	FirstID string        `json:"first_id"`
	LastID  string        `json:"last_id"`
	HasMore bool          `json:"has_more"`
}

// BatchRequestLine is one line of a batch input file for /v1/embeddings.
type BatchRequestLine struct {
	CustomID string           `json:"custom_id"`
	Method   string           `json:"method"`
	URL      string           `json:"url"`
	Body     BatchRequestBody `json:"body"`
}

// BatchRequestBody is the embeddings request inside a [BatchRequestLine].
type BatchRequestBody struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	Dimensions     int      `json:"dimensions,omitempty"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
}

// BatchOutputLine is one line of a batch output or error file.
type BatchOutputLine struct {
	ID       string               `json:"id"`
	CustomID string               `json:"custom_id"`
	Response *BatchOutputResponse `json:"response"`
	Error    *BatchError          `json:"error"`
}

// BatchOutputResponse is the HTTP answer a batch request got.
type BatchOutputResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// BatchClient calls an OpenAI-compatible Files and Batches API with
// net/http: upload, create, retrieve, cancel, list and file content. Only
// GET calls are retried (they are idempotent); a call that creates
// something is made once, and the caller re-attaches through metadata.
type BatchClient struct {
	// BaseURL is the API root, e.g. https://api.openai.com/v1.
	BaseURL string
	// APIKey is sent as a bearer token; it is never logged.
	APIKey APIKey
	// HTTP is the client; nil means one with a 2-minute timeout.
	HTTP *http.Client
	// Retries of a failed GET (5xx, 429, transport error); default 4.
	Retries int
}

// BatchAPIError is an error answer of the Files or Batches API.
type BatchAPIError struct {
	Status  int
	Code    string
	Message string
}

// Error says the status, the code when there is one, and the message.
func (e *BatchAPIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("batch api: status %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("batch api: status %d: %s", e.Status, e.Message)
}

func (c *BatchClient) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 2 * time.Minute}
}

func (c *BatchClient) url(path string) string {
	return strings.TrimSuffix(c.BaseURL, "/") + path
}

// do sends one request and decodes a JSON answer into out (nil: the caller
// reads the body, which do returns open).
func (c *BatchClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) (io.ReadCloser, error) {
	tries := 1
	if method == http.MethodGet {
		tries += max(c.Retries, 0)
		if c.Retries == 0 {
			tries = 5
		}
	}
	var last error
	for i := range tries {
		if i > 0 {
			t := time.NewTimer(time.Duration(1<<min(i, 5)) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		rc, retry, err := c.once(ctx, method, path, contentType, body, out)
		if err == nil || !retry {
			return rc, err
		}
		last = err
	}
	return nil, last
}

func (c *BatchClient) once(ctx context.Context, method, path, contentType string, body []byte, out any) (io.ReadCloser, bool, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return nil, false, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if k := c.APIKey.Reveal(); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, ctx.Err() == nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		ae := &BatchAPIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			ae.Message = e.Error.Message
			if e.Error.Code != nil {
				ae.Code = *e.Error.Code
			}
		}
		return nil, resp.StatusCode >= 500 || resp.StatusCode == 429, fmt.Errorf("%s %s: %w", method, path, ae)
	}
	if out == nil {
		return resp.Body, false, nil
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, true, fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil, false, nil
}

// UploadBatchFile uploads a JSONL request file with purpose "batch".
func (c *BatchClient) UploadBatchFile(ctx context.Context, filename string, content []byte) (*FileObject, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("purpose", "batch"); err != nil {
		return nil, fmt.Errorf("building the upload of %s: %w", filename, err)
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		return nil, fmt.Errorf("building the upload of %s: %w", filename, err)
	}
	if _, err := fw.Write(content); err != nil {
		return nil, fmt.Errorf("building the upload of %s: %w", filename, err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("building the upload of %s: %w", filename, err)
	}
	var f FileObject
	if _, err := c.do(ctx, http.MethodPost, "/files", mw.FormDataContentType(), buf.Bytes(), &f); err != nil {
		return nil, fmt.Errorf("uploading batch file %s: %w", filename, err)
	}
	return &f, nil
}

// CreateBatch creates an embeddings batch of the uploaded file, tagged with
// metadata (at most 16 keys).
func (c *BatchClient) CreateBatch(ctx context.Context, fileID string, metadata map[string]string) (*BatchObject, error) {
	body, _ := json.Marshal(map[string]any{"input_file_id": fileID, "endpoint": "/v1/embeddings",
		"completion_window": "24h", "metadata": metadata})
	var b BatchObject
	if _, err := c.do(ctx, http.MethodPost, "/batches", "application/json", body, &b); err != nil {
		return nil, fmt.Errorf("creating a batch of file %s: %w", fileID, err)
	}
	return &b, nil
}

// RetrieveBatch fetches a batch.
func (c *BatchClient) RetrieveBatch(ctx context.Context, id string) (*BatchObject, error) {
	var b BatchObject
	if _, err := c.do(ctx, http.MethodGet, "/batches/"+url.PathEscape(id), "", nil, &b); err != nil {
		return nil, fmt.Errorf("retrieving batch %s: %w", id, err)
	}
	return &b, nil
}

// CancelBatch asks the provider to cancel a batch; completed work is kept.
func (c *BatchClient) CancelBatch(ctx context.Context, id string) (*BatchObject, error) {
	var b BatchObject
	if _, err := c.do(ctx, http.MethodPost, "/batches/"+url.PathEscape(id)+"/cancel", "", nil, &b); err != nil {
		return nil, fmt.Errorf("cancelling batch %s: %w", id, err)
	}
	return &b, nil
}

// ListBatches returns one page of batches, newest first, after the given id.
func (c *BatchClient) ListBatches(ctx context.Context, after string, limit int) (*BatchList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var l BatchList
	if _, err := c.do(ctx, http.MethodGet, "/batches?"+q.Encode(), "", nil, &l); err != nil {
		return nil, fmt.Errorf("listing batches: %w", err)
	}
	return &l, nil
}

// FindBatch pages through the batches for the first whose metadata has
// key=value; nil when none does.
func (c *BatchClient) FindBatch(ctx context.Context, key, value string) (*BatchObject, error) {
	after := ""
	for {
		l, err := c.ListBatches(ctx, after, 100)
		if err != nil {
			return nil, err
		}
		for i := range l.Data {
			if l.Data[i].Metadata[key] == value {
				return &l.Data[i], nil
			}
		}
		if !l.HasMore || len(l.Data) == 0 {
			return nil, nil
		}
		after = l.LastID
	}
}

// FileContent streams a file's content; the caller closes it.
func (c *BatchClient) FileContent(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, err := c.do(ctx, http.MethodGet, "/files/"+url.PathEscape(id)+"/content", "", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("downloading file %s: %w", id, err)
	}
	if rc == nil {
		return nil, errors.New("downloading file " + id + ": no body")
	}
	return rc, nil
}
