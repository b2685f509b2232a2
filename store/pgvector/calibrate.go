package pgvector

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

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
}

// Calibrate loads sizes[i] rows of dims-long random vectors with binary COPY
// into a temporary table and builds an HNSW index over each (the server's
// parallel workers, maintenance_work_mem sized for the graph), then fits the load rate and the
// index growth law. The tables are temporary: nothing stays on the server.
func Calibrate(ctx context.Context, dsn string, dims int, sizes []int, rowBytes func(dims int) float64) (Calibration, error) {
	var c Calibration
	s, err := Open(ctx, Config{DSN: dsn, Table: "reembed_calibrate"})
	if err != nil {
		return c, err
	}
	defer s.Close(context.Background())
	err = s.calibrate(ctx, dims, sizes, rowBytes, &c)
	return c, s.scrub(err)
}

func (s *Sink) calibrate(ctx context.Context, dims int, sizes []int, rowBytes func(int) float64, c *Calibration) error {
	typ := "vector"
	if dims > MaxVectorDims {
		typ = "halfvec"
	}
	if _, err := s.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		return fmt.Errorf("creating the pgvector extension: %w", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var loadRows int
	var loadSec float64
	for i, n := range sizes {
		table := fmt.Sprintf("reembed_calibrate_%d", i)
		_, err := s.conn.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE %s (doc_id text NOT NULL, chunk_index integer NOT NULL, chunk_sha256 text NOT NULL,
			text text NOT NULL, model text NOT NULL, embedded_at timestamptz NOT NULL, embedding %s(%d) NOT NULL, PRIMARY KEY (doc_id, chunk_index));
			ALTER TABLE %[1]s ALTER COLUMN embedding SET STORAGE EXTERNAL`, table, typ, dims))
		if err != nil {
			return fmt.Errorf("creating a temporary table: %w", err)
		}
		rows := make([]checkpoint.Row, 0, 1000)
		start := time.Now()
		for j := 0; j < n; j++ {
			v := make([]float32, dims)
			for k := range v {
				v[k] = float32(rng.NormFloat64())
			}
			rows = append(rows, checkpoint.Row{DocID: fmt.Sprintf("calibrate/%08d", j), ChunkSHA256: fmt.Sprintf("%064x", j),
				Text: "calibration row", Model: "calibration", Embedding: v, EmbeddedAt: time.Now()})
			if len(rows) == cap(rows) || j == n-1 {
				var buf bytes.Buffer
				encodeCopy(&buf, rows, typ == "halfvec")
				if _, err := s.conn.PgConn().CopyFrom(ctx, &buf, "COPY "+table+" ("+copyColumns+") FROM STDIN (FORMAT binary)"); err != nil {
					return fmt.Errorf("copying calibration rows: %w", err)
				}
				rows = rows[:0]
			}
		}
		loadRows, loadSec = loadRows+n, loadSec+time.Since(start).Seconds()
		plan := PlanIndex(int64(n), dims, typ == "halfvec", 64<<20, IndexOptionsFit())
		for _, q := range []string{fmt.Sprintf("SET maintenance_work_mem = '%dkB'", max(plan.WorkMem>>10, 1024))} {
			if _, err := s.conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		start = time.Now()
		if _, err := s.conn.Exec(ctx, fmt.Sprintf("CREATE INDEX ON %s USING hnsw (embedding %s_cosine_ops)", table, typ)); err != nil {
			return fmt.Errorf("building a calibration index: %w", err)
		}
		c.Sizes, c.Seconds = append(c.Sizes, n), append(c.Seconds, time.Since(start).Seconds())
		if _, err := s.conn.Exec(ctx, "DROP TABLE "+table); err != nil {
			return fmt.Errorf("dropping a calibration table: %w", err)
		}
	}
	c.LoadBytesPerSecond = float64(loadRows) * rowBytes(dims) / loadSec
	perDim := float64(dims) / 1536
	if typ == "halfvec" {
		perDim /= 2
	}
	c.IndexA, c.IndexB = fitPowerLaw(c.Sizes, c.Seconds)
	c.IndexA /= perDim
	return nil
}

// IndexOptionsFit returns options that size maintenance_work_mem for the graph (up to 8 GB).
func IndexOptionsFit() store.IndexOptions { return store.IndexOptions{MaxIndexMemory: 8 << 30} }

// fitPowerLaw fits seconds = a × n^b by least squares on logarithms; with
// one size, b is taken as 1.1.
func fitPowerLaw(n []int, sec []float64) (a, b float64) {
	if len(n) == 1 {
		return sec[0] / math.Pow(float64(n[0]), 1.1), 1.1
	}
	var sx, sy, sxx, sxy float64
	k := float64(len(n))
	for i := range n {
		x, y := math.Log(float64(n[i])), math.Log(sec[i])
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	b = (k*sxy - sx*sy) / (k*sxx - sx*sx)
	return math.Exp((sy - b*sx) / k), b
}
