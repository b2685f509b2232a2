package embedder_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

// fakeClock is a hand-moved clock for the batch simulator.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func batchSim(t *testing.T, cfg embedder.BatchSimConfig) (*embedder.Simulator, *embedder.BatchClient, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	sim, srv := serveSim(t, embedder.SimulatorConfig{APIKey: "sk-batch", Batch: cfg})
	return sim, &embedder.BatchClient{BaseURL: srv.URL + "/v1", APIKey: "sk-batch", Retries: 1}, clk
}

// requestFile builds a JSONL input file of n requests of per inputs each.
func requestFile(n, per int) ([]byte, map[string][]string) {
	var buf bytes.Buffer
	texts := map[string][]string{}
	for i := range n {
		id := fmt.Sprintf("r%04d", i)
		var in []string
		for j := range per {
			in = append(in, fmt.Sprintf("request %d input %d about disaster recovery", i, j))
		}
		texts[id] = in
		b, _ := json.Marshal(embedder.BatchRequestLine{CustomID: id, Method: "POST", URL: "/v1/embeddings",
			Body: embedder.BatchRequestBody{Model: "text-embedding-3-small", Input: in, Dimensions: 8}})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), texts
}

func submit(t *testing.T, c *embedder.BatchClient, data []byte, meta map[string]string) *embedder.BatchObject {
	t.Helper()
	f, err := c.UploadBatchFile(t.Context(), "in.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes != int64(len(data)) || f.Purpose != "batch" {
		t.Fatalf("file object %+v", f)
	}
	b, err := c.CreateBatch(t.Context(), f.ID, meta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readLines(t *testing.T, c *embedder.BatchClient, id *string) map[string]embedder.BatchOutputLine {
	t.Helper()
	out := map[string]embedder.BatchOutputLine{}
	if id == nil {
		return out
	}
	rc, err := c.FileContent(t.Context(), *id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var l embedder.BatchOutputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if _, dup := out[l.CustomID]; dup {
			t.Fatalf("custom_id %s twice in one file", l.CustomID)
		}
		out[l.CustomID] = l
	}
	return out
}

// TestBatchSimRoundTrip: upload, create, poll, download; every custom_id
// answered with the simulator's vectors, usage equal to the exact tokens,
// billed once in the ledger at batch (not sync) totals, metadata kept.
func TestBatchSimRoundTrip(t *testing.T) {
	t.Parallel()
	sim, c, clk := batchSim(t, embedder.BatchSimConfig{CompletionP50: time.Minute, CompletionP90: time.Minute})
	data, texts := requestFile(5, 3)
	b := submit(t, c, data, map[string]string{"reembed_batch": "b1"})
	if b.Status != embedder.BatchValidating || b.RequestCounts.Total != 5 || b.Metadata["reembed_batch"] != "b1" {
		t.Fatalf("created batch %+v", b)
	}
	clk.Add(30 * time.Second)
	if b, _ = c.RetrieveBatch(t.Context(), b.ID); b.Status != embedder.BatchInProgress || b.OutputFileID != nil {
		t.Fatalf("half way: %+v", b)
	}
	clk.Add(31 * time.Second)
	b, err := c.RetrieveBatch(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != embedder.BatchCompleted || b.RequestCounts.Completed != 5 || b.ErrorFileID != nil {
		t.Fatalf("done: %+v", b)
	}
	out := readLines(t, c, b.OutputFileID)
	want := int64(0)
	for id, in := range texts {
		l, ok := out[id]
		if !ok || l.Response == nil || l.Response.StatusCode != 200 {
			t.Fatalf("custom_id %s: %+v", id, l)
		}
		var body struct {
			Data []struct {
				Index     int       `json:"index"`
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int64 `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(l.Response.Body, &body); err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for i, s := range in {
			n += int64(countTokens(t, s))
			if !sameVector(body.Data[i].Embedding, embedder.SimulatedVector("text-embedding-3-small", 8, s)) {
				t.Errorf("%s input %d: wrong vector", id, i)
			}
		}
		if body.Usage.PromptTokens != n {
			t.Errorf("%s: usage %d, want %d", id, body.Usage.PromptTokens, n)
		}
		want += n
	}
	if b.Usage == nil || b.Usage.InputTokens != want {
		t.Errorf("batch usage %+v, want %d input tokens", b.Usage, want)
	}
	l := sim.Ledger()
	if l.Batch.PromptTokens != want || l.Batch.BilledRequests != 5 || l.Batch.BilledInputs != 15 || l.Batch.BatchesCreated != 1 {
		t.Errorf("batch ledger %+v, want %d tokens", l.Batch, want)
	}
	if l.Totals.PromptTokens != 0 {
		t.Errorf("sync totals billed %d tokens for a batch", l.Totals.PromptTokens)
	}
	for _, in := range texts {
		for _, s := range in {
			if l.Inputs[embedder.TextSHA256(s)] != 1 {
				t.Errorf("input %q billed %d times", s, l.Inputs[embedder.TextSHA256(s)])
			}
		}
	}
	// Retrieving again bills nothing more.
	_, _ = c.RetrieveBatch(t.Context(), b.ID)
	if l2 := sim.Ledger(); l2.Batch.PromptTokens != want {
		t.Errorf("billed again on retrieve: %d", l2.Batch.PromptTokens)
	}
}

// TestBatchSimValidation: the input validator's codes, each on a failed
// batch with the line it is about, and nothing billed.
func TestBatchSimValidation(t *testing.T) {
	t.Parallel()
	good, _ := requestFile(2, 1)
	dup := append(append([]byte{}, good...), bytes.SplitAfter(good, []byte("\n"))[0]...)
	for _, tc := range []struct {
		name, code string
		data       []byte
		line       int
	}{
		{"invalid_json", "invalid_json_line", append(append([]byte{}, good...), "{not json\n"...), 3},
		{"no_custom_id", "invalid_json_line", []byte(`{"method":"POST","url":"/v1/embeddings","body":{"model":"m","input":["x"]}}` + "\n"), 1},
		{"duplicate", "duplicate_custom_id", dup, 3},
		{"too_many", "too_many_tasks", func() []byte { d, _ := requestFile(3, 1); return d }(), 0},
		{"too_many_inputs", "too_many_tasks", func() []byte { d, _ := requestFile(1, 4); return d }(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c, _ := batchSim(t, embedder.BatchSimConfig{MaxRequests: 2, MaxInputs: 3})
			b := submit(t, c, tc.data, nil)
			if b.Status != embedder.BatchFailed || b.Errors == nil {
				t.Fatalf("batch %+v, want failed", b)
			}
			found := false
			for _, e := range b.Errors.Data {
				if e.Code == tc.code && (tc.line == 0 || e.Line != nil && *e.Line == tc.line) {
					found = true
				}
			}
			if !found {
				t.Errorf("errors %+v, want %s at line %d", b.Errors.Data, tc.code, tc.line)
			}
			if l := sim.Ledger(); l.Batch.PromptTokens != 0 || len(l.Inputs) != 0 {
				t.Errorf("a failed batch billed: %+v", l.Batch)
			}
		})
	}
}

// TestBatchSimEnqueueCaps: a batch past the enqueued-token or -request cap
// fails with token_limit_exceeded / request_limit_exceeded; once the first
// batch finished, the same file is accepted.
func TestBatchSimEnqueueCaps(t *testing.T) {
	t.Parallel()
	data, _ := requestFile(4, 2)
	for _, tc := range []struct {
		name string
		cfg  embedder.BatchSimConfig
		code string
	}{
		{"tokens", embedder.BatchSimConfig{MaxEnqueuedTokens: 100}, "token_limit_exceeded"},
		{"requests", embedder.BatchSimConfig{MaxEnqueuedRequests: 6}, "request_limit_exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.CompletionP50, tc.cfg.CompletionP90 = time.Hour, time.Hour
			_, c, clk := batchSim(t, tc.cfg)
			if b := submit(t, c, data, nil); b.Status == embedder.BatchFailed {
				t.Fatalf("first batch failed: %+v", b.Errors)
			}
			b := submit(t, c, data, nil)
			if b.Status != embedder.BatchFailed || b.Errors == nil || b.Errors.Data[0].Code != tc.code {
				t.Fatalf("second batch %+v, want failed %s", b, tc.code)
			}
			clk.Add(2 * time.Hour)
			if b := submit(t, c, data, nil); b.Status == embedder.BatchFailed {
				t.Fatalf("after the queue drained: %+v", b.Errors)
			}
		})
	}
}

// TestBatchSimExpiryAndCancel: an expired or cancelled batch returns and
// bills the requests it finished; the rest are in the error file with
// batch_expired / batch_cancelled; every custom_id is in exactly one file.
func TestBatchSimExpiryAndCancel(t *testing.T) {
	t.Parallel()
	for _, cancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel=%t", cancel), func(t *testing.T) {
			t.Parallel()
			cfg := embedder.BatchSimConfig{CompletionP50: 10 * time.Hour, CompletionP90: 10 * time.Hour, Window: 5 * time.Hour}
			sim, c, clk := batchSim(t, cfg)
			data, texts := requestFile(10, 1)
			b := submit(t, c, data, nil)
			clk.Add(5 * time.Hour) // half of the 10 h it needs
			code, status := "batch_expired", embedder.BatchExpired
			if cancel {
				code, status = "batch_cancelled", embedder.BatchCancelled
				cb, err := c.CancelBatch(t.Context(), b.ID)
				if err != nil || cb.Status != embedder.BatchCancelling {
					t.Fatalf("cancel: %+v %v", cb, err)
				}
			}
			b, _ = c.RetrieveBatch(t.Context(), b.ID)
			if b.Status != status || b.RequestCounts.Completed != 5 {
				t.Fatalf("batch %+v, want %s with 5 completed", b, status)
			}
			out, errs := readLines(t, c, b.OutputFileID), readLines(t, c, b.ErrorFileID)
			if len(out) != 5 || len(errs) != 5 {
				t.Fatalf("%d output lines and %d error lines, want 5 and 5", len(out), len(errs))
			}
			tokens := int64(0)
			for id := range texts {
				_, o := out[id]
				e, isErr := errs[id]
				if o == isErr {
					t.Errorf("custom_id %s in output %t and errors %t", id, o, isErr)
				}
				if isErr && (e.Error == nil || e.Error.Code != code) {
					t.Errorf("error line %+v, want %s", e, code)
				}
				if o {
					tokens += int64(countTokens(t, texts[id][0]))
				}
			}
			if l := sim.Ledger(); l.Batch.PromptTokens != tokens || b.Usage.InputTokens != tokens {
				t.Errorf("billed %d, usage %d, want %d (the finished half only)", l.Batch.PromptTokens, b.Usage.InputTokens, tokens)
			}
		})
	}
}

// TestBatchSimPartialFailures: failed requests go to the error file with a
// 500, are not billed, and a batch whose every request failed completes
// with no output file.
func TestBatchSimPartialFailures(t *testing.T) {
	t.Parallel()
	sim, c, clk := batchSim(t, embedder.BatchSimConfig{FailRate: 1})
	data, _ := requestFile(3, 1)
	b := submit(t, c, data, nil)
	clk.Add(time.Hour)
	b, _ = c.RetrieveBatch(t.Context(), b.ID)
	if b.Status != embedder.BatchCompleted || b.OutputFileID != nil || b.RequestCounts.Failed != 3 {
		t.Fatalf("batch %+v", b)
	}
	for id, l := range readLines(t, c, b.ErrorFileID) {
		if l.Response == nil || l.Response.StatusCode != 500 {
			t.Errorf("%s: %+v", id, l)
		}
	}
	if l := sim.Ledger(); l.Batch.PromptTokens != 0 {
		t.Errorf("failed requests billed %d tokens", l.Batch.PromptTokens)
	}
}

// TestBatchSimListAndFind: list pages newest first; FindBatch finds a batch
// by its metadata across pages (how a restarted rebuild re-attaches).
func TestBatchSimListAndFind(t *testing.T) {
	t.Parallel()
	_, c, _ := batchSim(t, embedder.BatchSimConfig{})
	data, _ := requestFile(1, 1)
	var ids []string
	for i := range 130 {
		ids = append(ids, submit(t, c, data, map[string]string{"k": fmt.Sprint(i)}).ID)
	}
	l, err := c.ListBatches(t.Context(), "", 100)
	if err != nil || len(l.Data) != 100 || !l.HasMore || l.Data[0].ID != ids[129] {
		t.Fatalf("first page: %d, more %t, first %s (err %v)", len(l.Data), l.HasMore, l.FirstID, err)
	}
	b, err := c.FindBatch(t.Context(), "k", "3")
	if err != nil || b == nil || b.ID != ids[3] {
		t.Fatalf("FindBatch k=3: %+v %v", b, err)
	}
	if b, err := c.FindBatch(t.Context(), "k", "nope"); err != nil || b != nil {
		t.Fatalf("FindBatch of nothing: %+v %v", b, err)
	}
}

// TestBatchSimAuthAndLimits: the batch API needs the key; an upload over
// the file cap is refused; an unknown batch is 404.
func TestBatchSimAuthAndLimits(t *testing.T) {
	t.Parallel()
	_, c, _ := batchSim(t, embedder.BatchSimConfig{MaxFileBytes: 100})
	bad := *c
	bad.APIKey = "sk-wrong"
	var ae *embedder.BatchAPIError
	if _, err := bad.ListBatches(t.Context(), "", 1); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := c.UploadBatchFile(t.Context(), "big.jsonl", bytes.Repeat([]byte("x"), 101)); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("oversized upload: %v", err)
	}
	if _, err := c.RetrieveBatch(t.Context(), "batch-nope"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown batch: %v", err)
	}
	rc, err := c.FileContent(t.Context(), "file-nope")
	if err == nil {
		io.Copy(io.Discard, rc)
		rc.Close()
		t.Error("unknown file: no error")
	}
}
