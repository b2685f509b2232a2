package pgvector_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

// TestBenchRestore is the restore benchmark of scripts/bench-restore.sh,
// skipped unless REEMBED_BENCH_RESTORE=1. It measures, on one throwaway
// server (durable defaults with REEMBED_PG_DURABLE=1):
//
//   - the server-side floor: INSERT INTO ... SELECT of server-generated
//     vectors of the checkpoint's shape (REEMBED_BENCH_DIMS, default 1536),
//     rows/s;
//   - restore of a checkpoint of REEMBED_BENCH_ROWS rows (default 20000),
//     binary COPY through the Sink, no index, rows/s;
//
// each REEMBED_BENCH_RUNS times (default 3), and prints the medians and
// their ratio; then the HNSW build seconds at each of REEMBED_BENCH_INDEX_ROWS
// (default 20000,50000,100000) with the power law t = a·n^b fitted on them.
func TestBenchRestore(t *testing.T) {
	if os.Getenv("REEMBED_BENCH_RESTORE") != "1" {
		t.Skip("benchmark: set REEMBED_BENCH_RESTORE=1 (scripts/bench-restore.sh)")
	}
	rows, dims, runs := envInt("REEMBED_BENCH_ROWS", 20000), envInt("REEMBED_BENCH_DIMS", 1536), envInt("REEMBED_BENCH_RUNS", 3)
	srv := pgtest.New(t)
	dsn := srv.DB(t)
	ctx := context.Background()
	dir := t.TempDir()
	writeBenchCheckpoint(t, dir, rows, dims)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var floor, restore, clientShare, serverShare []float64
	data := filepath.Join(srv.Dir, "data")
	for i := range runs {
		floor = append(floor, float64(rows)/floorSeconds(t, c, fmt.Sprintf("floor_%d", i), rows, dims))
		start, client, server := time.Now(), clientCPU(), serverCPU(data)
		if _, err := restoreInto(t, dsn, dir, fmt.Sprintf("restored_%d", i), store.IndexOptions{Kind: "none"}); err != nil {
			t.Fatal(err)
		}
		wall := time.Since(start)
		restore = append(restore, float64(rows)/wall.Seconds())
		clientShare = append(clientShare, (clientCPU()-client).Seconds()/wall.Seconds())
		serverShare = append(serverShare, (serverCPU(data)-server).Seconds()/wall.Seconds())
		exec(t, dsn, fmt.Sprintf("DROP TABLE floor_%d; DROP TABLE restored_%d", i, i))
	}
	mf, mr := median(floor), median(restore)
	fmt.Printf("restore %d × %d-d: floor (INSERT ... SELECT, server-generated array_fill) median %.0f rows/s %v; restore (binary COPY) median %.0f rows/s %v; ratio %.2f\n",
		rows, dims, mf, round(floor), mr, round(restore), mr/mf)
	fmt.Printf("restore CPU per second of the restore (median): client %.2f, server %.2f (of %d CPUs)\n",
		median(clientShare), median(serverShare), runtime.NumCPU())
	var ns, secs []float64
	for _, s := range strings.Split(envStr("REEMBED_BENCH_INDEX_ROWS", "20000,50000,100000"), ",") {
		n, _ := strconv.Atoi(s)
		sec := indexSeconds(t, c, n, dims)
		ns, secs = append(ns, float64(n)), append(secs, sec)
		fmt.Printf("hnsw build (m=16, ef_construction=64, %d-d, cosine): %d rows %.1f s\n", dims, n, sec)
	}
	if len(ns) >= 2 {
		a, b := fitPower(ns, secs)
		fmt.Printf("fitted: seconds = %.3g × rows^%.3f\n", a, b)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func writeBenchCheckpoint(t *testing.T, dir string, rows, dims int) {
	if err := storetest.WriteBenchCheckpoint(context.Background(), dir, rows, dims, envInt("REEMBED_BENCH_PART_ROWS", 1000)); err != nil {
		t.Fatal(err)
	}
}

// floorSeconds times INSERT INTO ... SELECT of server-generated rows of the
// restore's shape into a table like the restore's. The vectors are made
// with array_fill (one distinct value per row), so that the floor measures
// storing rows, not calling random() 1,536 times per row; stored EXTERNAL,
// they are not compressed either.
func floorSeconds(t *testing.T, c *pgx.Conn, table string, rows, dims int) float64 {
	ctx := context.Background()
	_, err := c.Exec(ctx, fmt.Sprintf(`CREATE EXTENSION IF NOT EXISTS vector;
		CREATE TABLE %s (doc_id text NOT NULL, chunk_index integer NOT NULL, chunk_sha256 text NOT NULL, text text NOT NULL,
		model text NOT NULL, embedded_at timestamptz NOT NULL, embedding vector(%d) NOT NULL, PRIMARY KEY (doc_id, chunk_index));
		ALTER TABLE %[1]s ALTER COLUMN embedding SET STORAGE EXTERNAL`, table, dims))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT 'docs/doc-' || lpad((i / 4)::text, 6, '0') || '.md', i %% 4,
		md5(i::text) || md5((i + 1)::text), 'bench chunk ' || lpad(i::text, 8, '0'), 'text-embedding-3-small', now(),
		array_fill((i %% 997)::real / 997 + 0.001, ARRAY[%d])::vector
		FROM generate_series(0, %d) i`, table, dims, rows-1))
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start).Seconds()
}

func restoreInto(t *testing.T, dsn, dir, table string, idx store.IndexOptions) (store.Report, error) {
	ctx := context.Background()
	sink, err := pgvector.Open(ctx, pgvector.Config{DSN: dsn, Table: table})
	if err != nil {
		return store.Report{}, err
	}
	defer sink.Close(ctx)
	m, err := checkpoint.ReadManifest(ctx, checkpoint.NewDir(dir), checkpoint.Shard{})
	if err != nil {
		return store.Report{}, err
	}
	return store.Restore(ctx, checkpoint.NewDir(dir), m, sink, store.Options{Index: idx})
}

// indexSeconds times an HNSW build over n server-generated vectors, with
// maintenance_work_mem sized by PlanIndex so the graph fits.
func indexSeconds(t *testing.T, c *pgx.Conn, n, dims int) float64 {
	ctx := context.Background()
	table := fmt.Sprintf("idx_%d", n)
	plan := pgvector.PlanIndex(int64(n), dims, false, 64<<20, store.IndexOptions{MaxIndexMemory: 8 << 30})
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s (id int, embedding vector(%d))", table, dims),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN embedding SET STORAGE EXTERNAL", table),
		fmt.Sprintf("INSERT INTO %s SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, %d) WHERE i >= 0)::vector FROM generate_series(1, %d) i", table, dims, n),
		fmt.Sprintf("SET maintenance_work_mem = '%dkB'", plan.WorkMem>>10),
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	start := time.Now()
	if _, err := c.Exec(ctx, fmt.Sprintf("CREATE INDEX ON %s USING hnsw (embedding vector_cosine_ops)", table)); err != nil {
		t.Fatal(err)
	}
	sec := time.Since(start).Seconds()
	if _, err := c.Exec(ctx, "DROP TABLE "+table); err != nil {
		t.Fatal(err)
	}
	return sec
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(v []float64) []int {
	out := make([]int, len(v))
	for i, f := range v {
		out[i] = int(f)
	}
	return out
}

// fitPower fits y = a·x^b by least squares on logs.
func fitPower(x, y []float64) (a, b float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(x))
	for i := range x {
		lx, ly := math.Log(x[i]), math.Log(y[i])
		sx, sy, sxx, sxy = sx+lx, sy+ly, sxx+lx*lx, sxy+lx*ly
	}
	b = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	a = math.Exp((sy - b*sx) / n)
	return a, b
}
