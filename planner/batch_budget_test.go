package planner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// expensiveSpec is rbSpec at $1,000 per million tokens in batches (a tenth
// of a cent per token), so that a budget of a few cents cuts a small corpus.
func expensiveSpec(t *testing.T, root string) RebuildSpec {
	spec := rbSpec(t, root)
	batch := pricing.Micros(1_000_000_000)
	spec.Model.PricePer1M, spec.Model.BatchPricePer1M = 2*batch, &batch
	return spec
}

func spendOf(t *testing.T, out string) checkpoint.Spend {
	t.Helper()
	l, err := checkpoint.OpenSpendLedger(t.Context(), checkpoint.NewDir(out), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Prior()
}

// TestBatchBudgetIsOneCap: a batch rebuild whose budget is below its
// predicted batch cost creates batches only while their predicted cost,
// reserved in the checkpoint's spend ledger before each is created, fits:
// it stops with ErrBudgetExceeded (the CLI's exit 3) having spent no more
// than the cap; a second run with the same budget creates no batch and
// bills nothing; a run with the budget raised finishes, every chunk once,
// and the ledger's settled spend is exactly the batch price of the tokens
// billed.
func TestBatchBudgetIsOneCap(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{})
	root, out := rbCorpus(t, 30, 11), t.TempDir()
	spec := expensiveSpec(t, root)
	price := *spec.Model.BatchPricePer1M
	est, err := Run(t.Context(), rbTokenizer(t), spec.estimateRequest())
	if err != nil {
		t.Fatal(err)
	}
	total := est.Estimates[0].Tokens
	spec.Budget = pricing.Cost(total/2, price)
	opts := BatchOptions{MaxRequests: 2, EnqueuedTokens: 1500}

	sum, err := e.runner(t, out, opts).Run(t.Context(), spec)
	if !errors.Is(err, ErrBudgetExceeded) || sum == nil || sum.Outcome != OutcomeBudgetExceeded || sum.Stopped != "budget" {
		t.Fatalf("run 1: %v, %+v", err, sum)
	}
	l1 := e.sim.Ledger()
	spent := pricing.Cost(l1.Batch.PromptTokens, price)
	if spent > spec.Budget || l1.Batch.PromptTokens == 0 || l1.Batch.PromptTokens >= total {
		t.Errorf("run 1 billed %d of %d tokens, $%s against a $%s budget", l1.Batch.PromptTokens, total, spent, spec.Budget)
	}
	if s := spendOf(t, out); s.CapPico() > checkpoint.PicoCost(int64(spec.Budget), 1_000_000) || s.SettledToken != l1.Batch.PromptTokens {
		t.Errorf("ledger after run 1: %+v (budget $%s, billed %d tokens)", s, spec.Budget, l1.Batch.PromptTokens)
	}

	_, err = e.runner(t, out, opts).Run(t.Context(), spec)
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("run 2: %v", err)
	}
	if l2 := e.sim.Ledger(); l2.Batch.BatchesCreated != l1.Batch.BatchesCreated || l2.Batch.PromptTokens != l1.Batch.PromptTokens {
		t.Errorf("run 2 with the same budget spent again: %d batches, %d tokens (were %d, %d)", l2.Batch.BatchesCreated,
			l2.Batch.PromptTokens, l1.Batch.BatchesCreated, l1.Batch.PromptTokens)
	}

	budget := spec.Budget
	spec.Budget = 0
	if _, err := e.runner(t, out, opts).Run(t.Context(), spec); err != nil {
		t.Fatalf("run 3 without a budget: %v", err)
	}
	checkOnce(t, e, out, spec)
	l3 := e.sim.Ledger()
	s := spendOf(t, out)
	if l3.Batch.PromptTokens != total || s.SettledToken != total || s.AbandonedPico != 0 || s.OpenPico != 0 ||
		s.SettledPico != checkpoint.PicoCost(total, int64(price)) {
		t.Errorf("after the last run: billed %d tokens of %d; ledger %+v", l3.Batch.PromptTokens, total, s)
	}
	t.Logf("budget $%s: run 1 billed %d of %d tokens ($%s) in %d batches; run 2 billed nothing", budget, l1.Batch.PromptTokens,
		total, spent, l1.Batch.BatchesCreated)
}

// TestBatchReservationAdoptedAfterKill: a batch rebuild interrupted right
// after its batches are created (their reservations open, as a SIGKILL
// leaves them) re-attaches on the next run, which adopts each journaled
// reservation instead of reserving it again: once every batch is ingested
// nothing is left open or abandoned, and the settled spend is exactly the
// batch price of the tokens billed.
func TestBatchReservationAdoptedAfterKill(t *testing.T) {
	t.Parallel()
	var created atomic.Int32
	var cancel atomic.Pointer[context.CancelFunc]
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: "text-embedding-3-small", Batch: embedder.BatchSimConfig{
		CompletionP50: 300 * time.Millisecond, CompletionP90: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sim.ServeHTTP(w, r)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/batches" && created.Add(1) == 2 {
			if c := cancel.Load(); c != nil {
				(*c)()
			}
		}
	}))
	t.Cleanup(func() { srv.Close(); sim.Close() })
	e := &batchEnv{sim: sim, api: &embedder.BatchClient{BaseURL: srv.URL + "/v1"}}
	root, out := rbCorpus(t, 20, 5), t.TempDir()
	spec := expensiveSpec(t, root)
	spec.Budget = pricing.Micros(1_000_000_000) // far above the cost: the cap holds, it does not bite
	opts := BatchOptions{MaxRequests: 2, EnqueuedTokens: 100_000}

	ctx, stop := context.WithCancel(t.Context())
	cancel.Store(&stop)
	if _, err := e.runner(t, out, opts).Run(ctx, spec); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run 1: %v, want interrupted", err)
	}
	cancel.Store(nil)
	if s := spendOf(t, out); s.AbandonedPico == 0 {
		t.Fatalf("run 1 left no reservation open: %+v", s)
	}
	if _, err := e.runner(t, out, opts).Run(t.Context(), spec); err != nil {
		t.Fatalf("run 2: %v", err)
	}
	checkOnce(t, e, out, spec)
	l := e.sim.Ledger()
	s := spendOf(t, out)
	if s.AbandonedPico != 0 || s.OpenPico != 0 || s.SettledToken != l.Batch.PromptTokens ||
		s.SettledPico != checkpoint.PicoCost(l.Batch.PromptTokens, int64(*spec.Model.BatchPricePer1M)) {
		t.Errorf("ledger %+v after re-attaching; provider billed %d tokens in %d batches", s, l.Batch.PromptTokens, l.Batch.BatchesCreated)
	}
}
