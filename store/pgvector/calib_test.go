package pgvector_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
)

var fitsRE = regexp.MustCompile(`no longer fits into maintenance_work_mem after (\d+) tuples`)

// graphRowsIn builds an HNSW index over server-generated vectors with a
// small maintenance_work_mem and returns after how many tuples pgvector
// says the graph no longer fits.
func graphRowsIn(t *testing.T, dsn string, dims, m, rows int, workMemKB int, half bool) int {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var after int
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if s := fitsRE.FindStringSubmatch(n.Message); s != nil {
			after, _ = strconv.Atoi(s[1])
		}
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	typ := "vector"
	if half {
		typ = "halfvec"
	}
	tbl := fmt.Sprintf("g_%d_%d_%v", dims, m, half)
	for _, q := range []string{
		"CREATE EXTENSION IF NOT EXISTS vector",
		fmt.Sprintf("CREATE TABLE %s (embedding %s(%d))", tbl, typ, dims),
		fmt.Sprintf("INSERT INTO %s SELECT array_agg(random())::%s(%d) FROM generate_series(1, %d) r, generate_series(1, %d) d GROUP BY r", tbl, typ, dims, rows, dims),
		fmt.Sprintf("SET maintenance_work_mem = '%dkB'", workMemKB),
		"SET max_parallel_maintenance_workers = 0",
		fmt.Sprintf("CREATE INDEX ON %s USING hnsw (embedding %s_cosine_ops) WITH (m = %d)", tbl, typ, m),
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return after
}

// TestHNSWMemoryEstimate checks pgvector.HNSWBytesPerRow against the row
// count at which pgvector itself reports that the graph no longer fits: the
// estimate must be within 25% of the measured bytes per row.
func TestHNSWMemoryEstimate(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, c := range []struct {
		dims, m, rows int
		half          bool
	}{{64, 16, 1100, false}, {1536, 16, 200, false}, {256, 32, 500, false}, {3072, 16, 200, true}} {
		workKB := 1024
		after := graphRowsIn(t, dsn, c.dims, c.m, c.rows, workKB, c.half)
		if after == 0 {
			t.Fatalf("%+v: no 'no longer fits' notice", c)
		}
		measured := float64(workKB*1024) / float64(after)
		est := float64(pgvector.HNSWBytesPerRow(c.dims, c.m, c.half))
		t.Logf("%+v: graph full after %d tuples: %.0f bytes/row measured, %.0f estimated", c, after, measured, est)
		if est < measured*0.75 || est > measured*1.25 {
			t.Errorf("%+v: estimate %.0f bytes/row, measured %.0f", c, est, measured)
		}
	}
}
