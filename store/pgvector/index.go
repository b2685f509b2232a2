package pgvector

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/field"
	"github.com/reembed/reembed/store"
)

// opclass returns the operator class of an index over typ for a metric.
func opclass(typ, metric string) (string, error) {
	switch metric {
	case "cosine":
		return typ + "_cosine_ops", nil
	case "l2":
		return typ + "_l2_ops", nil
	case "ip":
		return typ + "_ip_ops", nil
	}
	return "", fmt.Errorf("metric %q: want cosine, l2 or ip", metric)
}

// operator returns the distance operator of a metric.
func operator(metric string) string {
	switch metric {
	case "l2":
		return "<->"
	case "ip":
		return "<#>"
	}
	return "<=>"
}

// indexName is the name the vector index is built under: while a swap table
// is loaded the old table may still hold TABLE_embedding_idx.
func (s *Sink) indexName() string {
	if s.swap {
		return s.table + "_reembed_idx"
	}
	return s.table + "_embedding_idx"
}

// HNSWBytesPerRow estimates the memory pgvector's in-memory HNSW build takes
// per row: the vector itself plus the element and its neighbour lists. The
// overhead, 272 + 32·m bytes, was fitted on pgvector 0.8.6 from the row count
// at which its notice "hnsw graph no longer fits into maintenance_work_mem"
// appears: 777 bytes at m = 16 and 1,283 at m = 32, whatever the dimensions
// (64, 256, 1,536, 3,072 halfvec; TestHNSWMemoryEstimate holds it to ±25%).
func HNSWBytesPerRow(dims, m int, half bool) int64 {
	if m <= 0 {
		m = 16
	}
	elem := int64(4 * dims)
	if half {
		elem = int64(2 * dims)
	}
	return elem + 272 + 32*int64(m)
}

// IndexPlan is what the build will do about memory, decided before it starts.
type IndexPlan struct {
	// Rows is the number of rows indexed.
	Rows int64
	// EstimatedBytes is the in-memory graph's estimated size (HNSW only).
	EstimatedBytes int64
	// WorkMem is the maintenance_work_mem the build runs with, in bytes.
	WorkMem int64
	// Fits tells whether the estimate fits in WorkMem.
	Fits bool
	// Raised tells whether WorkMem was raised within MaxIndexMemory to fit.
	Raised bool
}

// PlanIndex decides the build's maintenance_work_mem from the estimated graph size.
func PlanIndex(rows int64, dims int, half bool, serverWorkMem int64, opts store.IndexOptions) IndexPlan {
	p := IndexPlan{Rows: rows, WorkMem: serverWorkMem}
	if opts.MaintenanceWorkMem > 0 {
		p.WorkMem = opts.MaintenanceWorkMem
	}
	if opts.Kind != "" && opts.Kind != "hnsw" {
		p.Fits = true
		return p
	}
	p.EstimatedBytes = rows * HNSWBytesPerRow(dims, opts.M, half)
	want := p.EstimatedBytes + p.EstimatedBytes/10 + 1<<20
	if want > p.WorkMem && opts.MaxIndexMemory > 0 {
		p.WorkMem, p.Raised = min(want, opts.MaxIndexMemory), true
	}
	p.Fits = p.EstimatedBytes <= p.WorkMem
	return p
}

// BuildIndex builds the vector index on the loaded table, unless the table
// already has one. Before the build it estimates the graph's size against
// maintenance_work_mem, raises it within opts.MaxIndexMemory, and warns
// through the notice callback when the graph will not fit (pgvector then
// falls back to a much slower on-disk build). Progress is polled from
// pg_stat_progress_create_index on a second connection.
func (s *Sink) BuildIndex(ctx context.Context, opts store.IndexOptions, progress func(store.Progress)) error {
	return s.scrub(s.buildIndex(ctx, opts, progress))
}

func (s *Sink) buildIndex(ctx context.Context, opts store.IndexOptions, progress func(store.Progress)) error {
	if opts.Kind == "none" {
		return nil
	}
	var has bool
	err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = $1::regclass AND am.amname IN ('hnsw', 'ivfflat'))`, s.qualified(s.load)).Scan(&has)
	if err != nil {
		return fmt.Errorf("looking for a vector index: %w", err)
	}
	if has {
		return nil
	}
	var rows int64
	if err := s.conn.QueryRow(ctx, "SELECT count(*) FROM "+s.ident(s.load)).Scan(&rows); err != nil {
		return fmt.Errorf("counting rows: %w", err)
	}
	var serverMem int64
	if err := s.conn.QueryRow(ctx, "SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'").Scan(&serverMem); err != nil {
		return fmt.Errorf("reading maintenance_work_mem: %w", err)
	}
	plan := PlanIndex(rows, s.dims, s.half, serverMem, opts)
	if opts.ParallelWorkers >= 0 {
		if _, err := s.conn.Exec(ctx, fmt.Sprintf("SET max_parallel_maintenance_workers = %d", opts.ParallelWorkers)); err != nil {
			return fmt.Errorf("setting max_parallel_maintenance_workers: %w", err)
		}
	}
	reset, err := s.allWorkers(ctx, &plan, opts)
	if err != nil {
		return err
	}
	defer reset()
	s.LastPlan = plan
	if !plan.Fits && s.cfg.Notice != nil {
		s.cfg.Notice(field.Sprintf(s.cfg.FieldName, "the HNSW graph of %d rows needs about %.1f MB but maintenance_work_mem is %.1f MB: pgvector will fall back to an on-disk build 10-50x slower; raise {max_index_memory} (or {maintenance_work_mem}), or use {index} ivfflat",
			rows, float64(plan.EstimatedBytes)/(1<<20), float64(plan.WorkMem)/(1<<20)))
	}
	if _, err := s.conn.Exec(ctx, fmt.Sprintf("SET maintenance_work_mem = '%dkB'", max(plan.WorkMem>>10, 1024))); err != nil {
		return fmt.Errorf("setting maintenance_work_mem: %w", err)
	}
	sql, err := s.createIndexSQL(opts, rows)
	if err != nil {
		return err
	}
	stop := s.watchIndex(ctx, progress)
	_, err = s.conn.Exec(ctx, sql)
	stop()
	if err != nil {
		return fmt.Errorf("creating the index: %w", err)
	}
	return nil
}

// parallelMemPerProcess is the maintenance_work_mem PostgreSQL wants per
// process of a parallel index build (32 MB); with less it drops workers.
const parallelMemPerProcess = 32 << 20

// allWorkers makes the build use every worker max_parallel_maintenance_workers
// allows. PostgreSQL sizes a build's workers from the heap, which for
// vectors stored EXTERNAL holds little more than TOAST pointers: a 100,000-row
// table gets one worker, a calibration sample none, so calibration and
// restore would run at different parallelism and the prediction would not
// carry over. It sets the table's parallel_workers for the build (reset
// after it), and raises maintenance_work_mem within MaxIndexMemory to the
// 32 MB per process PostgreSQL requires.
func (s *Sink) allWorkers(ctx context.Context, plan *IndexPlan, opts store.IndexOptions) (reset func(), err error) {
	var workers int64
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('max_parallel_maintenance_workers')::int").Scan(&workers); err != nil {
		return nil, fmt.Errorf("reading max_parallel_maintenance_workers: %w", err)
	}
	if floor := parallelMemPerProcess * (workers + 1); plan.WorkMem < floor && opts.MaxIndexMemory > plan.WorkMem {
		plan.WorkMem, plan.Raised = min(floor, opts.MaxIndexMemory), true
		plan.Fits = plan.EstimatedBytes <= plan.WorkMem
	}
	table := s.ident(s.load)
	if _, err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s SET (parallel_workers = %d)", table, workers)); err != nil {
		return nil, fmt.Errorf("setting the build's parallel workers: %w", err)
	}
	return func() { s.conn.Exec(context.WithoutCancel(ctx), "ALTER TABLE "+table+" RESET (parallel_workers)") }, nil
}

// createIndexSQL returns the CREATE INDEX statement.
func (s *Sink) createIndexSQL(opts store.IndexOptions, rows int64) (string, error) {
	ops, err := opclass(s.vectorType(), s.metric)
	if err != nil {
		return "", err
	}
	head := fmt.Sprintf("CREATE INDEX %s ON %s", pgx.Identifier{s.indexName()}.Sanitize(), s.ident(s.load))
	switch opts.Kind {
	case "", "hnsw":
		m, ef := opts.M, opts.EfConstruction
		if m <= 0 {
			m = 16
		}
		if ef <= 0 {
			ef = 64
		}
		return fmt.Sprintf("%s USING hnsw (embedding %s) WITH (m = %d, ef_construction = %d)", head, ops, m, ef), nil
	case "ivfflat":
		lists := opts.Lists
		if lists <= 0 {
			lists = int(max(rows/1000, 1))
			if rows > 1_000_000 {
				lists = int(math.Sqrt(float64(rows)))
			}
		}
		return fmt.Sprintf("%s USING ivfflat (embedding %s) WITH (lists = %d)", head, ops, lists), nil
	}
	return "", fmt.Errorf("index %q: want hnsw, ivfflat or none", opts.Kind)
}

// watchIndex polls the build's progress on a second connection until stop is called.
func (s *Sink) watchIndex(ctx context.Context, progress func(store.Progress)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	pid := s.conn.PgConn().PID()
	cfg := s.conn.Config().Copy()
	cfg.OnNotice = nil
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var p store.Progress
			err := c.QueryRow(ctx, `SELECT phase, coalesce(tuples_done, 0), coalesce(tuples_total, 0)
				FROM pg_stat_progress_create_index WHERE pid = $1`, pid).Scan(&p.IndexPhase, &p.TuplesDone, &p.TuplesTotal)
			if err == nil {
				progress(p)
			}
		}
	}()
	return func() { cancel(); <-done }
}
