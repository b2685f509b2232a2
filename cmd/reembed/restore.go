package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
)

// restoreFlags are the flags of restore.
type restoreFlags struct {
	checkpoint      string
	to              string
	table           string
	swap, appendTo  bool
	index           string
	metric          string
	hnswM, hnswEf   int
	lists           int
	workMem         string
	maxIndexMem     string
	parallelWorkers int
	format          string
}

func newRestoreFlagSet(e *env) (*flag.FlagSet, *restoreFlags) {
	fs := newFlagSet(e, "restore", "restore [flags] --checkpoint DIR --to postgres://USER@HOST/DB\n\n"+
		"Loads every chunk of the checkpoint DIR into a pgvector table with binary COPY, one part per transaction,\n"+
		"recorded in the ledger table reembed_restore_ledger, so a killed restore resumes without duplicates: run\n"+
		"the same command again. A new table is loaded under TABLE_reembed_load, indexed, then swapped in atomically.\n"+
		"The password may come from PGPASSWORD or ~/.pgpass instead of the URL; it is never printed.\n"+
		"Exit 0 done, 1 error, 2 bad usage, 130 interrupted (resumable).")
	f := &restoreFlags{}
	fs.StringVar(&f.checkpoint, "checkpoint", "", "checkpoint written by rebuild: a directory or s3://, gs://, azblob:// URL")
	fs.StringVar(&f.to, "to", "", "target PostgreSQL with pgvector: postgres://USER[:PASSWORD]@HOST:PORT/DB (or key=value DSN)")
	fs.StringVar(&f.table, "table", "reembed_chunks", "target table, TABLE or SCHEMA.TABLE (at most 45 bytes)")
	fs.BoolVar(&f.swap, "swap", false, "load into a new table and swap it in atomically, replacing TABLE (default when TABLE is absent)")
	fs.BoolVar(&f.appendTo, "append", false, "load into TABLE itself: new keys inserted, existing keys updated (a delta)")
	fs.StringVar(&f.index, "index", "hnsw", "index built after the load: hnsw, ivfflat or none")
	fs.StringVar(&f.metric, "metric", "cosine", "distance the index serves: cosine (OpenAI models), l2 or ip")
	fs.IntVar(&f.hnswM, "hnsw-m", 16, "HNSW m")
	fs.IntVar(&f.hnswEf, "hnsw-ef-construction", 64, "HNSW ef_construction")
	fs.IntVar(&f.lists, "ivfflat-lists", 0, "IVFFlat lists (default rows/1000, sqrt(rows) above 1M rows)")
	fs.StringVar(&f.workMem, "maintenance-work-mem", "", "maintenance_work_mem for the index build, e.g. 1GB (default: the server's)")
	fs.StringVar(&f.maxIndexMem, "max-index-memory", "", "let the build raise maintenance_work_mem up to this, e.g. 4GB, when the HNSW graph would not fit (default: only warn)")
	fs.IntVar(&f.parallelWorkers, "parallel-workers", -1, "max_parallel_maintenance_workers for the build (default: the server's)")
	fs.StringVar(&f.format, "format", "table", "final summary on stdout and progress on stderr: table or json")
	return fs, f
}

func runRestore(ctx context.Context, e *env, args []string) error {
	fs, f := newRestoreFlagSet(e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	err := f.run(ctx, e)
	return scrubSecret(err, pgvector.Password(f.to))
}

// options checks the flags and returns the sink's mode and index options.
func (f *restoreFlags) options() (pgvector.Mode, store.IndexOptions, error) {
	var opts store.IndexOptions
	switch {
	case f.checkpoint == "":
		return 0, opts, usagef("--checkpoint is required")
	case f.to == "":
		return 0, opts, usagef("--to is required: postgres://USER@HOST:PORT/DB")
	case f.swap && f.appendTo:
		return 0, opts, usagef("--swap and --append exclude each other")
	case f.format != "table" && f.format != "json":
		return 0, opts, usagef("--format %q: want table or json", f.format)
	case f.index != "hnsw" && f.index != "ivfflat" && f.index != "none":
		return 0, opts, usagef("--index %q: want hnsw, ivfflat or none", f.index)
	case f.metric != "cosine" && f.metric != "l2" && f.metric != "ip":
		return 0, opts, usagef("--metric %q: want cosine, l2 or ip", f.metric)
	}
	if !strings.HasPrefix(f.to, "postgres://") && !strings.HasPrefix(f.to, "postgresql://") && !strings.Contains(f.to, "=") {
		return 0, opts, usagef("--to %s: want a postgres:// URL or a key=value DSN", pgvector.Redact(f.to))
	}
	opts = store.IndexOptions{Kind: f.index, M: f.hnswM, EfConstruction: f.hnswEf, Lists: f.lists, ParallelWorkers: f.parallelWorkers}
	var err error
	if opts.MaintenanceWorkMem, err = parseBytes("--maintenance-work-mem", f.workMem); err != nil {
		return 0, opts, err
	}
	if opts.MaxIndexMemory, err = parseBytes("--max-index-memory", f.maxIndexMem); err != nil {
		return 0, opts, err
	}
	mode := pgvector.ModeAuto
	if f.swap {
		mode = pgvector.ModeSwap
	} else if f.appendTo {
		mode = pgvector.ModeAppend
	}
	return mode, opts, nil
}

func (f *restoreFlags) run(ctx context.Context, e *env) error {
	mode, iopts, err := f.options()
	if err != nil {
		return err
	}
	rep, plan, err := f.restore(ctx, e, mode, iopts, restoreProgress(e.stderr, f.format))
	if err != nil {
		return err
	}
	if f.format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Table string `json:"table"`
			store.Report
			Index pgvector.IndexPlan `json:"index_plan"`
		}{f.table, rep, plan})
	}
	fmt.Fprintf(e.stdout, "Restored %d keys into %s: %d parts loaded (%d rows), %d already loaded; load %.1fs, index %.1fs, swap %.2fs\n",
		rep.Keys, f.table, rep.PartsLoaded, rep.Rows, rep.PartsSkipped, rep.LoadSeconds, rep.IndexSeconds, rep.PublishSeconds)
	return nil
}

// restore restores the checkpoint into the table and returns the report and
// the index's memory plan (restore and drill --restore-to).
func (f *restoreFlags) restore(ctx context.Context, e *env, mode pgvector.Mode, iopts store.IndexOptions, progress func(store.Progress)) (store.Report, pgvector.IndexPlan, error) {
	src, m, closeStore, err := openCheckpoint(ctx, f.checkpoint)
	if err != nil {
		return store.Report{}, pgvector.IndexPlan{}, err
	}
	defer closeStore()
	sink, err := pgvector.Open(ctx, pgvector.Config{DSN: f.to, Table: f.table, Mode: mode,
		Notice: func(msg string) { e.logger.Warn("postgres: " + msg) }, FieldName: flagName})
	if err != nil {
		return store.Report{}, pgvector.IndexPlan{}, err
	}
	defer sink.Close(context.Background())
	rep, err := store.Restore(ctx, src, m, sink, store.Options{Metric: f.metric, Index: iopts, Progress: progress, Logger: e.logger})
	if err != nil {
		if errors.Is(err, pgvector.ErrTableExists) || errors.Is(err, pgvector.ErrTableMismatch) {
			return rep, sink.LastPlan, &usageError{err}
		}
		return rep, sink.LastPlan, err
	}
	return rep, sink.LastPlan, nil
}

// openCheckpoint opens a checkpoint location and reads its manifest.
func openCheckpoint(ctx context.Context, raw string) (checkpoint.Store, checkpoint.Manifest, func(), error) {
	loc, err := parseStoreLocation("--checkpoint", raw)
	if err != nil {
		return nil, checkpoint.Manifest{}, nil, err
	}
	src, closeStore, err := loc.open(ctx)
	if err != nil {
		return nil, checkpoint.Manifest{}, nil, err
	}
	m, err := readAnyManifest(ctx, src)
	if err != nil {
		_ = closeStore()
		return nil, m, nil, usagef("--checkpoint %q: %v", loc, err)
	}
	return src, m, func() { _ = closeStore() }, nil
}

// restoreProgress prints restore progress on w: a line per part every few
// seconds and per index phase change (table), or JSON lines (json).
func restoreProgress(w io.Writer, format string) func(store.Progress) {
	var last time.Time
	var lastPhase string
	return func(p store.Progress) {
		now := time.Now()
		done := p.Phase == "load" && p.PartsDone == p.PartsTotal
		if p.Phase+p.IndexPhase == lastPhase && now.Sub(last) < 2*time.Second && !done {
			return
		}
		last, lastPhase = now, p.Phase+p.IndexPhase
		if format == "json" {
			b, _ := json.Marshal(struct {
				Progress store.Progress `json:"progress"`
			}{p})
			fmt.Fprintf(w, "%s\n", b)
			return
		}
		switch p.Phase {
		case "load":
			fmt.Fprintf(w, "load: %d/%d parts, %d rows, %s\n", p.PartsDone, p.PartsTotal, p.Rows, p.Elapsed.Round(time.Second))
		case "index":
			fmt.Fprintf(w, "index: %s %d/%d tuples, %s\n", p.IndexPhase, p.TuplesDone, p.TuplesTotal, p.Elapsed.Round(time.Second))
		default:
			fmt.Fprintf(w, "%s, %s\n", p.Phase, p.Elapsed.Round(time.Second))
		}
	}
}

// parseBytes parses a size such as 512MB, 4GB or 65536kB ("" is 0), as
// the API's restore jobs do ([jobs.ParseSize]).
func parseBytes(flagName, s string) (int64, error) {
	n, err := jobs.ParseSize(s)
	if err != nil {
		return 0, usagef("%s %q: want a size such as 512MB or 4GB", flagName, s)
	}
	return n, nil
}

// scrubSecret removes secret from err's text (and so from what exitCode prints).
func scrubSecret(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &scrubbedError{strings.ReplaceAll(err.Error(), secret, "xxxxx"), err}
}

// scrubbedError is an error whose text has a secret removed; it unwraps to
// the original, so exit codes are kept.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
