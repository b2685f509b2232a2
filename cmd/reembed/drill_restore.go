package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
)

// drillRestoreFlags are drill's flags for the restore step (--restore-to).
type drillRestoreFlags struct {
	est      restoreEstimateFlags // --restore-to, --restore-index, --calibrate, --calibrate-rows
	table    string
	ownTable bool // the table is the drill's own (a random name): dropped after the drill
}

func (f *drillRestoreFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.est.to, "restore-to", "", "also restore the checkpoint into this PostgreSQL with pgvector (postgres://USER@HOST/DB), verify the table, and compare predicted against actual embed, load, index and verify seconds")
	fs.StringVar(&f.est.index, "restore-index", "hnsw", "--restore-to: index the restore builds: hnsw, ivfflat or none")
	fs.BoolVar(&f.est.calibrate, "calibrate", false, "--restore-to: calibrate the load and index prediction on the server first, as estimate --calibrate")
	fs.StringVar(&f.est.sizes, "calibrate-rows", "500,1000,2000", "--calibrate: sample sizes, comma-separated")
	fs.StringVar(&f.table, "restore-table", "", "--restore-to: table to restore into (default: reembed_drill_ and a random suffix, dropped after the drill unless --keep; a table you name is kept)")
}

// check validates the flags, before anything runs.
func (f *drillRestoreFlags) check(mode string) error {
	if f.est.to == "" {
		if f.est.calibrate {
			return usagef("--calibrate needs --restore-to DSN")
		}
		return nil
	}
	if mode != planner.ModeSync {
		return usagef("--restore-to: the drill restores with --mode sync only, not %s", mode)
	}
	if to := f.est.to; !strings.HasPrefix(to, "postgres://") && !strings.HasPrefix(to, "postgresql://") && !strings.Contains(to, "=") {
		return usagef("--restore-to %s: want a postgres:// URL or a key=value DSN", pgvector.Redact(to))
	}
	if i := f.est.index; i != "hnsw" && i != "ivfflat" && i != "none" {
		return usagef("--restore-index %q: want hnsw, ivfflat or none", i)
	}
	if f.table == "" {
		b := make([]byte, 4)
		rand.Read(b)
		f.table, f.ownTable = "reembed_drill_"+hex.EncodeToString(b), true
	}
	return nil
}

// target connects to the server (so that a bad DSN fails before the
// rebuild) and returns the estimate's restore target, calibrated with
// --calibrate; nil without --restore-to.
func (f *drillRestoreFlags) target(ctx context.Context, e *env, dims int) (*planner.RestoreTarget, error) {
	if f.est.to == "" {
		return nil, nil
	}
	s, err := pgvector.Open(ctx, pgvector.Config{DSN: f.est.to, Table: f.table})
	if err != nil {
		return nil, fmt.Errorf("--restore-to: %w", err)
	}
	s.Close(context.Background())
	return f.est.target(ctx, e, dims)
}

// drillTerm is one term of the restore's duration, predicted against actual.
type drillTerm struct {
	Term             string  `json:"term"`
	PredictedSeconds float64 `json:"predicted_seconds"`
	ActualSeconds    float64 `json:"actual_seconds"`
	// ErrorPercent is (predicted − actual) / actual × 100; 0 when actual is 0.
	ErrorPercent float64 `json:"error_percent"`
}

// drillRestoreResult is the restore step of `drill --restore-to`.
type drillRestoreResult struct {
	Table      string `json:"table"`
	Index      string `json:"index"`
	Rows       int64  `json:"rows"`
	Calibrated bool   `json:"calibrated"`
	Basis      string `json:"basis"`
	// Terms are embed, load, index, verify and their total.
	Terms  []drillTerm         `json:"terms"`
	Verify *store.VerifyReport `json:"verify,omitempty"`
	// Error is why the restore or verify --store failed, if it did.
	Error string `json:"error,omitempty"`
}

// restoreStep restores the checkpoint into --restore-to, verifies the table,
// and records predicted against actual for each term. A failed restore is a
// problem of the drill, not an error: the report still prints.
func (d *syncDrill) restoreStep(ctx context.Context) error {
	rf := &d.f.restore
	if rf.est.to == "" {
		return nil
	}
	if rf.ownTable && !d.f.keep {
		defer dropDrillTable(d.e, rf.est.to, rf.table)
	}
	pred := d.pred.Restore
	res := &drillRestoreResult{Table: rf.table, Index: pred.Index, Calibrated: pred.Calibrated, Basis: pred.Basis}
	d.restore = res
	fmt.Fprintf(d.stdout, "Restoring the checkpoint into %s, table %s (%s index)\n", pgvector.Redact(rf.est.to), rf.table, pred.Index)
	fr := restoreFlags{checkpoint: d.out, to: rf.est.to, table: rf.table, metric: "cosine"}
	iopts := store.IndexOptions{Kind: rf.est.index, M: 16, EfConstruction: 64, ParallelWorkers: -1, MaxIndexMemory: pgvector.IndexOptionsFit().MaxIndexMemory}
	rep, _, err := fr.restore(ctx, d.e, pgvector.ModeAuto, iopts, nil)
	if err != nil {
		res.Error = scrubSecret(fmt.Errorf("restore: %w", err), pgvector.Password(rf.est.to)).Error()
		return nil
	}
	res.Rows = rep.Rows
	queries := 20
	if rf.est.index == "none" {
		queries = -1
	}
	start := time.Now()
	vr, err := verifyStore(ctx, d.e, d.out, rf.est.to, rf.table, "cosine", store.VerifyOptions{Sample: 100, IndexQueries: queries})
	verifySecs := time.Since(start).Seconds()
	if err != nil {
		res.Error = scrubSecret(fmt.Errorf("verify --store: %w", err), pgvector.Password(rf.est.to)).Error()
		return nil
	}
	res.Verify = &vr
	embed := d.actualDur.Seconds()
	res.Terms = []drillTerm{
		newDrillTerm("embed", pred.EmbedSeconds, embed),
		newDrillTerm("load", pred.LoadSeconds, rep.LoadSeconds),
		newDrillTerm("index", pred.IndexSeconds, rep.IndexSeconds),
		newDrillTerm("verify", pred.VerifySeconds, verifySecs),
		newDrillTerm("total", pred.EmbedSeconds+pred.Seconds(), embed+rep.LoadSeconds+rep.IndexSeconds+rep.PublishSeconds+verifySecs),
	}
	return nil
}

func newDrillTerm(term string, predicted, actual float64) drillTerm {
	t := drillTerm{Term: term, PredictedSeconds: predicted, ActualSeconds: actual}
	if actual > 0 {
		t.ErrorPercent = (predicted - actual) / actual * 100
	}
	return t
}

// restoreProblems lists what the restore step found wrong.
func (d *syncDrill) restoreProblems() []string {
	r := d.restore
	switch {
	case r == nil:
		return nil
	case r.Error != "":
		return []string{r.Error}
	}
	var out []string
	if v := r.Verify; !v.Complete() {
		out = append(out, fmt.Sprintf("restore: table %s differs from the checkpoint: %d missing, %d extra, %d stale, %d of %d sampled vectors differ",
			r.Table, v.Missing, v.Extra, v.Stale, v.VectorsDiffering, v.VectorsSampled))
	}
	if v := r.Verify; v.IndexQueries > 0 && v.RecallAt1 < 0.9 {
		out = append(out, fmt.Sprintf("restore: index recall@1 %.2f below 0.90", v.RecallAt1))
	}
	return out
}

// printRestore prints the restore's terms, predicted against actual.
func (d *syncDrill) printRestore(w io.Writer) {
	r := d.restore
	if r == nil {
		return
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nRestore into %s FAILED: %s\n", r.Table, r.Error)
		return
	}
	fmt.Fprintf(w, "\nRestore into %s: %d rows, %s index (%s)\n", r.Table, r.Rows, r.Index, r.Basis)
	fmt.Fprintf(w, "%-10s %14s %14s %9s\n", "", "predicted", "actual", "error")
	for _, t := range r.Terms {
		fmt.Fprintf(w, "%-10s %13.2fs %13.2fs %+8.0f%%\n", t.Term, t.PredictedSeconds, t.ActualSeconds, t.ErrorPercent)
	}
	v := r.Verify
	fmt.Fprintf(w, "Verify --store: %d of %d keys present, %d missing, %d extra, %d stale; %d vectors sampled, %d differ",
		v.Present, v.Expected, v.Missing, v.Extra, v.Stale, v.VectorsSampled, v.VectorsDiffering)
	if v.IndexQueries > 0 {
		fmt.Fprintf(w, "; recall@1 %.2f over %d queries (p50 %.1f ms, p99 %.1f ms)", v.RecallAt1, v.IndexQueries, v.LatencyP50, v.LatencyP99)
	}
	fmt.Fprintln(w)
}

// dropDrillTable drops the drill's own table (and an unfinished swap
// table) and their ledger entries.
func dropDrillTable(e *env, dsn, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		e.logger.Warn("dropping the drill table: cannot connect", "table", table)
		return
	}
	defer c.Close(ctx)
	names := []string{pgx.Identifier{table}.Sanitize(), pgx.Identifier{table + "_reembed_load"}.Sanitize()}
	for _, n := range names {
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+n); err != nil {
			e.logger.Warn("dropping the drill table", "table", n, "err", scrubSecret(err, pgvector.Password(dsn)))
		}
	}
	var ledger *string
	if err := c.QueryRow(ctx, "SELECT to_regclass($1)::text", pgvector.LedgerTable).Scan(&ledger); err == nil && ledger != nil {
		if _, err := c.Exec(ctx, "DELETE FROM "+pgx.Identifier{pgvector.LedgerTable}.Sanitize()+" WHERE target = ANY($1)", names); err != nil {
			e.logger.Warn("clearing the drill table's ledger entries", "err", scrubSecret(err, pgvector.Password(dsn)))
		}
	}
}
