package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// Exit codes of rebuild that runbooks branch on (README "Exit codes").
const (
	exitBudget     = 3 // stopped before spending past --budget-usd; resumable
	exitIncomplete = 4 // verify: coverage incomplete
	exitDrill      = 5 // drill: lost chunks or a wrong prediction
)

// rebuildFlags are the flags of rebuild (the drill passes the same to its child).
type rebuildFlags struct {
	corpus        corpusFlags
	provider      providerFlags
	model         string
	pricingFile   string
	dimensions    int
	out           string
	concurrency   int
	batchSize     int
	partRows      int
	flushInterval time.Duration
	budgetUSD     string
	force         bool
	deep          bool
	format        string
	progressEvery time.Duration
	shard         string
	corpusChanged bool
	dryRun        bool
	batch         batchFlags
}

func runRebuild(ctx context.Context, e *env, args []string) error {
	fs, f := newRebuildFlagSet(e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f.corpus.setOverlapDefault(fs)
	f.corpus.filtersGiven = f.corpus.filter.given(fs)
	return f.run(ctx, e, fs.Args())
}

// newRebuildFlagSet declares rebuild's flags. Tests use it to check that the
// Kubernetes manifests pass only flags rebuild accepts.
func newRebuildFlagSet(e *env) (*flag.FlagSet, *rebuildFlags) {
	fs := newFlagSet(e, "rebuild", "rebuild [flags] --out DIR [PATH...]\n\nEmbeds every chunk of the corpus at PATH into Parquet parts under DIR, rate-limited, and resumes when DIR\nalready holds a checkpoint; with no PATH, reads the corpus roots and filters DIR's manifest records. Exit 0 complete, 3 budget reached,\n130 interrupted (both resumable), 1 error, 2 bad usage.")
	f := &rebuildFlags{}
	f.corpus.register(fs)
	f.provider.register(fs)
	f.batch.register(fs)
	fs.StringVar(&f.model, "model", pricing.DefaultModel, "embedding model")
	fs.StringVar(&f.pricingFile, "pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	fs.IntVar(&f.dimensions, "dimensions", 0, "vector dimensions (default: the model's)")
	fs.StringVar(&f.out, "out", "", "checkpoint directory, or object storage s3://BUCKET/PREFIX, gs://..., azblob://... (created if needed; resumed if it holds a checkpoint)")
	fs.IntVar(&f.concurrency, "concurrency", planner.DefaultConcurrency, "requests in flight at once (lowered on 429)")
	fs.IntVar(&f.batchSize, "batch-size", 0, "inputs per request (default: the model's maximum)")
	fs.IntVar(&f.partRows, "part-rows", planner.DefaultPartRows, "rows per committed Parquet part (smaller loses less on a crash)")
	fs.DurationVar(&f.flushInterval, "flush-interval", planner.DefaultFlushInterval, "commit buffered rows at least this often")
	fs.StringVar(&f.budgetUSD, "budget-usd", "", "stop cleanly before spending more than this many dollars, e.g. 25.00")
	fs.BoolVar(&f.force, "force", false, "resume into a checkpoint whose chunking, encoding or --plain-text differs, embedding again the chunks whose text differs (never another model or dimensions: use another --out)")
	fs.BoolVar(&f.deep, "deep", false, "before resuming, check every row of the checkpoint as verify --deep does (reads every byte); rows that fail are embedded again")
	fs.StringVar(&f.format, "format", "table", "final summary on stdout: table or json")
	fs.DurationVar(&f.progressEvery, "progress-interval", 2*time.Second, "progress report interval (a bar on a terminal, JSON lines on stderr otherwise)")
	fs.BoolVar(&f.corpusChanged, "corpus-changed", false, "resume although PATH or the filters differ from the corpus the checkpoint records (moved or changed); the manifest then records the new ones")
	fs.BoolVar(&f.dryRun, "dry-run", false, "check the key, --out, the manifest and the corpus, print the plan, and stop: nothing is sent or written")
	fs.StringVar(&f.shard, "shard", "", "embed only shard i of N (i/N, documents by FNV-1a of doc_id); default from JOB_COMPLETION_INDEX/JOB_COMPLETIONS")
	return fs, f
}

// spec checks the flags and returns the rebuild's spec, model and parsed --out.
func (f *rebuildFlags) spec(e *env, paths []string) (planner.RebuildSpec, pricing.Model, storeLocation, error) {
	var spec planner.RebuildSpec
	if f.out == "" {
		return spec, pricing.Model{}, storeLocation{}, &usageError{errNoOut}
	}
	loc, err := parseStoreLocation("--out", f.out)
	if err != nil {
		return spec, pricing.Model{}, storeLocation{}, err
	}
	if err := f.batch.check(); err != nil {
		return spec, pricing.Model{}, storeLocation{}, err
	}
	if f.format != "table" && f.format != "json" {
		return spec, pricing.Model{}, storeLocation{}, usagef("--format %q: want table or json", f.format)
	}
	cat, err := loadCatalog(f.pricingFile)
	if err != nil {
		return spec, pricing.Model{}, storeLocation{}, err
	}
	model, err := cat.Lookup(f.model)
	if err != nil {
		return spec, pricing.Model{}, storeLocation{}, usagef("--model: %v", err)
	}
	if err := checkBatchSize(f.batchSize, model); err != nil {
		return spec, pricing.Model{}, storeLocation{}, err
	}
	if !model.Exact() {
		return spec, pricing.Model{}, storeLocation{}, usagef("--model %s: its tokenizer is not available offline, so chunks cannot be cut and checked exactly; rebuild supports cl100k_base models", model.Name)
	}
	var budget pricing.Micros
	if f.budgetUSD != "" {
		if budget, err = pricing.ParseUSD(f.budgetUSD); err != nil || budget == 0 {
			return spec, pricing.Model{}, storeLocation{}, usagef("--budget-usd %q: want a positive dollar amount such as 25 or 0.50", f.budgetUSD)
		}
	}
	shardFlag := f.shard
	if shardFlag == "" && e.getenv("JOB_COMPLETION_INDEX") != "" {
		// Kubernetes sets the index only; the count comes from the manifest.
		if e.getenv("JOB_COMPLETIONS") == "" {
			return spec, pricing.Model{}, storeLocation{}, usagef("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not: set it to the Job's completions (deploy/kubernetes/job.yaml does), or pass --shard i/N")
		}
		shardFlag = e.getenv("JOB_COMPLETION_INDEX") + "/" + e.getenv("JOB_COMPLETIONS")
	}
	si, sn, err := parseShard(shardFlag)
	if err != nil {
		return spec, pricing.Model{}, storeLocation{}, err
	}
	spec = planner.RebuildSpec{
		Paths: paths, Corpus: f.corpus.options(), Model: model, Dimensions: f.dimensions,
		ChunkTokens: f.corpus.chunkTokens, ChunkOverlap: f.corpus.chunkOverlap,
		Limits:   planner.Limits{RPM: f.provider.rpm, TPM: f.provider.tpm, Concurrency: f.concurrency, BatchSize: f.batchSize},
		PartRows: f.partRows, FlushInterval: f.flushInterval, Budget: budget, Force: f.force, Deep: f.deep,
		Shard: checkpoint.Shard{Index: si, Count: sn}, Jobs: f.corpus.jobs,
	}
	if err := spec.Validate(); err != nil {
		return spec, model, storeLocation{}, usageOfInvalid(err)
	}
	return spec, model, loc, nil
}

func (f *rebuildFlags) run(ctx context.Context, e *env, args []string) error {
	if f.out == "" {
		return &usageError{errNoOut}
	}
	paths, filters, err := f.corpusOf(ctx, e, args)
	if err != nil {
		return err
	}
	spec, model, loc, err := f.spec(e, paths)
	if err != nil {
		return err
	}
	spec.Corpus.Filters = filters
	spec.CheckCorpus = func(c planner.CorpusSummary) error {
		if f.corpus.allowEmpty {
			return nil
		}
		return emptyCorpusError(c, spec.Shard.Count > 1)
	}
	if err := preflight(ctx, e, f, spec, loc); err != nil {
		return err
	}
	if f.dryRun {
		return dryRun(ctx, e, f, spec, loc)
	}
	emb, err := f.provider.build(e, model, f.dimensions, f.concurrency, e.logger)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	if loc.isLocal() {
		if err := os.MkdirAll(f.out, 0o755); err != nil {
			return fmt.Errorf("creating --out %q: %w", f.out, err)
		}
	}
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	rb := &planner.Rebuilder{Embedder: emb, Tokenizer: tok, Store: store, Logger: e.logger,
		ProgressInterval: f.progressEvery, OnProgress: progressPrinter(e.stderr),
		OnStopping: func(_ error, inFlight int) {
			if ctx.Err() != nil { // a signal, not the budget or a failure
				fmt.Fprintf(e.stderr, "\nstopping: waiting for %d requests in flight (Ctrl-C again to abort)\n", inFlight)
			}
		}}
	var sum *planner.Summary
	if f.batch.mode == planner.ModeSync {
		sum, err = rb.Run(ctx, spec)
	} else {
		sum, err = f.runBatchMode(ctx, e, rb, spec, model)
	}
	if sum != nil {
		if werr := writeSummary(e.stdout, sum, f.format); werr != nil && err == nil {
			err = werr
		}
	}
	switch {
	case errors.Is(err, planner.ErrBudgetExceeded):
		return &exitCodeError{exitBudget, err}
	case errors.Is(err, planner.ErrInterrupted):
		return &exitCodeError{exitInterrupted, err}
	case errors.Is(err, checkpoint.ErrLocked):
		return &usageError{fmt.Errorf("--out %q: %w", loc, err)} // names the holder
	case errors.Is(err, checkpoint.ErrManifestMismatch):
		return &usageError{fmt.Errorf("--out %q: %w", loc, err)} // the error names the ways out
	}
	return err
}

// corpusOf is the corpus to read: PATH, or the roots the checkpoint at --out
// records (checkpointCorpus).
func (f *rebuildFlags) corpusOf(ctx context.Context, e *env, args []string) ([]string, corpus.Filters, error) {
	loc, err := parseStoreLocation("--out", f.out)
	if err != nil {
		return nil, corpus.Filters{}, err
	}
	var m *checkpoint.Manifest
	if !loc.isLocal() || loc.exists() == nil {
		store, closeStore, err := loc.open(ctx)
		if err != nil {
			return nil, corpus.Filters{}, err
		}
		m, err = readManifestIfAny(ctx, store)
		closeStore()
		if err != nil {
			return nil, corpus.Filters{}, usagef("--out %q: %v", loc, err)
		}
	}
	return checkpointCorpus(e.stderr, args, m, f.corpus.filter.filters(), f.corpus.filtersGiven, f.corpusChanged)
}

func writeSummary(w io.Writer, s *planner.Summary, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "Rebuild %s: %d chunks embedded (%d already checkpointed), %d tokens billed, %d requests, $%s, %d parts, %.1fs\n",
		s.Stopped, s.EmbeddedChunks, s.ReusedChunks, s.BilledTokens, s.Requests, s.Cost, s.Parts, s.ElapsedSeconds)
	if s.ElapsedSeconds > 0 && s.CheckpointWaitSeconds > 0.2*s.ElapsedSeconds {
		fmt.Fprintf(w, "The rebuild waited %.1fs (%.0f%% of its time) for checkpoint commits: the store at --out, not the provider, held it back.\n",
			s.CheckpointWaitSeconds, 100*s.CheckpointWaitSeconds/s.ElapsedSeconds)
	}
	if s.CheckpointCost != s.Cost {
		fmt.Fprintf(w, "The checkpoint has spent $%s over every run (the budget caps this).\n", s.CheckpointCost)
	}
	if s.UsageMismatches > 0 {
		fmt.Fprintf(w, "The provider's usage disagreed with our count on %d requests (it reported %d tokens, we counted %d); settled at the larger sane value: %d.\n",
			s.UsageMismatches, s.ProviderTokens, s.CountedTokens, s.BilledTokens)
	}
	if s.Estimate != nil {
		fmt.Fprintf(w, "Planned: %d chunks, %d tokens, %d requests, $%s\n", s.PlannedChunks, s.PlannedTokens, s.PlannedRequests, s.PlannedCost)
	}
	writeBatchSummary(w, s)
	if len(s.RemovedTempFiles) > 0 {
		fmt.Fprintf(w, "Removed %d unfinished commits left by a crash.\n", len(s.RemovedTempFiles))
	}
	if len(s.UnreadableParts) > 0 {
		fmt.Fprintf(w, "Moved aside unreadable parts (their chunks were embedded again): %s\n", strings.Join(s.UnreadableParts, ", "))
	}
	return nil
}
