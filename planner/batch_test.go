package planner

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// batchEnv is a simulator served over loopback and a batch runner on it,
// with the same simulator (in process, same ledger) as the sync embedder.
type batchEnv struct {
	sim *embedder.Simulator
	api *embedder.BatchClient
}

func newBatchEnv(t *testing.T, cfg embedder.BatchSimConfig) *batchEnv {
	t.Helper()
	if cfg.CompletionP50 == 0 {
		cfg.CompletionP50, cfg.CompletionP90 = 20*time.Millisecond, 60*time.Millisecond
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: "text-embedding-3-small", Batch: cfg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	return &batchEnv{sim: sim, api: &embedder.BatchClient{BaseURL: srv.URL + "/v1"}}
}

func (e *batchEnv) runner(t *testing.T, out string, o BatchOptions) *BatchRunner {
	if o.PollMin == 0 {
		o.PollMin, o.PollMax = 10*time.Millisecond, 50*time.Millisecond
	}
	return &BatchRunner{Rebuilder: &Rebuilder{Embedder: e.sim, Tokenizer: rbTokenizer(t), Store: checkpoint.NewDir(out),
		ProgressInterval: 1 << 40}, API: e.api, Opts: o}
}

// checkOnce asserts every chunk of spec is checkpointed exactly once with
// the simulator's vector, and no input was billed twice on any path.
func checkOnce(t *testing.T, e *batchEnv, out string, spec RebuildSpec) {
	t.Helper()
	if rep := rbVerify(t, out, spec); !rep.Complete() {
		t.Fatalf("verify: %+v", rep)
	}
	rows := rbAllRows(t, out)
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Key().String()] {
			t.Errorf("chunk %s committed twice", r.Key())
		}
		seen[r.Key().String()] = true
		if !sameF32(r.Embedding, embedder.SimulatedVector("text-embedding-3-small", 8, r.Text)) {
			t.Errorf("chunk %s: not the provider's vector", r.Key())
		}
	}
	l := e.sim.Ledger()
	if n := rbBilledTwice(l); n != 0 {
		t.Errorf("%d inputs billed more than once", n)
	}
	tags := map[string]int{}
	for _, b := range l.Batch.Batches {
		tags[b.Metadata["reembed_batch"]]++
	}
	for tag, n := range tags {
		if n > 1 {
			t.Errorf("batch %s created %d times", tag, n)
		}
	}
}

func sameF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBatchRebuildEndToEnd: several batches in several waves (a small
// enqueued-token cap), every chunk once, predicted tokens and batch cost
// equal to the simulator's ledger and the batches' usage, nothing sync; a
// second run creates no batch.
func TestBatchRebuildEndToEnd(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{})
	root, out := rbCorpus(t, 30, 7), t.TempDir()
	spec := rbSpec(t, root)
	sum, err := e.runner(t, out, BatchOptions{MaxRequests: 4, EnqueuedTokens: 3000}).Run(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	l := e.sim.Ledger()
	if l.Totals.PromptTokens != 0 {
		t.Errorf("sync billed %d tokens in batch mode", l.Totals.PromptTokens)
	}
	if sum.PlannedTokens != l.Batch.PromptTokens || sum.BilledTokens != l.Batch.PromptTokens {
		t.Errorf("predicted %d, summary billed %d, ledger %d tokens", sum.PlannedTokens, sum.BilledTokens, l.Batch.PromptTokens)
	}
	want := pricing.CostCeil(l.Batch.PromptTokens, *spec.Model.BatchPricePer1M)
	if sum.Cost != want || sum.PlannedCost != want {
		t.Errorf("cost %s, planned %s, ledger at batch price %s", sum.Cost, sum.PlannedCost, want)
	}
	if sum.Batch == nil || sum.Batch.Waves < 2 || l.Batch.BatchesCreated < 3 {
		t.Errorf("want several waves and batches: %+v, %d created", sum.Batch, l.Batch.BatchesCreated)
	}
	created := l.Batch.BatchesCreated
	sum2, err := e.runner(t, out, BatchOptions{}).Run(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if l2 := e.sim.Ledger(); l2.Batch.BatchesCreated != created || sum2.EmbeddedChunks != 0 {
		t.Errorf("second run created %d batches, embedded %d", l2.Batch.BatchesCreated-created, sum2.EmbeddedChunks)
	}
}

// TestBatchRebuildFailuresRetryThenSync: failed requests go to the next wave,
// and chunks two batches could not embed go to sync; each chunk paid once.
func TestBatchRebuildFailuresRetryThenSync(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{FailRate: 0.4, Seed: 3})
	root, out := rbCorpus(t, 20, 8), t.TempDir()
	spec := rbSpec(t, root)
	sum, err := e.runner(t, out, BatchOptions{MaxRequests: 3}).Run(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	l := e.sim.Ledger()
	if sum.Batch.RequestsFailed == 0 || l.Totals.PromptTokens == 0 || sum.Batch.SyncTokens != l.Totals.PromptTokens {
		t.Errorf("want failures and a sync finish: %+v, sync ledger %d", sum.Batch, l.Totals.PromptTokens)
	}
	if sum.BilledTokens != l.Totals.PromptTokens+l.Batch.PromptTokens {
		t.Errorf("summary billed %d, ledger %d", sum.BilledTokens, l.Totals.PromptTokens+l.Batch.PromptTokens)
	}
}

// TestBatchRebuildTokenLimitShrinksWave: the provider's enqueued-token cap
// is below the runner's; token_limit_exceeded shrinks the wave and the job
// completes.
func TestBatchRebuildTokenLimitShrinksWave(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{MaxEnqueuedTokens: 2500, CompletionP50: 200 * time.Millisecond, CompletionP90: 300 * time.Millisecond})
	root, out := rbCorpus(t, 20, 9), t.TempDir()
	spec := rbSpec(t, root)
	sum, err := e.runner(t, out, BatchOptions{MaxRequests: 2, EnqueuedTokens: 1 << 30}).Run(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	failed := 0
	for _, b := range e.sim.Ledger().Batch.Batches {
		if b.Status == embedder.BatchFailed {
			failed++
		}
	}
	if failed == 0 || sum.Batch.EnqueuedTokenCap > 2500 || e.sim.Ledger().Totals.PromptTokens != 0 {
		t.Errorf("want refused batches, a shrunk cap and no sync: %d failed, cap %d", failed, sum.Batch.EnqueuedTokenCap)
	}
}

// TestBatchRebuildDeadlineFallback: batches that cannot finish before the
// deadline are cancelled and the rest is embedded sync; each chunk once.
func TestBatchRebuildDeadlineFallback(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{CompletionP50: time.Hour, CompletionP90: time.Hour})
	root, out := rbCorpus(t, 10, 10), t.TempDir()
	spec := rbSpec(t, root)
	sum, err := e.runner(t, out, BatchOptions{Deadline: time.Now().Add(300 * time.Millisecond), SyncTokensPerSec: 1e9}).Run(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	l := e.sim.Ledger()
	for _, b := range l.Batch.Batches {
		if b.Status != embedder.BatchCancelled {
			t.Errorf("batch %s is %s, want cancelled", b.ID, b.Status)
		}
	}
	if !sum.Batch.FellBack || l.Totals.PromptTokens == 0 {
		t.Errorf("want a fallback to sync: %+v", sum.Batch)
	}
}
