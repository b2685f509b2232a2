package planner

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/pricing"
)

// TestRebuildStopSendsNothingWaiting interrupts a job whose batches queue on
// the rate limiter: OnStopping is called at once with the requests on the
// wire, and the simulator's ledger shows no request started after it.
func TestRebuildStopSendsNothingWaiting(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 12, 21), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 4
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: "text-embedding-3-small", Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	// 120 RPM, one request per half second: the other workers wait on the limiter.
	lim, err := embedder.NewRateLimited(sim, embedder.RateLimitConfig{RPM: 120, Margin: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embedder.NewRetrying(lim, embedder.RetryConfig{MaxConcurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for sim.Ledger().Totals.Billed < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	var mu sync.Mutex
	var stoppedAt time.Time
	calls := 0
	sum, err := rbRun(t, ctx, emb, out, spec, func(rb *Rebuilder) {
		rb.OnStopping = func(cause error, n int) {
			mu.Lock()
			defer mu.Unlock()
			stoppedAt, calls = time.Now(), calls+1
			if n < 0 || n > 1 {
				t.Errorf("OnStopping: %d requests in flight, want 0 or 1 (one request per half second)", n)
			}
			if !errors.Is(cause, context.Canceled) {
				t.Errorf("OnStopping cause = %v", cause)
			}
		}
	})
	if !errors.Is(err, ErrInterrupted) || sum.Outcome != OutcomeInterrupted {
		t.Fatalf("err = %v, outcome %v; want interrupted", err, sum.Outcome)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("OnStopping called %d times, want once", calls)
	}
	led := sim.Ledger()
	for _, q := range led.Requests {
		if q.Started.After(stoppedAt) {
			t.Errorf("request %d started %s after the stop", q.Seq, q.Started.Sub(stoppedAt))
		}
	}
	if got, want := int64(led.Totals.BilledInputs), sum.EmbeddedChunks; got != want {
		t.Errorf("billed %d inputs, embedded %d", got, want)
	}
	if rows := rbAllRows(t, out); int64(len(rows)) != sum.EmbeddedChunks {
		t.Errorf("%d rows committed, %d embedded", len(rows), sum.EmbeddedChunks)
	}
}

// TestRebuildBudgetIsOneCapOverRuns: running again with the same budget does
// not spend it again; raising it resumes, as the message says.
func TestRebuildBudgetIsOneCapOverRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root, out := rbCorpus(t, 20, 3), t.TempDir()
	spec := rbSpec(t, root)
	sim := rbSimulator(t)
	est, err := Run(ctx, rbTokenizer(t), spec.estimateRequest())
	if err != nil {
		t.Fatal(err)
	}
	full := est.Estimates[0].CostUSD
	spec.Budget = full / 3
	if _, err := rbRun(t, ctx, sim, out, spec); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("first run: %v, want ErrBudgetExceeded", err)
	}
	sum, err := rbRun(t, ctx, sim, out, spec)
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("second run with the same budget: %v, want ErrBudgetExceeded", err)
	}
	if sum.CheckpointCost > spec.Budget || sum.CheckpointCost == 0 {
		t.Errorf("checkpoint cost $%s, budget $%s", sum.CheckpointCost, spec.Budget)
	}
	var billed pricing.Micros
	for _, q := range sim.Ledger().Requests {
		billed += pricing.CostCeil(int64(q.BilledTokens), spec.Model.PricePer1M)
	}
	// Per run, the old cap let each run spend the whole budget again.
	if billed > spec.Budget {
		t.Errorf("billed $%s (rounded up per request) over two runs, budget $%s", billed, spec.Budget)
	}
	// The message names what to raise and the spend to raise it above.
	if msg := cliText(err); !strings.Contains(msg, "raise --budget-usd") || !strings.Contains(msg, "$"+sum.CheckpointCost.String()) && !strings.Contains(msg, "above $") {
		t.Errorf("message %q", msg)
	}
	spec.Budget = full * 2
	if _, err := rbRun(t, ctx, sim, out, spec); err != nil {
		t.Fatalf("raised budget: %v", err)
	}
	if n := rbBilledTwice(sim.Ledger()); n != 0 {
		t.Errorf("%d chunks billed twice", n)
	}
}

// TestRebuildSettlesAgainstMisbehavingUsage: a provider that omits usage,
// reports 0, a negative number, 2^62, or less than our count is settled at
// our exact count; one that reports a sane larger number at its number.
// Both counts are reported, and a $0.001-class budget still stops the job.
func TestRebuildSettlesAgainstMisbehavingUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		usage func(ours int) (prompt, total int)
		more  bool // the provider's sane count is larger than ours
	}{
		{"Missing", func(int) (int, int) { return 0, 0 }, false},
		{"Negative", func(int) (int, int) { return -5, -5 }, false},
		{"Absurd", func(int) (int, int) { return 1 << 62, 1 << 62 }, false},
		{"Less", func(n int) (int, int) { return n / 2, n / 2 }, false},
		{"MoreButSane", func(n int) (int, int) { return n + 3, n + 3 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, out := rbCorpus(t, 6, 31), t.TempDir()
			spec := rbSpec(t, root)
			spec.Limits.Concurrency = 1
			fake := &embeddertest.Fake{Func: func(_ context.Context, _ int, req *embedder.Request) (*embedder.Result, error) {
				res := embeddertest.Vectors(req, "text-embedding-3-small", 8)
				ours := 0
				for _, in := range req.Inputs {
					ours += in.Tokens
				}
				res.Usage.PromptTokens, res.Usage.TotalTokens = tc.usage(ours)
				return res, nil
			}}
			sum, err := rbRun(t, t.Context(), fake, out, spec)
			if err != nil {
				t.Fatal(err)
			}
			if sum.CountedTokens != sum.PlannedTokens {
				t.Errorf("counted %d tokens, planned %d", sum.CountedTokens, sum.PlannedTokens)
			}
			want := sum.CountedTokens
			if tc.more {
				want += 3 * sum.Requests
			}
			if sum.BilledTokens != want || sum.UsageMismatches != sum.Requests {
				t.Errorf("billed %d tokens (want %d), %d mismatches in %d requests", sum.BilledTokens, want, sum.UsageMismatches, sum.Requests)
			}
			if sum.Cost != pricing.Cost(want, spec.Model.PricePer1M) || sum.Cost <= 0 || sum.Cost > pricing.Micros(math.MaxInt32) {
				t.Errorf("cost $%s, want the exact cost of %d tokens", sum.Cost, want)
			}

			// With a budget of a third, the job stops: usage cannot defeat the cap.
			out2 := t.TempDir()
			spec.Budget = max(sum.Cost/3, 1)
			before := fake.Calls()
			s2, err := rbRun(t, t.Context(), fake, out2, spec)
			if !errors.Is(err, ErrBudgetExceeded) {
				t.Fatalf("with budget $%s: %v", spec.Budget, err)
			}
			if s2.Cost > spec.Budget || fake.Calls()-before >= int(sum.Requests) {
				t.Errorf("spent $%s in %d requests under a $%s budget", s2.Cost, fake.Calls()-before, spec.Budget)
			}
		})
	}
}

// TestRebuildExactCost: the run's cost is the exact cost of the billed
// tokens, equal to the estimate's and to the provider's ledger priced once,
// not a sum of per-request round-ups.
func TestRebuildExactCost(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 30, 41), t.TempDir()
	spec := rbSpec(t, root)
	spec.Model.PricePer1M = 20_000 // $0.02 per 1M: every request costs a fraction of a micro-dollar
	sim := rbSimulator(t)
	sum, err := rbRun(t, t.Context(), sim, out, spec)
	if err != nil {
		t.Fatal(err)
	}
	led := sim.Ledger()
	ledgerCost := pricing.Cost(led.Totals.PromptTokens, spec.Model.PricePer1M)
	var perRequest pricing.Micros
	for _, q := range led.Requests {
		perRequest += pricing.CostCeil(int64(q.BilledTokens), spec.Model.PricePer1M)
	}
	if sum.Cost != ledgerCost || sum.Cost != sum.Estimate.CostUSD || sum.Cost != sum.CheckpointCost {
		t.Errorf("cost $%s, ledger $%s, estimate $%s, checkpoint $%s: want all equal", sum.Cost, ledgerCost, sum.Estimate.CostUSD, sum.CheckpointCost)
	}
	if perRequest <= sum.Cost {
		t.Logf("per-request round-ups ($%s) do not exceed the exact cost here", perRequest)
	}
	// The ledger in the checkpoint holds the same.
	l, err := checkpoint.OpenSpendLedger(t.Context(), checkpoint.NewDir(out), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Prior(); p.SettledToken != led.Totals.PromptTokens || p.OpenPico != 0 || p.AbandonedPico != 0 {
		t.Errorf("spend ledger %+v, provider billed %d tokens", p, led.Totals.PromptTokens)
	}
}
