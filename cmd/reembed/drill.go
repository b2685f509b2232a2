package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
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
)

// drillKeyEnv carries the drill simulator's one-off API key to the child.
const drillKeyEnv = "REEMBED_DRILL_API_KEY"

func runDrill(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "drill", "drill [flags] [PATH...]\n\nProves a rebuild end to end on PATH (default: the bundled sample corpus) with the simulated provider, in a\ntemporary directory: estimate, rebuild in a child process, SIGKILL it part way, resume, verify, and\ncompare predicted against actual tokens, requests, cost and duration. Exit 0 pass, 5 fail.")
	var cf corpusFlags
	cf.register(fs)
	model := fs.String("model", pricing.DefaultModel, "embedding model")
	batch := fs.Int("batch-size", 64, "inputs per request (small, so that the kill lands part way)")
	latency := fs.Duration("latency", 50*time.Millisecond, "simulated provider latency per request")
	concurrency := fs.Int("concurrency", 2, "requests in flight")
	keep := fs.Bool("keep", false, "keep the temporary directory (its path is printed)")
	format := fs.String("format", "table", "output format: table, or json (the result on stdout, the steps on stderr)")
	mode := fs.String("mode", planner.ModeSync, "rebuild mode to drill: sync, batch (the simulator's Batch API, killed during the batch wait) or auto")
	rto := fs.Duration("rto", 48*time.Hour, "--mode auto: the RTO passed to the rebuild")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	stdout := e.stdout
	if *format == "json" {
		stdout = e.stderr
	}
	cf.setOverlapDefault(fs)
	cat, err := loadCatalog("")
	if err != nil {
		return err
	}
	m, err := cat.Lookup(*model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	paths, cleanup, err := corpusPaths(fs.Args())
	if err != nil {
		return err
	}
	defer cleanup()
	if len(fs.Args()) == 0 {
		fmt.Fprintln(stdout, "Drill: using the bundled sample corpus (give a PATH to drill yours)")
	}
	dir, err := os.MkdirTemp("", "reembed-drill-")
	if err != nil {
		return fmt.Errorf("creating the drill directory: %w", err)
	}
	if *keep {
		fmt.Fprintf(stdout, "Drill directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	out := filepath.Join(dir, "checkpoint")
	switch *mode {
	case planner.ModeSync:
	case planner.ModeBatch, planner.ModeAuto:
		if m.BatchPricePer1M == nil {
			return usagef("--mode %s: %s has no batch price", *mode, m.Name)
		}
		d := &batchDrill{mode: *mode, rto: *rto, m: m, cf: cf, paths: paths, out: out, batch: *batch}
		return d.run(ctx, e)
	default:
		return usagef("--mode %q: want sync, batch or auto", *mode)
	}

	// The provider: a simulator on loopback with a one-off key.
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := hex.EncodeToString(keyBytes)
	sim, err := newModelSimulator(m, *latency, embedder.APIKey(key), nil)
	if err != nil {
		return err
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the drill simulator: %w", err)
	}
	srv := &http.Server{Handler: sim}
	go srv.Serve(ln)
	defer srv.Close()
	baseURL := "http://" + ln.Addr().String() + "/v1"

	// 1. Predict.
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	limits := planner.Limits{Concurrency: *concurrency, Latency: *latency, BatchSize: *batch}
	est, err := planner.Run(ctx, tok, planner.EstimateRequest{Paths: paths, Corpus: cf.options(), Models: []pricing.Model{m},
		ChunkTokens: cf.chunkTokens, ChunkOverlap: cf.chunkOverlap, Limits: limits, Jobs: cf.jobs})
	if err != nil {
		return fmt.Errorf("drill estimate: %w", err)
	}
	if err := drillCorpusCheck(est.Corpus, cf.allowEmpty); err != nil {
		return err
	}
	pred := est.Estimates[0]
	fmt.Fprintf(stdout, "Drill: %d documents, %s, simulated provider at %s\n", est.Corpus.Documents, m.Name, baseURL)

	// 2. Rebuild in a child process, and SIGKILL it once a part is committed.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the reembed binary: %w", err)
	}
	childArgs := []string{"rebuild", "--provider", "openai", "--base-url", baseURL, "--api-key-env", drillKeyEnv,
		"--model", m.Name, "--out", out, "--batch-size", strconv.Itoa(*batch), "--part-rows", strconv.Itoa(*batch),
		"--concurrency", strconv.Itoa(*concurrency), "--rpm", "0", "--tpm", "0", "--encoding-format", "base64",
		"--chunk-tokens", strconv.Itoa(cf.chunkTokens), "--chunk-overlap", strconv.Itoa(cf.chunkOverlap),
		"--text-field", cf.textField, "--id-field", cf.idField, "--progress-interval", "1h", "--format", "json"}
	if cf.plainText {
		childArgs = append(childArgs, "--plain-text")
	}
	childArgs = append(childArgs, cf.filter.args()...)
	childArgs = append(childArgs, "--allow-empty") // checked above, on the same corpus
	childArgs = append(childArgs, paths...)
	child := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, exe, childArgs...)
		cmd.Env = append(os.Environ(), drillKeyEnv+"="+key)
		return cmd
	}
	started := time.Now()
	first := child()
	var firstErr strings.Builder
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		return fmt.Errorf("starting the rebuild child: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	killed := false
	tick := time.NewTicker(5 * time.Millisecond)
	for !killed {
		select {
		case err := <-exited:
			return &exitCodeError{exitDrill, fmt.Errorf("drill: the rebuild ended before it could be killed (%v): use a larger corpus or --latency\n%s", err, firstErr.String())}
		case <-tick.C:
			if parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet")); len(parts) > 0 {
				first.Process.Signal(syscall.SIGKILL)
				<-exited
				killed = true
			}
		case <-ctx.Done():
			first.Process.Kill()
			return ctx.Err()
		}
	}
	tick.Stop()
	ledgerAtKill := sim.Ledger().Totals
	partsAtKill, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	fmt.Fprintf(stdout, "Killed the rebuild (SIGKILL) after %d committed parts and %d billed requests\n", len(partsAtKill), ledgerAtKill.Billed)

	// 3. Resume to completion.
	second := child()
	var secondErr strings.Builder
	second.Stderr = &secondErr
	if err := second.Run(); err != nil {
		return &exitCodeError{exitDrill, fmt.Errorf("drill: the resumed rebuild failed: %v\n%s", err, secondErr.String())}
	}
	actualDur := time.Since(started)

	// 4. Verify, and add up what was checkpointed.
	store := checkpoint.NewDir(out)
	rep, err := planner.Verify(ctx, tok, store, planner.RebuildSpec{Paths: paths, Corpus: cf.options(), Model: m,
		ChunkTokens: cf.chunkTokens, ChunkOverlap: cf.chunkOverlap, Jobs: cf.jobs})
	if err != nil {
		return fmt.Errorf("drill verify: %w", err)
	}
	rows, tokens, err := checkpointTotals(ctx, store)
	if err != nil {
		return err
	}
	led := sim.Ledger()
	twice := 0
	for _, n := range led.Inputs {
		if n > 1 {
			twice += n - 1
		}
	}
	predCost := pred.CostUSD
	actualCost := pricing.Cost(tokens, m.PricePer1M)
	ledgerCost := pricing.Cost(led.Totals.PromptTokens, m.PricePer1M)
	fmt.Fprintf(stdout, "\n%-10s %14s %14s\n", "", "predicted", "actual")
	fmt.Fprintf(stdout, "%-10s %14d %14d  (checkpointed chunks)\n", "chunks", pred.Chunks, rows)
	fmt.Fprintf(stdout, "%-10s %14d %14d  (checkpointed; the ledger billed %d, of which %d for %d chunks in flight at the kill)\n",
		"tokens", pred.Tokens, tokens, led.Totals.PromptTokens, led.Totals.PromptTokens-tokens, twice)
	fmt.Fprintf(stdout, "%-10s %14d %14d  (billed requests, both runs)\n", "requests", pred.Requests, led.Totals.Billed)
	fmt.Fprintf(stdout, "%-10s %14s %14s  (ledger: $%s)\n", "cost", "$"+predCost.String(), "$"+actualCost.String(), ledgerCost)
	fmt.Fprintf(stdout, "%-10s %14s %14s  (wall time, both runs and the restart)\n", "duration", pred.Duration, actualDur.Round(10*time.Millisecond))
	fmt.Fprintf(stdout, "\nVerify: %d of %d chunks present, %d missing, %d stale, %d duplicate rows\n", rep.Present, rep.Expected, rep.Missing, rep.Stale, rep.Duplicates)

	var problems []string
	if !rep.Complete() || rep.Duplicates > 0 || int64(rows) != pred.Chunks {
		problems = append(problems, fmt.Sprintf("coverage: %d missing, %d stale, %d duplicates, %d rows for %d predicted chunks", rep.Missing, rep.Stale, rep.Duplicates, rows, pred.Chunks))
	}
	if tokens != pred.Tokens {
		problems = append(problems, fmt.Sprintf("predicted %d tokens, checkpointed %d", pred.Tokens, tokens))
	}
	if actualCost != predCost {
		problems = append(problems, fmt.Sprintf("predicted $%s, checkpointed chunks cost $%s", predCost, actualCost))
	}
	if led.Totals.PromptTokens < tokens {
		problems = append(problems, fmt.Sprintf("the ledger billed %d tokens, fewer than the %d checkpointed", led.Totals.PromptTokens, tokens))
	}
	// Embedded but not committed at the kill: the writer's buffer (< part rows,
	// here one batch), the part committing in the background (one batch), the
	// batches queued for the writer and those in flight.
	if bound := 2**batch + (planner.RowsQueue(*concurrency)+*concurrency)**batch; twice > bound {
		problems = append(problems, fmt.Sprintf("%d chunks were paid twice, more than the %d that can be embedded but uncommitted at a kill", twice, bound))
	}
	if *format == "json" {
		res := drillResult{Passed: len(problems) == 0, Problems: append([]string{}, problems...), Documents: est.Corpus.Documents,
			Model: m.Name, PartsAtKill: len(partsAtKill), RequestsAtKill: ledgerAtKill.Billed,
			Predicted:    drillFigures{Chunks: pred.Chunks, Tokens: pred.Tokens, Requests: pred.Requests, CostUSD: predCost, DurationSeconds: pred.DurationSeconds},
			Actual:       drillFigures{Chunks: int64(rows), Tokens: tokens, Requests: int64(led.Totals.Billed), CostUSD: actualCost, DurationSeconds: actualDur.Seconds()},
			LedgerTokens: led.Totals.PromptTokens, LedgerCostUSD: ledgerCost, ChunksPaidTwice: twice,
			Verify: drillVerify{Expected: rep.Expected, Present: rep.Present, Missing: rep.Missing, Stale: rep.Stale, Duplicates: rep.Duplicates}}
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return &exitCodeError{exitDrill, errors.New("drill FAILED: " + strings.Join(problems, "; "))}
	}
	fmt.Fprintln(stdout, "Drill PASSED: nothing lost, nothing duplicated, prediction exact.")
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
