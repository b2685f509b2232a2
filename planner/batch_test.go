package planner

import (
	"net/http/httptest"
	"sync/atomic"
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
	e := newBatchEnv(t, embedder.BatchSimConfig{FailRate: 0.7, Seed: 3})
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
	// The simulator's clock moves 50ms per look, whatever the machine's
	// load: a batch takes 20 looks, so several are enqueued at once.
	var looks atomic.Int64
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Duration(looks.Add(1)) * 50 * time.Millisecond) }
	e := newBatchEnv(t, embedder.BatchSimConfig{MaxEnqueuedTokens: 2500, CompletionP50: time.Second, CompletionP90: time.Second, Now: clock})
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

// TestPlanBatchSplit: an RTO at least the batch window sends everything
// batch for at most 55% of all-sync; an RTO shorter than the batch p90 sends
// everything sync; in between, the sync slice is the smallest that leaves
// the batch slice its p90 before the fallback time, and the worst case
// (fallback) still meets the RTO.
func TestPlanBatchSplit(t *testing.T) {
	t.Parallel()
	m := rbModel(t, "text-embedding-3-small")
	bp := *m.BatchPricePer1M
	me := ModelEstimate{Tokens: 100_000_000, DurationSeconds: 4 * 3600, PricePer1M: m.PricePer1M, BatchPricePer1M: &bp,
		CostUSD: pricing.CostCeil(100_000_000, m.PricePer1M)}
	o := AutoOptions{P50: 7 * time.Minute, P90: time.Hour, EnqueuedTokens: 500_000_000}
	o.RTO = 24 * time.Hour
	p := PlanBatchSplit(me, o)
	if p.SyncFraction != 0 || p.TotalCost*100 > p.AllSyncCost*55 || !p.MeetsRTO {
		t.Errorf("RTO 24h: %+v, want all batch at <= 55%%", p)
	}
	slow := o
	slow.RTO, slow.P90 = 4*time.Hour+30*time.Minute, 5*time.Hour
	if p := PlanBatchSplit(me, slow); p.SyncFraction != 1 || p.TotalCost != p.AllSyncCost || !p.MeetsRTO {
		t.Errorf("RTO 4h30 with batch p90 5h: %+v, want all sync", p)
	}
	o.RTO = 30 * time.Minute // sync needs 4h: the batch p90 (1h) is the fastest, no fallback
	if p := PlanBatchSplit(me, o); p.SyncFraction != 0 || p.MeetsRTO || p.FallbackAtSeconds != 0 {
		t.Errorf("RTO 30m: %+v, want all batch, RTO missed, no fallback", p)
	}
	o.RTO = 4*time.Hour + 30*time.Minute
	p = PlanBatchSplit(me, o)
	if p.SyncFraction <= 0 || p.SyncFraction >= 1 || p.WorstFinishSeconds > o.RTO.Seconds() || p.P90FinishSeconds > p.FallbackAtSeconds+1 {
		t.Errorf("RTO 4h30: %+v", p)
	}
	if p.TotalCost >= p.AllSyncCost || p.SyncCost+p.BatchCost != p.TotalCost {
		t.Errorf("RTO 4h30 costs: %+v", p)
	}
	// One percent less sync would leave the batch slice less than its p90.
	if f := p.SyncFraction - 0.01; f > 0 {
		fallback := o.RTO.Seconds() - (1-f)*me.DurationSeconds
		if fallback >= o.P90.Seconds() {
			t.Errorf("sync fraction %v is not the smallest: %v leaves %vs before the fallback", p.SyncFraction, f, fallback)
		}
	}
}

// TestRunAuto: with an RTO past the window, auto embeds through batches
// only; with an RTO that needs some sync, both paths run; each chunk once.
func TestRunAuto(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, embedder.BatchSimConfig{})
	root, out := rbCorpus(t, 20, 11), t.TempDir()
	spec := rbSpec(t, root)
	sum, err := RunAuto(t.Context(), e.runner(t, out, BatchOptions{}), spec, AutoOptions{RTO: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, e, out, spec)
	l := e.sim.Ledger()
	if sum.Batch.Plan == nil || sum.Batch.Plan.SyncFraction != 0 || l.Totals.PromptTokens != 0 || l.Batch.PromptTokens == 0 {
		t.Errorf("RTO 48h: plan %+v, sync %d tokens", sum.Batch.Plan, l.Totals.PromptTokens)
	}
}
