package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
)

// storeVerifyRequested reports whether verify was asked to check a live
// store (--store), which verify_store.go handles with its own flags.
func storeVerifyRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "store" {
			return true
		}
	}
	return false
}

// runVerifyStore is `verify --store`: it compares a live pgvector table with
// the checkpoint it was restored from.
func runVerifyStore(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "verify", "verify --checkpoint DIR --store postgres://USER@HOST/DB [flags]\n\n"+
		"Compares the live table with the checkpoint: row count, missing, extra and stale keys (sha256), a sample\n"+
		"of vectors compared exactly, and the index: K stored vectors queried, each must return its own row first\n"+
		"(recall@1, latency p50/p99). Exit 0 when everything matches, 4 otherwise, 1 error, 2 bad usage.")
	dir := fs.String("checkpoint", "", "checkpoint the table was restored from: a directory or s3://, gs://, azblob:// URL")
	dsn := fs.String("store", "", "live PostgreSQL with pgvector: postgres://USER[:PASSWORD]@HOST:PORT/DB (password also from PGPASSWORD)")
	table := fs.String("table", "reembed_chunks", "restored table, TABLE or SCHEMA.TABLE")
	metric := fs.String("metric", "cosine", "distance of the index: cosine, l2 or ip")
	sample := fs.Int("sample", 100, "vectors compared element by element with the checkpoint's")
	queries := fs.Int("index-queries", 20, "stored vectors queried through the index (0 skips the index check)")
	minRecall := fs.Float64("min-recall", 0.9, "lowest recall@1 of the index check that passes")
	format := fs.String("format", "table", "output format: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	secret := pgvector.Password(*dsn)
	switch {
	case *dir == "":
		return usagef("--checkpoint is required")
	case *format != "table" && *format != "json":
		return usagef("--format %q: want table or json", *format)
	case *sample <= 0:
		return usagef("--sample %d: want at least 1", *sample)
	}
	iq := *queries
	if iq == 0 {
		iq = -1
	}
	rep, err := verifyStore(ctx, e, *dir, *dsn, *table, *metric, store.VerifyOptions{Sample: *sample, IndexQueries: iq})
	if err != nil {
		return scrubSecret(err, secret)
	}
	recallOK := rep.IndexQueries == 0 || rep.RecallAt1 >= *minRecall
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Complete bool `json:"complete"`
			store.VerifyReport
		}{rep.Complete() && recallOK, rep}); err != nil {
			return err
		}
	} else {
		printStoreReport(e, *table, rep)
	}
	if !rep.Complete() {
		return &exitCodeError{exitIncomplete, fmt.Errorf("table %s differs from the checkpoint: %d missing, %d extra, %d stale, %d of %d sampled vectors differ (run restore again)",
			*table, rep.Missing, rep.Extra, rep.Stale, rep.VectorsDiffering, rep.VectorsSampled)}
	}
	if !recallOK {
		return &exitCodeError{exitIncomplete, fmt.Errorf("index check: recall@1 %.2f below --min-recall %.2f (rebuild the index, or raise hnsw.ef_search)", rep.RecallAt1, *minRecall)}
	}
	return nil
}

func verifyStore(ctx context.Context, e *env, dir, dsn, table, metric string, opts store.VerifyOptions) (store.VerifyReport, error) {
	if dsn == "" {
		return store.VerifyReport{}, usagef("--store is required: postgres://USER@HOST:PORT/DB")
	}
	src, _, closeStore, err := openCheckpoint(ctx, dir)
	if err != nil {
		return store.VerifyReport{}, err
	}
	defer closeStore()
	sink, err := pgvector.Open(ctx, pgvector.Config{DSN: dsn, Table: table})
	if err != nil {
		return store.VerifyReport{}, err
	}
	defer sink.Close(context.Background())
	if err := sink.Attach(ctx, metric); err != nil {
		return store.VerifyReport{}, err
	}
	if sink.Half() {
		opts.Round = func(v []float32) []float32 {
			out := make([]float32, len(v))
			for i, f := range v {
				out[i] = pgvector.Float32(pgvector.Float16(f))
			}
			return out
		}
	}
	return store.Verify(ctx, src, sink, opts)
}

func printStoreReport(e *env, table string, rep store.VerifyReport) {
	fmt.Fprintf(e.stdout, "Table %s: %d rows for %d checkpoint keys: %d present, %d missing, %d extra, %d stale\n",
		table, rep.Rows, rep.Expected, rep.Present, rep.Missing, rep.Extra, rep.Stale)
	fmt.Fprintf(e.stdout, "Vectors: %d sampled, %d differ\n", rep.VectorsSampled, rep.VectorsDiffering)
	if rep.IndexQueries > 0 {
		fmt.Fprintf(e.stdout, "Index: %d queries, recall@1 %.2f, latency p50 %.1f ms, p99 %.1f ms\n", rep.IndexQueries, rep.RecallAt1, rep.LatencyP50, rep.LatencyP99)
	}
	for _, ks := range []struct {
		kind string
		keys []checkpoint.Key
	}{{"missing", rep.MissingKeys}, {"extra", rep.ExtraKeys}, {"stale", rep.StaleKeys}, {"vector differs", rep.DifferingKeys}} {
		for _, k := range ks.keys {
			fmt.Fprintf(e.stdout, "  %s: %s\n", ks.kind, k)
		}
	}
}
