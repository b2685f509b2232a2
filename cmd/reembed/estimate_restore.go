package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/store/pgvector"
)

// restoreEstimateFlags are estimate's flags for the restore terms.
type restoreEstimateFlags struct {
	store      string
	to         string
	index      string
	dimensions int
	workers    int
	calibrate  bool
	sizes      string
}

func (f *restoreEstimateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.store, "restore", "", "count the restore into this store (pgvector) in the duration and the RTO verdict: load + index + verify")
	fs.StringVar(&f.to, "restore-to", "", "the restore target, postgres://USER@HOST/DB (implies --restore pgvector; needed by --calibrate)")
	fs.StringVar(&f.index, "restore-index", "hnsw", "index the restore builds: hnsw, ivfflat or none")
	fs.IntVar(&f.dimensions, "restore-dimensions", 0, "vector dimensions (default: the model's)")
	fs.IntVar(&f.workers, "restore-workers", 0, "max_parallel_maintenance_workers of the build, for the recommendations (default: the server's, 2)")
	fs.BoolVar(&f.calibrate, "calibrate", false, "measure load and index time on --restore-to (a sample restored through the same path into reembed_calibrate_N tables, dropped afterwards) instead of the uncalibrated defaults")
	fs.StringVar(&f.sizes, "calibrate-rows", "5000,10000,20000", "sample sizes of --calibrate, comma-separated (two or more fit the index growth law; keep the smallest graph larger than the server's CPU cache, about 5,000 rows of 1,536-d for 32 MB)")
}

// target returns the restore target, calibrated when asked; nil without --restore.
func (f *restoreEstimateFlags) target(ctx context.Context, e *env, dims int) (*planner.RestoreTarget, error) {
	if f.to != "" && f.store == "" {
		f.store = "pgvector"
	}
	if f.store == "" {
		if f.calibrate {
			return nil, usagef("--calibrate needs --restore-to DSN")
		}
		return nil, nil
	}
	if f.store != "pgvector" {
		return nil, usagef("--restore %q: want pgvector", f.store)
	}
	if f.index != "hnsw" && f.index != "ivfflat" && f.index != "none" {
		return nil, usagef("--restore-index %q: want hnsw, ivfflat or none", f.index)
	}
	t := &planner.RestoreTarget{Store: f.store, Index: f.index, Dimensions: f.dimensions, Workers: f.workers}
	if !f.calibrate {
		return t, nil
	}
	if f.to == "" {
		return nil, usagef("--calibrate needs --restore-to DSN")
	}
	var sizes []int
	for _, s := range strings.Split(f.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			return nil, usagef("--calibrate-rows %q: want sizes of at least 100 rows, e.g. 2000,5000,10000", f.sizes)
		}
		sizes = append(sizes, n)
	}
	if f.dimensions > 0 {
		dims = f.dimensions
	}
	e.logger.Info("calibrating the restore on the target", "rows", f.sizes, "dimensions", dims)
	c, err := pgvector.Calibrate(ctx, f.to, dims, sizes, func(d int) float64 { return planner.RestoreRowBytes(d, d > pgvector.MaxVectorDims) })
	if err != nil {
		return nil, scrubSecret(fmt.Errorf("calibrating on --restore-to: %w", err), pgvector.Password(f.to))
	}
	t.Model = calibratedModel(c)
	return t, nil
}

// calibratedModel is the restore model a calibration measured.
func calibratedModel(c pgvector.Calibration) planner.RestoreModel {
	return planner.RestoreModel{LoadBytesPerSecond: c.LoadBytesPerSecond, IndexA: c.IndexA, IndexB: c.IndexB, IndexMaxRows: c.MaxRows, Calibrated: true,
		Basis: fmt.Sprintf("calibrated on the target: COPY %.1f MB/s over %v rows; HNSW seconds = %.3g × rows^%.3f fitted on %v rows (%v s), rows × log(rows) beyond %d",
			c.LoadBytesPerSecond/1e6, c.Sizes, c.IndexA, c.IndexB, c.Sizes, roundSecs(c.Seconds), c.MaxRows)}
}

func roundSecs(v []float64) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = strconv.FormatFloat(s, 'f', 2, 64)
	}
	return out
}

// printRestoreTerms adds the restore's terms under the estimate table.
func printRestoreTerms(w io.Writer, m planner.ModelEstimate) {
	r := m.Restore
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n%s: duration %s = embed %s + %s load %s + %s index %s + verify %s (%d rows × %d dimensions; %s)", m.Model,
		m.Duration, fmtSecs(r.EmbedSeconds), r.Store, fmtSecs(r.LoadSeconds), r.Index, fmtSecs(r.IndexSeconds), fmtSecs(r.VerifySeconds),
		r.Rows, r.Dimensions, r.Basis)
}

func fmtSecs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
