// Command restorepred checks the restore's load and index prediction against
// a real restore (issue 15.4: within ±25% at 20k–100k rows). For each size it
// writes a checkpoint of random 1,536-d vectors, runs
//
//	reembed estimate --documents N --tokens-per-document 5 --restore-to DSN --calibrate --format json
//
// then
//
//	reembed restore --checkpoint DIR --to DSN --max-index-memory 4GB --format json
//
// and prints predicted against actual load and index seconds, the error of
// each and of their sum, and the load average before and after (the machine
// may be shared). Without -dsn it starts a throwaway PostgreSQL with pgvector
// (as the tests do, durable with REEMBED_PG_DURABLE=1). Run it through
// scripts/restore-prediction.sh, which builds reembed first.
//
//	go run ./scripts/restorepred -bin /tmp/reembed [-rows 20000,50000,100000] [-runs 1] [-calibrate-rows 5000,10000,20000] [-calibrate-once]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

type config struct {
	bin, dsn, calibrateRows, maxIndexMem, extra string
	sizes                                       []int
	dims, runs, partRows                        int
	// once calibrates once and predicts every size from it (through
	// pgvector.Calibrate and planner.EstimateRestore, the code estimate
	// --calibrate runs), instead of running estimate --calibrate per size.
	once  bool
	model *planner.RestoreModel
}

func main() {
	var c config
	rows := flag.String("rows", "20000,50000,100000", "checkpoint sizes, comma-separated")
	flag.StringVar(&c.bin, "bin", "", "the reembed binary (required)")
	flag.StringVar(&c.dsn, "dsn", "", "PostgreSQL with pgvector to use (default: a throwaway server)")
	flag.StringVar(&c.calibrateRows, "calibrate-rows", "5000,10000,20000", "estimate --calibrate-rows")
	flag.StringVar(&c.maxIndexMem, "max-index-memory", "4GB", "restore --max-index-memory (the calibration sizes maintenance_work_mem to fit the graph too)")
	flag.StringVar(&c.extra, "restore-flags", "", "more restore flags, space-separated (e.g. --parallel-workers 0)")
	flag.IntVar(&c.dims, "dims", 1536, "vector dimensions")
	flag.IntVar(&c.runs, "runs", 1, "runs per size")
	flag.IntVar(&c.partRows, "part-rows", 1000, "rows per checkpoint part")
	flag.BoolVar(&c.once, "calibrate-once", false, "calibrate once, before the first size, and predict every size from it (faster: the calibration is the same for every size)")
	flag.Parse()
	var err error
	if c.sizes, err = parseSizes(*rows); err != nil {
		fail(fmt.Errorf("-rows: %w", err))
	}
	if c.bin == "" {
		fail(fmt.Errorf("-bin is required: build reembed first (scripts/restore-prediction.sh does)"))
	}
	if c.dsn == "" {
		srv, err := pgtest.Start()
		if err != nil {
			fail(fmt.Errorf("starting a throwaway PostgreSQL: %w", err))
		}
		defer srv.Stop()
		c.dsn = srv.URL("postgres")
	}
	if err := c.run(context.Background()); err != nil {
		fail(err)
	}
}

func parseSizes(list string) ([]int, error) {
	var sizes []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want sizes such as 20000,50000", list)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "restorepred:", err)
	os.Exit(1)
}

// result is one size's prediction and measurement.
type result struct {
	rows                  int
	predLoad, predIndex   float64
	actLoad, actIndex     float64
	loadBefore, loadAfter string
	basis                 string
}

func (c *config) run(ctx context.Context) error {
	fmt.Printf("%8s %3s %10s %10s %7s %10s %10s %7s %9s  %s\n", "rows", "run", "pred load", "act load", "err", "pred idx", "act idx", "err", "err l+i", "load average before → after")
	var worst float64
	for _, n := range c.sizes {
		dir, err := os.MkdirTemp("", "reembed-restorepred-")
		if err != nil {
			return fmt.Errorf("creating a checkpoint directory: %w", err)
		}
		err = storetest.WriteBenchCheckpoint(ctx, dir, n, c.dims, c.partRows)
		for run := 1; err == nil && run <= c.runs; run++ {
			var r result
			if r, err = c.measure(ctx, dir, n, run); err == nil {
				e := pct(r.predLoad+r.predIndex, r.actLoad+r.actIndex)
				worst = math.Max(worst, math.Abs(e))
				fmt.Printf("%8d %3d %9.1fs %9.1fs %+6.0f%% %9.1fs %9.1fs %+6.0f%% %+8.0f%%  %s → %s\n", n, run, r.predLoad, r.actLoad, pct(r.predLoad, r.actLoad),
					r.predIndex, r.actIndex, pct(r.predIndex, r.actIndex), e, r.loadBefore, r.loadAfter)
				fmt.Printf("         basis: %s\n", r.basis)
			}
		}
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
	}
	fmt.Printf("worst load + index error: %.0f%% (target: within ±25%%)\n", worst)
	return nil
}

// measure runs the calibrated estimate and the restore of one checkpoint.
func (c *config) measure(ctx context.Context, dir string, n, run int) (result, error) {
	r := result{rows: n, loadBefore: loadavg()}
	var est struct {
		Estimates []struct {
			Restore struct {
				Rows         int64   `json:"rows"`
				LoadSeconds  float64 `json:"load_seconds"`
				IndexSeconds float64 `json:"index_seconds"`
				Basis        string  `json:"basis"`
			} `json:"restore"`
		} `json:"estimates"`
	}
	if c.once {
		return c.measureOnce(ctx, dir, n, run, r)
	}
	err := c.reembed(ctx, &est, "estimate", "--documents", strconv.Itoa(n), "--tokens-per-document", "5", "--restore-to", c.dsn,
		"--restore-dimensions", strconv.Itoa(c.dims), "--calibrate", "--calibrate-rows", c.calibrateRows, "--format", "json")
	if err != nil {
		return r, err
	}
	if len(est.Estimates) != 1 || est.Estimates[0].Restore.Rows != int64(n) {
		return r, fmt.Errorf("estimate of %d rows: got %+v", n, est.Estimates)
	}
	p := est.Estimates[0].Restore
	r.predLoad, r.predIndex, r.basis = p.LoadSeconds, p.IndexSeconds, p.Basis
	return c.restore(ctx, dir, n, run, r)
}

// measureOnce predicts from the one calibration (made on first use), then restores.
func (c *config) measureOnce(ctx context.Context, dir string, n, run int, r result) (result, error) {
	if c.model == nil {
		sizes, err := parseSizes(c.calibrateRows)
		if err != nil {
			return r, err
		}
		cal, err := pgvector.Calibrate(ctx, c.dsn, c.dims, sizes, func(d int) float64 { return planner.RestoreRowBytes(d, d > pgvector.MaxVectorDims) })
		if err != nil {
			return r, fmt.Errorf("calibrating: %w", err)
		}
		c.model = &planner.RestoreModel{LoadBytesPerSecond: cal.LoadBytesPerSecond, IndexA: cal.IndexA, IndexB: cal.IndexB, IndexMaxRows: cal.MaxRows, Calibrated: true,
			Basis: fmt.Sprintf("calibrated once: COPY %.1f MB/s; HNSW seconds = %.3g × rows^%.3f fitted on %v rows (%.2f s), rows × log(rows) beyond %d",
				cal.LoadBytesPerSecond/1e6, cal.IndexA, cal.IndexB, cal.Sizes, cal.Seconds, cal.MaxRows)}
	}
	p := planner.EstimateRestore(int64(n), int64(4*5*n), c.dims, planner.RestoreTarget{Store: "pgvector", Index: "hnsw", Model: *c.model})
	r.predLoad, r.predIndex, r.basis = p.LoadSeconds, p.IndexSeconds, p.Basis
	return c.restore(ctx, dir, n, run, r)
}

// restore restores the checkpoint and records the actual seconds.
func (c *config) restore(ctx context.Context, dir string, n, run int, r result) (result, error) {
	var rep struct {
		Keys         int     `json:"keys"`
		LoadSeconds  float64 `json:"load_seconds"`
		IndexSeconds float64 `json:"index_seconds"`
	}
	table := fmt.Sprintf("restorepred_%d_%d", n, run)
	args := []string{"restore", "--checkpoint", dir, "--to", c.dsn, "--table", table, "--max-index-memory", c.maxIndexMem, "--format", "json"}
	args = append(args, strings.Fields(c.extra)...)
	if err := c.reembed(ctx, &rep, args...); err != nil {
		return r, err
	}
	if rep.Keys != n {
		return r, fmt.Errorf("restore of %d rows: %d keys", n, rep.Keys)
	}
	r.actLoad, r.actIndex = rep.LoadSeconds, rep.IndexSeconds
	r.loadAfter = loadavg()
	return r, c.drop(ctx, table)
}

// drop drops a restored table, so that the next size starts from the same server state.
func (c *config) drop(ctx context.Context, table string) error {
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return fmt.Errorf("connecting to drop %s: %w", table, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE "+pgx.Identifier{table}.Sanitize()); err != nil {
		return fmt.Errorf("dropping %s: %w", table, err)
	}
	return nil
}

// reembed runs the binary and decodes its JSON stdout into v.
func (c *config) reembed(ctx context.Context, v any, args ...string) error {
	cmd := exec.CommandContext(ctx, c.bin, append(args, "--quiet")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("reembed %s: %w\n%s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("reembed %s: decoding its JSON: %w\n%s", args[0], err, out)
	}
	return nil
}

func pct(pred, act float64) float64 {
	if act <= 0 {
		return 0
	}
	return (pred - act) / act * 100
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
