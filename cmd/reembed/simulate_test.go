package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/reembed/reembed/embedder"
)

// lockedBuffer is a bytes.Buffer safe for a server goroutine and the test,
// which signals the first line written.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line chan string
	once sync.Once
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{line: make(chan string, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if i := bytes.IndexByte(b.buf.Bytes(), '\n'); i >= 0 {
		b.once.Do(func() { b.line <- string(b.buf.Bytes()[:i]) })
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRE = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/v1`)

// TestSimulateServesUntilCancelled runs `reembed simulate` on a free
// loopback port: go-openai gets vectors with the key, 401 without it, the
// key appears in no output, and cancelling the context stops it cleanly.
func TestSimulateServesUntilCancelled(t *testing.T) {
	const key = "sk-simulate-test-SECRET-42"
	stdout, stderr := newLockedBuffer(), newLockedBuffer()
	var logs bytes.Buffer
	var logMu sync.Mutex
	e := &env{stdout: stdout, stderr: stderr,
		getenv: func(k string) string {
			if k == "SIM_KEY" {
				return key
			}
			return ""
		},
		logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logs.Write(p)
		}), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"simulate", "--addr", "127.0.0.1:0", "--api-key-env", "SIM_KEY", "--rpm", "1000", "--tpm", "100000"}, e)
	}()
	var line string
	select {
	case line = <-stdout.line:
	case code := <-done:
		t.Fatalf("simulate exited with %d before serving: %s", code, stderr.String())
	}
	m := servingRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("stdout %q does not name the URL", line)
	}
	base := "http://" + m[1] + "/v1"

	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = base
	resp, err := openai.NewClientWithConfig(cfg).CreateEmbeddings(t.Context(), openai.EmbeddingRequestStrings{
		Input: []string{"hello", "world"}, Model: openai.SmallEmbedding3, EncodingFormat: openai.EmbeddingEncodingFormatBase64})
	if err != nil {
		t.Fatalf("CreateEmbeddings with the key: %v", err)
	}
	if len(resp.Data) != 2 || len(resp.Data[0].Embedding) != 1536 || resp.Usage.PromptTokens != 2 {
		t.Errorf("got %d vectors of %d, usage %+v", len(resp.Data), len(resp.Data[0].Embedding), resp.Usage)
	}
	cfg = openai.DefaultConfig("sk-wrong")
	cfg.BaseURL = base
	_, err = openai.NewClientWithConfig(cfg).CreateEmbeddings(t.Context(), openai.EmbeddingRequestStrings{Input: []string{"x"}, Model: "m"})
	if apiErr, ok := err.(*openai.APIError); !ok || apiErr.HTTPStatusCode != 401 {
		t.Errorf("wrong key: err = %v, want 401", err)
	}

	hr, err := http.Get(base + "/ledger")
	if err != nil {
		t.Fatal(err)
	}
	var l embedder.Ledger
	if err := json.NewDecoder(hr.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if l.Totals.Billed != 1 || l.Totals.Rejected != 1 {
		t.Errorf("ledger totals %+v, want 1 billed and 1 rejected", l.Totals)
	}

	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit code after cancel = %d, want 0; stderr: %s", code, stderr.String())
	}
	logMu.Lock()
	all := stdout.String() + stderr.String() + logs.String()
	logMu.Unlock()
	if strings.Contains(all, "SECRET") {
		t.Errorf("the key appears in the output:\n%s", all)
	}
	if !strings.Contains(all, "simulator stopped") {
		t.Errorf("no shutdown log line:\n%s", all)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestSimulateRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"simulate", "--fault-5xx", "2"},
		{"simulate", "--rpm", "-1"},
		{"simulate", "--api-key-env", "UNSET_VARIABLE"},
		{"simulate", "--max-inputs", "0"},
		{"simulate", "--nope"},
		{"simulate", "extra"},
	} {
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if code := run(t.Context(), args, e); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr %s", args, code, exitUsage, errOut.String())
		}
	}
}
