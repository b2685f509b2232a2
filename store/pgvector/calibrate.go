package pgvector

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
)

// Calibration is what [Calibrate] measured on a server.
type Calibration struct {
	// LoadBytesPerSecond is the binary COPY throughput, in the planner's row bytes.
	LoadBytesPerSecond float64
	// IndexA and IndexB fit the HNSW build seconds = IndexA × rows^IndexB,
	// normalised to 1,536 dimensions, at the server's parallelism.
	IndexA, IndexB float64
	// Sizes and Seconds are the measured builds.
	Sizes   []int
	Seconds []float64
	// MaxRows is the largest size measured: the planner extrapolates beyond
	// it as rows × log(rows) (planner.IndexGrowth).
	MaxRows int64
}

// Calibrate restores sizes[i] rows of dims-long random vectors, written to a
// local temporary checkpoint, through the same path as a restore
// ([store.Restore] into a [Sink]: Parquet read, binary COPY one part per
// transaction with its ledger entry, a logged table, so WAL and fsync count),
// and builds the HNSW index as a restore does (the server's parallel workers,
// maintenance_work_mem sized for the graph). It then fits the load rate and
// the index growth law. The tables (reembed_calibrate_N) are dropped, and so
// is the ledger table if the calibration created it: nothing stays on the server.
func Calibrate(ctx context.Context, dsn string, dims int, sizes []int, rowBytes func(dims int) float64) (Calibration, error) {
	return calibrate(ctx, Config{DSN: dsn}, dims, sizes, rowBytes)
}

// calibrate is [Calibrate] connecting with cfg's DSN and Password.
func calibrate(ctx context.Context, cfg Config, dims int, sizes []int, rowBytes func(dims int) float64) (Calibration, error) {
	var c Calibration
	dir, err := os.MkdirTemp("", "reembed-calibrate-")
	if err != nil {
		return c, fmt.Errorf("creating the calibration checkpoint directory: %w", err)
	}
	defer os.RemoveAll(dir)
	hadLedger, err := ledgerExists(ctx, cfg)
	if err != nil {
		return c, err
	}
	if !hadLedger {
		// Dropped only if still empty: a restore may have started meanwhile.
		defer dropCalibration(context.WithoutCancel(ctx), cfg, fmt.Sprintf(`DO $$ BEGIN
			IF to_regclass('%[1]s') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[1]s) THEN DROP TABLE %[1]s; END IF; END $$`, pgx.Identifier{LedgerTable}.Sanitize()))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var loadRows int
	var loadSec float64
	for i, n := range sizes {
		rep, err := calibrateOne(ctx, cfg, filepath.Join(dir, strconv.Itoa(i)), fmt.Sprintf("reembed_calibrate_%d", i), n, dims, rng)
		if err != nil {
			return c, err
		}
		loadRows, loadSec = loadRows+n, loadSec+rep.LoadSeconds
		c.Sizes, c.Seconds = append(c.Sizes, n), append(c.Seconds, rep.IndexSeconds)
		c.MaxRows = max(c.MaxRows, int64(n))
	}
	c.LoadBytesPerSecond = float64(loadRows) * rowBytes(dims) / loadSec
	perDim := float64(dims) / 1536
	if dims > MaxVectorDims {
		perDim /= 2
	}
	c.IndexA, c.IndexB = fitPowerLaw(c.Sizes, c.Seconds)
	c.IndexA /= perDim
	return c, nil
}

// calibrateOne writes a checkpoint of n random rows into dir and restores it
// into table, which it drops afterwards with its ledger entries.
func calibrateOne(ctx context.Context, cfg Config, dir, table string, n, dims int, rng *rand.Rand) (store.Report, error) {
	var rep store.Report
	src := checkpoint.NewDir(dir)
	m := checkpoint.Manifest{Model: "calibration", Dimensions: dims, Encoding: "cl100k_base", CreatedAt: time.Now().UTC()}
	w, err := checkpoint.Open(ctx, src, checkpoint.Options{Manifest: m, PartRows: 1000})
	if err != nil {
		return rep, fmt.Errorf("writing the calibration checkpoint: %w", err)
	}
	for j := 0; j < n; j++ {
		v := make([]float32, dims)
		for k := range v {
			v[k] = float32(rng.NormFloat64())
		}
		row := checkpoint.Row{DocID: fmt.Sprintf("calibrate/%08d", j), ChunkSHA256: fmt.Sprintf("%064x", j),
			Text: "calibration row", Model: "calibration", Embedding: v, EmbeddedAt: time.Now()}
		if err := w.Add(ctx, row); err != nil {
			return rep, fmt.Errorf("writing the calibration checkpoint: %w", err)
		}
	}
	if err := w.Close(ctx); err != nil {
		return rep, fmt.Errorf("writing the calibration checkpoint: %w", err)
	}
	tbl, load, led := pgx.Identifier{table}.Sanitize(), pgx.Identifier{table + "_reembed_load"}.Sanitize(), pgx.Identifier{LedgerTable}.Sanitize()
	defer dropCalibration(context.WithoutCancel(ctx), cfg, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s; DO $$ BEGIN
		IF to_regclass('%[3]s') IS NOT NULL THEN DELETE FROM %[3]s WHERE target IN ('%[1]s', '%[2]s'); END IF; END $$`, tbl, load, led))
	cfg.Table, cfg.Mode = table, ModeSwap
	s, err := Open(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer s.Close(context.Background())
	rep, err = store.Restore(ctx, src, m, s, store.Options{Index: store.IndexOptions{Kind: "hnsw", ParallelWorkers: -1, MaxIndexMemory: IndexOptionsFit().MaxIndexMemory}})
	if err != nil {
		return rep, s.scrub(fmt.Errorf("calibration restore of %d rows: %w", n, err))
	}
	return rep, nil
}

// ledgerExists reports whether the server already has the restore ledger.
func ledgerExists(ctx context.Context, cfg Config) (bool, error) {
	cfg.Table = "reembed_calibrate"
	s, err := Open(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer s.Close(context.Background())
	ok, err := s.exists(ctx, LedgerTable)
	return ok, s.scrub(err)
}

// dropCalibration runs the calibration's clean-up statements.
func dropCalibration(ctx context.Context, cfg Config, sql string) error {
	cfg.Table = "reembed_calibrate"
	s, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	if _, err := s.conn.Exec(ctx, sql); err != nil {
		return s.scrub(fmt.Errorf("dropping the calibration tables: %w", err))
	}
	return nil
}

// IndexOptionsFit returns options that size maintenance_work_mem for the graph (up to 8 GB).
func IndexOptionsFit() store.IndexOptions { return store.IndexOptions{MaxIndexMemory: 8 << 30} }

// MinIndexExponent and MaxIndexExponent bound the fitted growth exponent of
// the HNSW build: a build is at least linear in the rows, and on this
// project's 2-core machine (pgvector 0.8.6, random 1,536-d vectors, a busy
// host) local exponents between 1.1 and 1.9 were measured above the CPU
// cache's size; a fit outside the bounds is noise (a slow small sample), and
// extrapolating it 10× would multiply the error.
const (
	MinIndexExponent = 1.0
	MaxIndexExponent = 2.0
)

// fitPowerLaw fits seconds = a × n^b by least squares on logarithms, with b
// clamped to [MinIndexExponent, MaxIndexExponent] and a refitted for it;
// with one size, b is taken as 1.1.
func fitPowerLaw(n []int, sec []float64) (a, b float64) {
	k := float64(len(n))
	var sx, sy, sxx, sxy float64
	for i := range n {
		x, y := math.Log(float64(n[i])), math.Log(sec[i])
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	b = 1.1
	if len(n) > 1 && k*sxx-sx*sx > 0 {
		b = min(max((k*sxy-sx*sy)/(k*sxx-sx*sx), MinIndexExponent), MaxIndexExponent)
	}
	return math.Exp((sy - b*sx) / k), b
}
