package pgvector_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

// Calibrate restores its samples through the restore's own path, fits the
// load rate and the index growth law, and leaves nothing on the server: no
// calibration table, no ledger table it created, and a ledger that was there
// keeps its rows.
func TestCalibrateLeavesNothing(t *testing.T) {
	ctx := context.Background()
	rowBytes := func(d int) float64 { return float64(4*d) + 300 }
	dsn := pgtest.DSN(t)
	tables := func() []string {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		rows, _ := c.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	c, err := pgvector.Calibrate(ctx, dsn, 16, []int{300, 900}, rowBytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.LoadBytesPerSecond <= 0 || c.IndexA <= 0 || c.IndexB < pgvector.MinIndexExponent || c.IndexB > pgvector.MaxIndexExponent ||
		len(c.Seconds) != 2 || c.Seconds[0] <= 0 {
		t.Errorf("calibration %+v", c)
	}
	if got := tables(); len(got) != 0 {
		t.Errorf("tables left behind: %q", got)
	}

	// A ledger that was there stays, with its rows.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+pgvector.LedgerTable+" (target text NOT NULL, part text NOT NULL, rows integer NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, part)); INSERT INTO "+pgvector.LedgerTable+" VALUES ('\"mine\"', 'p1', 3)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgvector.Calibrate(ctx, dsn, 16, []int{300}, rowBytes); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgvector.LedgerTable).Scan(&n); err != nil || n != 1 {
		t.Errorf("the ledger holds %d rows (%v), want the 1 that was there", n, err)
	}
	if got := tables(); len(got) != 1 || got[0] != pgvector.LedgerTable {
		t.Errorf("tables after: %q, want only the ledger", got)
	}
}

// The fitted exponent is bounded: a noisy sample cannot make a 10×
// extrapolation sub-linear or explode.
func TestFitPowerLawBounds(t *testing.T) {
	for _, c := range []struct {
		n     []int
		sec   []float64
		wantB float64
	}{
		{[]int{1000, 2000, 4000}, []float64{1, 2.6390158, 6.9644045}, 1.4}, // exact 1.4
		{[]int{2000, 5000}, []float64{3, 3.1}, pgvector.MinIndexExponent},
		{[]int{2000, 5000}, []float64{1, 40}, pgvector.MaxIndexExponent},
		{[]int{5000}, []float64{7}, 1.1},
	} {
		a, b := pgvector.FitPowerLaw(c.n, c.sec)
		if math.Abs(b-c.wantB) > 1e-3 {
			t.Errorf("fit %v %v: b = %.4f, want %.4f", c.n, c.sec, b, c.wantB)
		}
		// a is refitted for the bounded b: the geometric mean of the fit's ratios is 1.
		var logSum float64
		for i := range c.n {
			logSum += math.Log(c.sec[i] / (a * math.Pow(float64(c.n[i]), b)))
		}
		if math.Abs(logSum) > 1e-9 {
			t.Errorf("fit %v %v: a = %g does not centre the fit (%g)", c.n, c.sec, a, logSum)
		}
	}
}

// The build asks for every worker max_parallel_maintenance_workers allows
// (PostgreSQL would size them from the heap, which holds only TOAST pointers
// for EXTERNAL vectors), with the 32 MB per process it needs when
// MaxIndexMemory allows, and leaves the table's parallel_workers unset after.
func TestBuildUsesEveryWorker(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	storetest.Checkpoint(t, dir, 200, 16, 100)
	src := checkpoint.NewDir(dir)
	m, err := checkpoint.ReadManifest(t.Context(), src, checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		workers int
		max     int64
		want    int64
	}{{2, 1 << 30, 96 << 20}, {0, 1 << 30, 64 << 20}, {2, 0, 64 << 20}} {
		table := fmt.Sprintf("workers_%d_%d", c.workers, c.max)
		sink, err := pgvector.Open(t.Context(), pgvector.Config{DSN: dsn, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Restore(t.Context(), src, m, sink, store.Options{Index: store.IndexOptions{ParallelWorkers: c.workers, MaxIndexMemory: c.max}})
		sink.Close(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sink.LastPlan.WorkMem != c.want {
			t.Errorf("%d workers, max %d: maintenance_work_mem %d, want %d", c.workers, c.max, sink.LastPlan.WorkMem, c.want)
		}
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var opts []string
		err = conn.QueryRow(t.Context(), "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = $1", table).Scan(&opts)
		conn.Close(t.Context())
		if err != nil || len(opts) != 0 {
			t.Errorf("%s reloptions after the build: %q (%v)", table, opts, err)
		}
	}
}
