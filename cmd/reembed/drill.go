package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
	"github.com/reembed/reembed/store/pgvector"
)

// drillKeyEnv carries the drill simulator's one-off API key to the child.
const drillKeyEnv = "REEMBED_DRILL_API_KEY"

// drillFlags are drill's flags.
type drillFlags struct {
	cf          corpusFlags
	model       string
	batch       int
	latency     time.Duration
	concurrency int
	keep        bool
	format      string
	mode        string
	rto         time.Duration
	restore     drillRestoreFlags // drill_restore.go
}

func parseDrillFlags(e *env, args []string) (*drillFlags, []string, error) {
	fs := newFlagSet(e, "drill", "drill [flags] [PATH...]\n\nProves a rebuild end to end on PATH (default: the bundled sample corpus) with the simulated provider, in a\ntemporary directory: estimate, rebuild in a child process, SIGKILL it part way, resume, verify, and\ncompare predicted against actual tokens, requests, cost and duration. With --restore-to, also restore the\ncheckpoint into pgvector and verify the table, comparing predicted against actual embed, load, index and\nverify seconds. Exit 0 pass, 5 fail.")
	f := &drillFlags{}
	f.cf.register(fs)
	fs.StringVar(&f.model, "model", pricing.DefaultModel, "embedding model")
	fs.IntVar(&f.batch, "batch-size", 64, "inputs per request (small, so that the kill lands part way)")
	fs.DurationVar(&f.latency, "latency", 50*time.Millisecond, "simulated provider latency per request")
	fs.IntVar(&f.concurrency, "concurrency", 2, "requests in flight")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (its path is printed) and the --restore-to table")
	fs.StringVar(&f.format, "format", "table", "output format: table, or json (the result on stdout, the steps on stderr)")
	fs.StringVar(&f.mode, "mode", planner.ModeSync, "rebuild mode to drill: sync, batch (the simulator's Batch API, killed during the batch wait) or auto")
	fs.DurationVar(&f.rto, "rto", 48*time.Hour, "--mode auto: the RTO passed to the rebuild")
	f.restore.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if f.format != "table" && f.format != "json" {
		return nil, nil, usagef("--format %q: want table or json", f.format)
	}
	switch f.mode {
	case planner.ModeSync, planner.ModeBatch, planner.ModeAuto:
	default:
		return nil, nil, usagef("--mode %q: want sync, batch or auto", f.mode)
	}
	if err := f.restore.check(f.mode); err != nil {
		return nil, nil, err
	}
	f.cf.setOverlapDefault(fs)
	return f, fs.Args(), nil
}

func runDrill(ctx context.Context, e *env, args []string) error {
	f, args, err := parseDrillFlags(e, args)
	if err != nil {
		return err
	}
	d := &syncDrill{e: e, f: f, stdout: e.stdout}
	if f.format == "json" {
		d.stdout = e.stderr
	}
	cleanup, err := d.setup(args)
	if err != nil {
		return err
	}
	defer cleanup()
	if f.mode != planner.ModeSync {
		if d.m.BatchPricePer1M == nil {
			return usagef("--mode %s: %s has no batch price", f.mode, d.m.Name)
		}
		bd := &batchDrill{mode: f.mode, rto: f.rto, m: d.m, cf: f.cf, paths: d.paths, out: d.out, batch: f.batch}
		return bd.run(ctx, e)
	}
	return scrubSecret(d.run(ctx), pgvector.Password(f.restore.est.to))
}

// syncDrill is the drill of --mode sync. Its steps, in the order run calls them:
//
//  1. setup: the model, the corpus (the bundled sample by default) and the temporary directory;
//  2. startSimulator: the simulated provider on loopback, with a one-off key;
//  3. predict: the estimate (counting the restore when --restore-to);
//  4. killRebuild: a rebuild in a child process, SIGKILLed once a part is committed;
//  5. resume: the same rebuild again, to completion;
//  6. verify: the checkpoint against the corpus, and its totals and the ledger's;
//  7. restore (--restore-to, drill_restore.go): restore into pgvector, then verify --store;
//  8. report: predicted against actual, the problems, the verdict.
type syncDrill struct {
	e      *env
	f      *drillFlags
	stdout io.Writer // the steps: stdout, or stderr with --format json

	m     pricing.Model
	paths []string
	dir   string // the temporary directory
	out   string // the checkpoint

	sim     *embedder.Simulator
	key     string
	baseURL string
	tok     tokenizer.Tokenizer

	est  *planner.Estimate
	pred planner.ModelEstimate

	started      time.Time
	ledgerAtKill embedder.LedgerTotals
	partsAtKill  int
	actualDur    time.Duration

	verified *checkpoint.Report
	rows     int
	tokens   int64

	restore *drillRestoreResult
}

func (d *syncDrill) run(ctx context.Context) error {
	stop, err := d.startSimulator()
	if err != nil {
		return err
	}
	defer stop()
	steps := []func(context.Context) error{d.predict, d.killRebuild, d.resume, d.verify, d.restoreStep}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return d.report()
}

// setup looks the model up, finds the corpus and makes the temporary
// directory; cleanup removes what it made.
func (d *syncDrill) setup(args []string) (cleanup func(), err error) {
	cat, err := loadCatalog("")
	if err != nil {
		return nil, err
	}
	if d.m, err = cat.Lookup(d.f.model); err != nil {
		return nil, usagef("--model: %v", err)
	}
	paths, removeSample, err := corpusPaths(args)
	if err != nil {
		return nil, err
	}
	d.paths = paths
	if len(args) == 0 {
		fmt.Fprintln(d.stdout, "Drill: using the bundled sample corpus (give a PATH to drill yours)")
	}
	if d.dir, err = os.MkdirTemp("", "reembed-drill-"); err != nil {
		removeSample()
		return nil, fmt.Errorf("creating the drill directory: %w", err)
	}
	d.out = filepath.Join(d.dir, "checkpoint")
	if d.f.keep {
		fmt.Fprintf(d.stdout, "Drill directory: %s\n", d.dir)
		return removeSample, nil
	}
	return func() { os.RemoveAll(d.dir); removeSample() }, nil
}

// startSimulator serves the simulated provider on loopback with a one-off key.
func (d *syncDrill) startSimulator() (stop func(), err error) {
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	d.key = hex.EncodeToString(keyBytes)
	if d.sim, err = newModelSimulator(d.m, d.f.latency, embedder.APIKey(d.key), nil); err != nil {
		return nil, err
	}
	url, stopServer, err := serveLoopback(context.Background(), d.sim)
	if err != nil {
		d.sim.Close()
		return nil, fmt.Errorf("starting the drill simulator: %w", err)
	}
	d.baseURL = url
	return func() { stopServer(); d.sim.Close() }, nil
}

// predict estimates the rebuild (and the restore, with --restore-to).
func (d *syncDrill) predict(ctx context.Context) error {
	var err error
	if d.tok, err = tokenizer.Default(); err != nil {
		return err
	}
	target, err := d.f.restore.target(ctx, d.e, d.m.DefaultDimensions)
	if err != nil {
		return err
	}
	cf := d.f.cf
	limits := planner.Limits{Concurrency: d.f.concurrency, Latency: d.f.latency, BatchSize: d.f.batch}
	d.est, err = planner.Run(ctx, d.tok, planner.EstimateRequest{Paths: d.paths, Corpus: cf.options(), Models: []pricing.Model{d.m},
		ChunkTokens: cf.chunkTokens, ChunkOverlap: cf.chunkOverlap, Limits: limits, Jobs: cf.jobs, Restore: target})
	if err != nil {
		return fmt.Errorf("drill estimate: %w", err)
	}
	if err := drillCorpusCheck(d.est.Corpus, cf.allowEmpty); err != nil {
		return err
	}
	d.pred = d.est.Estimates[0]
	fmt.Fprintf(d.stdout, "Drill: %d documents, %s, simulated provider at %s\n", d.est.Corpus.Documents, d.m.Name, d.baseURL)
	return nil
}

// rebuildCmd is the child rebuild, the same for the killed run and the resume.
func (d *syncDrill) rebuildCmd(ctx context.Context) *exec.Cmd {
	exe, _ := os.Executable() // checked by killRebuild
	cf := d.f.cf
	args := []string{"rebuild", "--provider", "openai", "--base-url", d.baseURL, "--api-key-env", drillKeyEnv,
		"--model", d.m.Name, "--out", d.out, "--batch-size", strconv.Itoa(d.f.batch), "--part-rows", strconv.Itoa(d.f.batch),
		"--concurrency", strconv.Itoa(d.f.concurrency), "--rpm", "0", "--tpm", "0", "--encoding-format", "base64",
		"--progress-interval", "1h", "--format", "json"}
	args = append(args, cf.childArgs()...)
	args = append(args, "--allow-empty") // checked by predict, on the same corpus
	args = append(args, d.paths...)
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), drillKeyEnv+"="+d.key)
	return cmd
}

// killRebuild starts the rebuild in a child and SIGKILLs it once a part is committed.
func (d *syncDrill) killRebuild(ctx context.Context) error {
	if _, err := os.Executable(); err != nil {
		return fmt.Errorf("finding the reembed binary: %w", err)
	}
	d.started = time.Now()
	committed := func() bool {
		parts, _ := filepath.Glob(filepath.Join(d.out, "part-*.parquet"))
		return len(parts) > 0
	}
	if err := killChildWhen(ctx, d.rebuildCmd(ctx), committed, ": use a larger corpus or --latency"); err != nil {
		return err
	}
	d.ledgerAtKill = d.sim.Ledger().Totals
	partsAtKill, _ := filepath.Glob(filepath.Join(d.out, "part-*.parquet"))
	d.partsAtKill = len(partsAtKill)
	fmt.Fprintf(d.stdout, "Killed the rebuild (SIGKILL) after %d committed parts and %d billed requests\n", d.partsAtKill, d.ledgerAtKill.Billed)
	return nil
}

// killChildWhen starts the drill's rebuild child and SIGKILLs it as soon as
// ready reports true (checked every 5 ms), then waits for it to exit. A
// child that ends first fails the drill (hint says what to change); ctx
// ending kills the child.
func killChildWhen(ctx context.Context, child *exec.Cmd, ready func() bool, hint string) error {
	var stderr strings.Builder
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting the rebuild child: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return &exitCodeError{exitDrill, fmt.Errorf("drill: the rebuild ended before it could be killed (%v)%s\n%s", err, hint, stderr.String())}
		case <-tick.C:
			if ready() {
				child.Process.Signal(syscall.SIGKILL)
				<-exited
				return nil
			}
		case <-ctx.Done():
			child.Process.Kill()
			return ctx.Err()
		}
	}
}

// resume runs the rebuild again, to completion.
func (d *syncDrill) resume(ctx context.Context) error {
	second := d.rebuildCmd(ctx)
	var secondErr strings.Builder
	second.Stderr = &secondErr
	if err := second.Run(); err != nil {
		return &exitCodeError{exitDrill, fmt.Errorf("drill: the resumed rebuild failed: %v\n%s", err, secondErr.String())}
	}
	d.actualDur = time.Since(d.started)
	return nil
}

// verify checks the checkpoint against the corpus and adds up what was checkpointed.
func (d *syncDrill) verify(ctx context.Context) error {
	store := checkpoint.NewDir(d.out)
	cf := d.f.cf
	var err error
	d.verified, err = planner.Verify(ctx, d.tok, store, planner.RebuildSpec{Paths: d.paths, Corpus: cf.options(), Model: d.m,
		ChunkTokens: cf.chunkTokens, ChunkOverlap: cf.chunkOverlap, Jobs: cf.jobs})
	if err != nil {
		return fmt.Errorf("drill verify: %w", err)
	}
	d.rows, d.tokens, err = checkpointTotals(ctx, store)
	return err
}

// paidTwice counts the chunks the ledger billed more than once.
func (d *syncDrill) paidTwice() int {
	twice := 0
	for _, n := range d.sim.Ledger().Inputs {
		if n > 1 {
			twice += n - 1
		}
	}
	return twice
}

// embedDuration is the predicted embedding time, without the restore's terms.
func (d *syncDrill) embedDuration() (string, float64) {
	if r := d.pred.Restore; r != nil {
		return fmtSecs(r.EmbedSeconds), r.EmbedSeconds
	}
	return d.pred.Duration, d.pred.DurationSeconds
}

// printTable prints predicted against actual, and the verify step.
func (d *syncDrill) printTable(w io.Writer, led embedder.Ledger, twice int) {
	pred, rep := d.pred, d.verified
	predDur, _ := d.embedDuration()
	fmt.Fprintf(w, "\n%-10s %14s %14s\n", "", "predicted", "actual")
	fmt.Fprintf(w, "%-10s %14d %14d  (checkpointed chunks)\n", "chunks", pred.Chunks, d.rows)
	fmt.Fprintf(w, "%-10s %14d %14d  (checkpointed; the ledger billed %d, of which %d for %d chunks in flight at the kill)\n",
		"tokens", pred.Tokens, d.tokens, led.Totals.PromptTokens, led.Totals.PromptTokens-d.tokens, twice)
	fmt.Fprintf(w, "%-10s %14d %14d  (billed requests, both runs)\n", "requests", pred.Requests, led.Totals.Billed)
	fmt.Fprintf(w, "%-10s %14s %14s  (ledger: $%s)\n", "cost", "$"+pred.CostUSD.String(), "$"+pricing.Cost(d.tokens, d.m.PricePer1M).String(),
		pricing.Cost(led.Totals.PromptTokens, d.m.PricePer1M))
	fmt.Fprintf(w, "%-10s %14s %14s  (wall time, both runs and the restart)\n", "duration", predDur, d.actualDur.Round(10*time.Millisecond))
	fmt.Fprintf(w, "\nVerify: %d of %d chunks present, %d missing, %d stale, %d duplicate rows\n", rep.Present, rep.Expected, rep.Missing, rep.Stale, rep.Duplicates)
	d.printRestore(w)
}

// problems lists what the drill found wrong.
func (d *syncDrill) problems(led embedder.Ledger, twice int) []string {
	pred, rep := d.pred, d.verified
	actualCost := pricing.Cost(d.tokens, d.m.PricePer1M)
	var problems []string
	if !rep.Complete() || rep.Duplicates > 0 || int64(d.rows) != pred.Chunks {
		problems = append(problems, fmt.Sprintf("coverage: %d missing, %d stale, %d duplicates, %d rows for %d predicted chunks", rep.Missing, rep.Stale, rep.Duplicates, d.rows, pred.Chunks))
	}
	if d.tokens != pred.Tokens {
		problems = append(problems, fmt.Sprintf("predicted %d tokens, checkpointed %d", pred.Tokens, d.tokens))
	}
	if actualCost != pred.CostUSD {
		problems = append(problems, fmt.Sprintf("predicted $%s, checkpointed chunks cost $%s", pred.CostUSD, actualCost))
	}
	if led.Totals.PromptTokens < d.tokens {
		problems = append(problems, fmt.Sprintf("the ledger billed %d tokens, fewer than the %d checkpointed", led.Totals.PromptTokens, d.tokens))
	}
	// Embedded but not committed at the kill: the writer's buffer (< part rows,
	// here one batch), the part committing in the background (one batch), the
	// batches queued for the writer and those in flight.
	batch, conc := d.f.batch, d.f.concurrency
	if bound := 2*batch + (planner.RowsQueue(conc)+conc)*batch; twice > bound {
		problems = append(problems, fmt.Sprintf("%d chunks were paid twice, more than the %d that can be embedded but uncommitted at a kill", twice, bound))
	}
	return append(problems, d.restoreProblems()...)
}

// result is the drill's JSON result.
func (d *syncDrill) result(led embedder.Ledger, twice int, problems []string) drillResult {
	pred, rep := d.pred, d.verified
	_, predSecs := d.embedDuration()
	return drillResult{Passed: len(problems) == 0, Problems: append([]string{}, problems...), Documents: d.est.Corpus.Documents,
		Model: d.m.Name, PartsAtKill: d.partsAtKill, RequestsAtKill: d.ledgerAtKill.Billed,
		Predicted: drillFigures{Chunks: pred.Chunks, Tokens: pred.Tokens, Requests: pred.Requests, CostUSD: pred.CostUSD, DurationSeconds: predSecs},
		Actual: drillFigures{Chunks: int64(d.rows), Tokens: d.tokens, Requests: int64(led.Totals.Billed),
			CostUSD: pricing.Cost(d.tokens, d.m.PricePer1M), DurationSeconds: d.actualDur.Seconds()},
		LedgerTokens: led.Totals.PromptTokens, LedgerCostUSD: pricing.Cost(led.Totals.PromptTokens, d.m.PricePer1M), ChunksPaidTwice: twice,
		Verify:  drillVerify{Expected: rep.Expected, Present: rep.Present, Missing: rep.Missing, Stale: rep.Stale, Duplicates: rep.Duplicates},
		Restore: d.restore}
}

// report prints predicted against actual and the verdict: exit 5 on a problem.
func (d *syncDrill) report() error {
	led := d.sim.Ledger()
	twice := d.paidTwice()
	d.printTable(d.stdout, led, twice)
	problems := d.problems(led, twice)
	if d.f.format == "json" {
		if err := writeJSON(d.e.stdout, d.result(led, twice, problems)); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return &exitCodeError{exitDrill, errors.New("drill FAILED: " + strings.Join(problems, "; "))}
	}
	if d.restore != nil {
		fmt.Fprintf(d.stdout, "Drill PASSED: nothing lost, nothing duplicated, prediction exact; table %s holds exactly the checkpoint.\n", d.restore.Table)
		return nil
	}
	fmt.Fprintln(d.stdout, "Drill PASSED: nothing lost, nothing duplicated, prediction exact.")
	return nil
}

// drillCorpusCheck refuses a corpus with nothing to drill ("0 documents"),
// and one that is empty or mostly skipped unless allowEmpty.
func drillCorpusCheck(c planner.CorpusSummary, allowEmpty bool) error {
	if c.Documents == 0 {
		return &exitCodeError{exitUsage, fmt.Errorf("drill: 0 documents in the corpus (%d files skipped, %d entries excluded by filters): nothing to rebuild", c.SkippedFiles, c.Excluded)}
	}
	if allowEmpty {
		return nil
	}
	return emptyCorpusError(c, false)
}

// checkpointTotals counts the rows and tokens of every committed part.
func checkpointTotals(ctx context.Context, store checkpoint.Store) (rows int, tokens int64, err error) {
	files, err := store.List(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("listing checkpoint: %w", err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".parquet") {
			continue
		}
		r, err := store.Open(ctx, f.Name)
		if err != nil {
			return 0, 0, fmt.Errorf("opening part %q: %w", f.Name, err)
		}
		rs, err := checkpoint.ReadRows(r, r.Size())
		r.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("reading part %q: %w", f.Name, err)
		}
		for _, row := range rs {
			rows++
			tokens += int64(row.Tokens)
		}
	}
	return rows, tokens, nil
}
