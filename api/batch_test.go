package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// simEnv is an API whose jobs embed with a simulator, whose Files and
// Batches API is served over HTTP as `reembed serve` serves its own.
type simEnv struct {
	*testEnv
	sim *embedder.Simulator
	tok tokenizer.Tokenizer
}

func newSimEnv(t *testing.T, batch embedder.BatchSimConfig) *simEnv {
	t.Helper()
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Tokenizer: tok, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(func() { hs.Close(); sim.Close() })
	te := &testEnv{data: t.TempDir(), root: writeCorpus(t), logs: &bytes.Buffer{}}
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, te.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mgr, err := jobs.Open(jobs.Config{DataDir: te.data, CorpusRoots: []string{te.root}, Tokenizer: tok, Logger: logger,
		NewEmbedder: func(jobs.Spec) (embedder.Embedder, error) { return sim, nil },
		NewBatchAPI: func(jobs.Spec) (planner.BatchAPI, error) { return &embedder.BatchClient{BaseURL: hs.URL + "/v1"}, nil },
		DefaultRPM:  planner.DefaultRPM, DefaultTPM: planner.DefaultTPM, ProgressInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Shutdown(context.Background()) })
	te.jobs = mgr
	if te.srv, err = api.New(api.Config{Jobs: mgr, CorpusRoots: mgr.Roots(), Tokenizer: tok, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	return &simEnv{testEnv: te, sim: sim, tok: tok}
}

// batchRebuild is a rebuild of docs in mode batch, in several small batches
// polled quickly.
const batchRebuild = `{"paths":["docs"],"mode":"batch","dimensions":8,"chunk_tokens":8,"chunk_overlap":0,"batch_size":2,"part_rows":2,` +
	`"batch_max_requests":2,"batch_poll_min":"10ms","batch_poll_max":"40ms"}`

// TestBatchModeRebuild: a rebuild in mode batch over the API completes
// against the simulator's Batches API; the simulator's ledger billed, at
// the batch price, exactly the tokens the job's own estimate predicted and
// nothing sync; the checkpoint verifies complete; GET /v1/rebuilds/{id}
// shows the batches by state and the requests completed, and /metrics
// counts the batches by state.
func TestBatchModeRebuild(t *testing.T) {
	c := loadContract(t)
	te := newSimEnv(t, embedder.BatchSimConfig{CompletionP50: 30 * time.Millisecond, CompletionP90: 80 * time.Millisecond, Seed: 7})
	job := te.submit(t, c, batchRebuild, nil)
	if job.Spec.Mode != planner.ModeBatch {
		t.Fatalf("mode %q", job.Spec.Mode)
	}
	j, err := te.jobs.Wait(t.Context(), job.ID)
	if err != nil || j.State != jobs.Succeeded {
		t.Fatalf("job %s: %s, %v\n%s", job.ID, j.LastError, err, te.logs.String())
	}
	model := mustModels(t, te.testEnv)[0]
	paths := []string{filepath.Join(te.root, "docs")}
	est, err := planner.Run(t.Context(), te.tok, planner.EstimateRequest{Paths: paths, Models: []pricing.Model{model},
		ChunkTokens: 8, Limits: planner.Limits{BatchSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	predicted := est.Estimates[0]
	l := te.sim.Ledger()
	if l.Batch.PromptTokens != predicted.Tokens || l.Totals.PromptTokens != 0 {
		t.Errorf("billed %d tokens in batches and %d sync, predicted %d (all batch)", l.Batch.PromptTokens, l.Totals.PromptTokens, predicted.Tokens)
	}
	batchCost := pricing.Cost(l.Batch.PromptTokens, *model.BatchPricePer1M)
	if want := pricing.Cost(predicted.Tokens, *model.BatchPricePer1M); batchCost != want {
		t.Errorf("ledger at the batch price $%s, predicted $%s", batchCost, want)
	}
	if j.BilledTokens != predicted.Tokens {
		t.Errorf("job billed %d tokens, predicted %d", j.BilledTokens, predicted.Tokens)
	}
	rep, err := planner.Verify(t.Context(), te.tok, checkpoint.NewDir(filepath.Join(te.data, j.CheckpointDir)),
		planner.RebuildSpec{Paths: paths, Model: model, Dimensions: 8, ChunkTokens: 8})
	if err != nil || !rep.Complete() || rep.Duplicates != 0 {
		t.Errorf("verify: %+v, %v", rep, err)
	}

	rec := c.check(t, te.testEnv, request{method: "GET", path: "/v1/rebuilds/" + job.ID})
	mustStatus(t, rec, 200)
	got := decode[jobs.Job](t, rec).Progress.Batch
	if got == nil {
		t.Fatal("no batch progress in the job")
	}
	if got.Mode != planner.ModeBatch || got.Batches["completed"] != l.Batch.BatchesCreated || l.Batch.BatchesCreated < 2 ||
		got.RequestsCompleted != l.Batch.BilledRequests || got.RequestsFailed != 0 || got.FallbackArmed {
		t.Errorf("batch progress %+v; ledger: %d batches, %d requests", got, l.Batch.BatchesCreated, l.Batch.BilledRequests)
	}
	rec = c.check(t, te.testEnv, request{method: "GET", path: "/metrics"})
	for _, want := range []string{fmt.Sprintf(`reembed_batches{state="completed"} %d`, l.Batch.BatchesCreated), `reembed_batches{state="in_progress"} 0`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	t.Logf("%d batches, %d requests, %d tokens billed at the batch price ($%s); predicted %d tokens", l.Batch.BatchesCreated,
		l.Batch.BilledRequests, l.Batch.PromptTokens, batchCost, predicted.Tokens)
}

// TestAutoModeProgressWhileRunning: a rebuild in mode auto whose RTO leaves
// room for batches shows, while its batches run, the batches by state, the
// next poll, the deadline (start + rto) and the armed fallback, in GET
// /v1/rebuilds/{id} (checked against openapi.yaml) and in /metrics; then it
// completes, every chunk paid once.
func TestAutoModeProgressWhileRunning(t *testing.T) {
	c := loadContract(t)
	te := newSimEnv(t, embedder.BatchSimConfig{CompletionP50: 1500 * time.Millisecond, CompletionP90: 2 * time.Second, Seed: 3})
	before := time.Now()
	job := te.submit(t, c, `{"paths":["docs"],"mode":"auto","rto":"1h","batch_p50":"1s","batch_p90":"2s","dimensions":8,`+
		`"chunk_tokens":8,"chunk_overlap":0,"batch_size":2,"batch_poll_min":"10ms","batch_poll_max":"50ms"}`, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	running, err := te.jobs.WaitUntil(ctx, job.ID, func(j jobs.Job) bool {
		b := j.Progress.Batch
		return !j.State.Active() || b != nil && b.NextPollAt != nil && b.Batches["in_progress"]+b.Batches["validating"] > 0 && b.FallbackArmed
	})
	if err != nil || running.State != jobs.Running {
		t.Fatalf("never saw the batches running: %s %s %+v, %v", running.State, running.LastError, running.Progress.Batch, err)
	}
	rec := c.check(t, te.testEnv, request{method: "GET", path: "/v1/rebuilds/" + job.ID})
	b := decode[jobs.Job](t, rec).Progress.Batch
	if b == nil || b.Mode != planner.ModeAuto || b.Plan == nil || b.Plan.SyncFraction != 0 || b.Deadline == nil || b.Deadline.Before(before.Add(time.Hour)) ||
		b.Deadline.After(time.Now().Add(time.Hour)) || !b.FallbackArmed || b.NextPollAt == nil {
		t.Errorf("progress while running: %+v", b)
	}
	rec = c.check(t, te.testEnv, request{method: "GET", path: "/metrics"})
	if strings.Contains(rec.Body.String(), `reembed_batches{state="in_progress"} 0`) && strings.Contains(rec.Body.String(), `reembed_batches{state="validating"} 0`) {
		t.Errorf("/metrics shows no running batch:\n%s", grepLines(rec.Body.String(), "reembed_batches"))
	}
	j, err := te.jobs.Wait(t.Context(), job.ID)
	if err != nil || j.State != jobs.Succeeded {
		t.Fatalf("job: %s %s, %v", j.State, j.LastError, err)
	}
	l := te.sim.Ledger()
	for h, n := range l.Inputs {
		if n > 1 {
			t.Errorf("input %s billed %d times", h[:12], n)
		}
	}
	if j.BilledTokens != l.Batch.PromptTokens+l.Totals.PromptTokens {
		t.Errorf("job billed %d, ledger %d batch + %d sync", j.BilledTokens, l.Batch.PromptTokens, l.Totals.PromptTokens)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBatchModeCancelResume: a batch job cancelled while its batches run
// turns cancelled; resumed, it re-attaches to the batches it created
// instead of creating new ones, and finishes with every input billed once
// and its budget's spend ledger holding nothing open.
func TestBatchModeCancelResume(t *testing.T) {
	c := loadContract(t)
	te := newSimEnv(t, embedder.BatchSimConfig{CompletionP50: 2 * time.Second, CompletionP90: 2500 * time.Millisecond, Seed: 5})
	job := te.submit(t, c, strings.Replace(batchRebuild, `"mode":"batch"`, `"mode":"batch","budget_usd":5`, 1), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := te.jobs.WaitUntil(ctx, job.ID, func(j jobs.Job) bool {
		return !j.State.Active() || j.Progress.Batch != nil && j.Progress.Batch.Batches["in_progress"]+j.Progress.Batch.Batches["validating"] > 0
	}); err != nil {
		t.Fatal(err)
	}
	rec := c.check(t, te.testEnv, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/cancel"})
	mustStatus(t, rec, 202)
	j, err := te.jobs.Wait(t.Context(), job.ID)
	if err != nil || j.State != jobs.Cancelled {
		t.Fatalf("after cancel: %s %s, %v", j.State, j.LastError, err)
	}
	created := te.sim.Ledger().Batch.BatchesCreated
	rec = c.check(t, te.testEnv, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/resume"})
	mustStatus(t, rec, 202)
	if j, err = te.jobs.Wait(t.Context(), job.ID); err != nil || j.State != jobs.Succeeded {
		t.Fatalf("after resume: %s %s, %v", j.State, j.LastError, err)
	}
	l := te.sim.Ledger()
	tags := map[string]int{}
	for _, b := range l.Batch.Batches {
		tags[b.Metadata["reembed_batch"]]++
	}
	for tag, n := range tags {
		if n > 1 {
			t.Errorf("batch %s created %d times", tag, n)
		}
	}
	for h, n := range l.Inputs {
		if n > 1 {
			t.Errorf("input %s billed %d times", h[:12], n)
		}
	}
	sp, err := checkpoint.OpenSpendLedger(t.Context(), checkpoint.NewDir(filepath.Join(te.data, j.CheckpointDir)), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if s := sp.Prior(); s.OpenPico != 0 || s.AbandonedPico != 0 || s.SettledToken != l.Batch.PromptTokens {
		t.Errorf("spend ledger %+v; provider billed %d tokens", s, l.Batch.PromptTokens)
	}
	t.Logf("%d batches created before the cancel, %d in all; %d tokens billed once", created, l.Batch.BatchesCreated, l.Batch.PromptTokens)
}

// TestBatchModeBudgetOverTheAPI: a batch job whose budget_usd is below its
// predicted batch cost (each batch's reservation rounds up to a
// micro-dollar: three batches need $0.000003) turns budget_exhausted with
// the spend ledger at most the cap; resumed with the same budget it creates
// nothing more; resumed with a higher one it succeeds, every input billed
// once.
func TestBatchModeBudgetOverTheAPI(t *testing.T) {
	c := loadContract(t)
	te := newSimEnv(t, embedder.BatchSimConfig{CompletionP50: 20 * time.Millisecond, CompletionP90: 50 * time.Millisecond, Seed: 9})
	job := te.submit(t, c, strings.Replace(batchRebuild, `"mode":"batch"`, `"mode":"batch","budget_usd":0.000002`, 1), nil)
	j, err := te.jobs.Wait(t.Context(), job.ID)
	if err != nil || j.State != jobs.BudgetExhausted {
		t.Fatalf("job: %s %s, %v", j.State, j.LastError, err)
	}
	spend := func() checkpoint.Spend {
		sp, err := checkpoint.OpenSpendLedger(t.Context(), checkpoint.NewDir(filepath.Join(te.data, j.CheckpointDir)), checkpoint.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		return sp.Prior()
	}
	l1 := te.sim.Ledger()
	if s := spend(); s.CapPico() > 2_000_000 || l1.Batch.BatchesCreated == 0 || l1.Batch.BatchesCreated >= 3 {
		t.Errorf("after the cap: ledger %+v, %d batches created", s, l1.Batch.BatchesCreated)
	}
	rec := c.check(t, te.testEnv, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/resume"})
	mustStatus(t, rec, 202)
	if j, _ = te.jobs.Wait(t.Context(), job.ID); j.State != jobs.BudgetExhausted {
		t.Fatalf("resumed with the same budget: %s %s", j.State, j.LastError)
	}
	if l := te.sim.Ledger(); l.Batch.BatchesCreated != l1.Batch.BatchesCreated || l.Batch.PromptTokens != l1.Batch.PromptTokens {
		t.Errorf("the same budget spent again: %d batches, %d tokens (were %d, %d)", l.Batch.BatchesCreated, l.Batch.PromptTokens,
			l1.Batch.BatchesCreated, l1.Batch.PromptTokens)
	}
	rec = c.check(t, te.testEnv, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/resume", body: `{"budget_usd":1}`})
	mustStatus(t, rec, 202)
	if j, _ = te.jobs.Wait(t.Context(), job.ID); j.State != jobs.Succeeded {
		t.Fatalf("resumed with a higher budget: %s %s", j.State, j.LastError)
	}
	l := te.sim.Ledger()
	for h, n := range l.Inputs {
		if n > 1 {
			t.Errorf("input %s billed %d times", h[:12], n)
		}
	}
	if s := spend(); s.OpenPico != 0 || s.AbandonedPico != 0 || s.SettledToken != l.Batch.PromptTokens {
		t.Errorf("ledger at the end %+v, provider billed %d tokens", s, l.Batch.PromptTokens)
	}
}
