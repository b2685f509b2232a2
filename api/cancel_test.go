package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// TestCancelStartsNoRequest cancels a running rebuild whose batches wait on
// the rate limiter (concurrency 4, 120 requests per minute): the simulator's
// ledger shows no request started after the job logged that it stopped, and
// the job's cost_usd is the exact cost of what the ledger billed.
func TestCancelStartsNoRequest(t *testing.T) {
	t.Parallel()
	data, root := t.TempDir(), filepath.Join(t.TempDir(), "corpus")
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		text := strings.Repeat(fmt.Sprintf("Document %d says the rebuild stops when it is told to stop. ", i), 6)
		if err := os.WriteFile(filepath.Join(root, "docs", fmt.Sprintf("d%02d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	factory := func(spec jobs.Spec) (embedder.Embedder, error) {
		lim, err := embedder.NewRateLimited(sim, embedder.RateLimitConfig{RPM: 120, Margin: 0.001})
		if err != nil {
			return nil, err
		}
		return embedder.NewRetrying(lim, embedder.RetryConfig{MaxConcurrency: 4})
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil))
	mgr, err := jobs.Open(jobs.Config{DataDir: data, CorpusRoots: []string{root}, NewEmbedder: factory,
		Logger: logger, DefaultRPM: planner.DefaultRPM, DefaultTPM: planner.DefaultTPM, ProgressInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Shutdown(context.Background()) })
	srv, err := api.New(api.Config{Jobs: mgr, CorpusRoots: mgr.Roots(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	te := &testEnv{srv: srv, jobs: mgr, data: data, root: root, logs: &logs}
	c := loadContract(t)

	job := te.submit(t, c, `{"paths":["docs"],"model":"text-embedding-3-small","dimensions":8,"chunk_tokens":16,"chunk_overlap":0,"batch_size":2,"part_rows":4,"concurrency":4}`, nil)
	for sim.Ledger().Totals.Billed < 2 {
		time.Sleep(2 * time.Millisecond)
	}
	mustStatus(t, c.check(t, te, request{method: http.MethodPost, path: "/v1/rebuilds/" + job.ID + "/cancel"}), http.StatusAccepted)
	var final jobs.Job
	for {
		rec := c.check(t, te, request{method: http.MethodGet, path: "/v1/rebuilds/" + job.ID})
		final = decode[jobs.Job](t, rec)
		if final.State == jobs.Cancelled {
			break
		}
		if final.State != jobs.Running && final.State != jobs.Queued {
			t.Fatalf("job %s after cancel, want cancelled", final.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	logMu.Lock()
	stoppedAt, inFlight := stopLine(t, logs.String())
	logMu.Unlock()
	led := sim.Ledger()
	for _, q := range led.Requests {
		if q.Started.After(stoppedAt) {
			t.Errorf("request %d started %s after the job stopped", q.Seq, q.Started.Sub(stoppedAt))
		}
	}
	if want := pricing.Cost(led.Totals.PromptTokens, 20_000); final.Progress.Cost != want || final.Progress.BilledTokens != led.Totals.PromptTokens {
		t.Errorf("job: cost $%s for %d tokens; the ledger billed %d tokens, $%s", final.Progress.Cost, final.Progress.BilledTokens, led.Totals.PromptTokens, want)
	}
	if int64(led.Totals.Billed) >= final.Progress.PlannedRequests {
		t.Fatalf("the cancel came too late: %d of %d requests billed", led.Totals.Billed, final.Progress.PlannedRequests)
	}
	t.Logf("%d requests billed before the cancel, %d in flight at the stop, none after", led.Totals.Billed, inFlight)
}

// stopLine returns the time and in-flight count of the job's stop log line.
func stopLine(t *testing.T, logs string) (time.Time, int) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			InFlight int       `json:"in_flight"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "rebuild stopping") {
			return line.Time, line.InFlight
		}
	}
	t.Fatalf("no stop line in the log:\n%s", logs)
	return time.Time{}, 0
}
