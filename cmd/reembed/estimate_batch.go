package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/reembed/reembed/planner"
)

// registerBatchPlanFlags declares estimate's assumptions for the auto split
// shown with --rto.
func registerBatchPlanFlags(fs *flag.FlagSet, o *planner.AutoOptions, tier *int) {
	fs.DurationVar(&o.P50, "batch-p50", planner.DefaultBatchP50, "with --rto: assumed median batch completion time (OpenRouter observed 7m)")
	fs.DurationVar(&o.P90, "batch-p90", planner.DefaultBatchP90, "with --rto: assumed 90th-percentile batch completion time (observed 1h)")
	fs.IntVar(tier, "batch-tier", 1, "with --rto: usage tier (1-5) whose enqueued-token cap (3M ... 4B) bounds each batch wave")
}

func checkBatchPlanFlags(o *planner.AutoOptions, tier int) error {
	cap, ok := planner.EnqueuedTokensByTier[tier]
	if !ok {
		return usagef("--batch-tier %d: want 1 to 5", tier)
	}
	if o.P50 <= 0 || o.P90 < o.P50 {
		return usagef("--batch-p50 and --batch-p90 must be positive with p90 >= p50")
	}
	o.EnqueuedTokens = cap
	return nil
}

// writeBatchPlan prints the auto split of one model, when there is one.
func writeBatchPlan(w io.Writer, m planner.ModelEstimate) {
	p := m.BatchPlan
	if p == nil {
		return
	}
	d := func(s float64) string { return humanDuration((time.Duration(s) * time.Second).Round(time.Second)) }
	dec := moneyDecimals(p.SyncCost, p.BatchCost, p.TotalCost, p.AllSyncCost)
	fmt.Fprintf(w, "\n%s: rebuild --mode auto: %.1f%% sync (%s, %s) + batch (%s, %s in %s) = %s (all sync %s)",
		m.Model, 100*p.SyncFraction, plural(p.SyncTokens, "token", "tokens"), money(p.SyncCost, dec),
		plural(p.BatchTokens, "token", "tokens"), money(p.BatchCost, dec), plural(int64(p.BatchWaves), "wave", "waves"),
		money(p.TotalCost, dec), money(p.AllSyncCost, dec))
	fmt.Fprintf(w, "\n%s: finish expected %s (batch p50), %s at p90, worst case %s (fallback to sync at %s); meets RTO: %s",
		m.Model, d(p.ExpectedFinishSeconds), d(p.P90FinishSeconds), d(p.WorstFinishSeconds), d(p.FallbackAtSeconds),
		map[bool]string{true: "yes", false: "NO"}[p.MeetsRTO])
	fmt.Fprintf(w, "\n%s: at risk: %s", m.Model, p.AtRisk)
}
