package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// batchDrill is the drill of --mode batch|auto: a rebuild through the
// simulator's Batch API in a child, SIGKILLed while it waits for its
// batches, resumed, verified, and its prediction (batch price) compared with
// the ledger.
type batchDrill struct {
	mode     string
	rto      time.Duration
	m        pricing.Model
	cf       corpusFlags
	paths    []string
	out      string
	batch    int
	childEnv []string
}

func (d *batchDrill) run(ctx context.Context, e *env) error {
	cfg := modelSimulatorConfig(d.m)
	cfg.Batch = embedder.BatchSimConfig{CompletionP50: 300 * time.Millisecond, CompletionP90: time.Second}
	sim, err := embedder.NewSimulator(cfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	baseURL, stopServer, err := serveLoopback(ctx, sim)
	if err != nil {
		return fmt.Errorf("starting the drill simulator: %w", err)
	}
	defer stopServer()
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	est, err := planner.Run(ctx, tok, planner.EstimateRequest{Paths: d.paths, Corpus: d.cf.options(), Models: []pricing.Model{d.m},
		ChunkTokens: d.cf.chunkTokens, ChunkOverlap: d.cf.chunkOverlap, Limits: planner.Limits{BatchSize: d.batch}, Jobs: d.cf.jobs})
	if err != nil {
		return fmt.Errorf("drill estimate: %w", err)
	}
	if err := drillCorpusCheck(est.Corpus, d.cf.allowEmpty); err != nil {
		return err
	}
	pred := est.Estimates[0]
	fmt.Fprintf(e.stdout, "Drill (--mode %s): %d documents, %s, simulated Batch API at %s\n", d.mode, est.Corpus.Documents, d.m.Name, baseURL)
	started := time.Now()
	if err := d.killDuringWait(ctx, e, baseURL); err != nil {
		return err
	}
	l := sim.Ledger()
	fmt.Fprintf(e.stdout, "Killed the rebuild (SIGKILL) while it waited for its batches: %d batches created, %d files uploaded so far\n",
		l.Batch.BatchesCreated, l.Batch.FilesUploaded)
	resumed := d.child(ctx, baseURL)
	var stderr strings.Builder
	resumed.Stderr = &stderr
	if err := resumed.Run(); err != nil {
		return &exitCodeError{exitDrill, fmt.Errorf("drill: the resumed rebuild failed: %v\n%s", err, stderr.String())}
	}
	return d.check(ctx, e, tok, sim.Ledger(), pred, time.Since(started))
}

func (d *batchDrill) child(ctx context.Context, baseURL string) *exec.Cmd {
	exe, _ := os.Executable()
	args := []string{"rebuild", "--mode", d.mode, "--provider", "openai", "--base-url", baseURL,
		"--model", d.m.Name, "--out", d.out, "--batch-size", strconv.Itoa(d.batch), "--part-rows", strconv.Itoa(d.batch),
		"--batch-max-requests", "2", "--batch-poll-min", "50ms", "--batch-poll-max", "500ms", "--rpm", "0", "--tpm", "0",
		"--progress-interval", "1h", "--format", "json"}
	args = append(args, d.cf.childArgs()...)
	args = append(args, "--allow-empty") // the estimate checked the same corpus
	if d.mode == planner.ModeAuto {
		args = append(args, "--rto", d.rto.String())
	}
	cmd := exec.CommandContext(ctx, exe, append(args, d.paths...)...)
	cmd.Env = append(os.Environ(), d.childEnv...)
	return cmd
}

// killDuringWait starts the child and SIGKILLs it once a batch is submitted
// (journaled "submitted": created at the provider, not yet ingested).
func (d *batchDrill) killDuringWait(ctx context.Context, e *env, baseURL string) error {
	submitted := func() bool {
		js, _ := filepath.Glob(filepath.Join(d.out, checkpoint.JournalDirName, "b*.json"))
		for _, j := range js {
			if b, err := os.ReadFile(j); err == nil && strings.Contains(string(b), `"state":"submitted"`) {
				return true
			}
		}
		return false
	}
	return killChildWhen(ctx, d.child(ctx, baseURL), submitted, "")
}

func (d *batchDrill) check(ctx context.Context, e *env, tok tokenizer.Tokenizer, l embedder.Ledger, pred planner.ModelEstimate, dur time.Duration) error {
	store := checkpoint.NewDir(d.out)
	rep, err := planner.Verify(ctx, tok, store, planner.RebuildSpec{Paths: d.paths, Corpus: d.cf.options(), Model: d.m,
		ChunkTokens: d.cf.chunkTokens, ChunkOverlap: d.cf.chunkOverlap, Jobs: d.cf.jobs})
	if err != nil {
		return fmt.Errorf("drill verify: %w", err)
	}
	rows, tokens, err := checkpointTotals(ctx, store)
	if err != nil {
		return err
	}
	twice := 0
	for _, n := range l.Inputs {
		twice += max(n-1, 0)
	}
	tags := map[string]int{}
	dupBatches := 0
	for _, b := range l.Batch.Batches {
		if tags[b.Metadata["reembed_batch"]]++; tags[b.Metadata["reembed_batch"]] == 2 {
			dupBatches++
		}
	}
	bp := *d.m.BatchPricePer1M
	predCost := pricing.CostCeil(pred.Tokens, bp)
	ledgerCost := pricing.CostCeil(l.Batch.PromptTokens, bp) + pricing.CostCeil(l.Totals.PromptTokens, d.m.PricePer1M)
	fmt.Fprintf(e.stdout, "\n%-10s %14s %14s\n", "", "predicted", "actual")
	fmt.Fprintf(e.stdout, "%-10s %14d %14d  (checkpointed chunks)\n", "chunks", pred.Chunks, rows)
	fmt.Fprintf(e.stdout, "%-10s %14d %14d  (ledger: %d at the batch price, %d sync)\n", "tokens", pred.Tokens, l.Batch.PromptTokens+l.Totals.PromptTokens, l.Batch.PromptTokens, l.Totals.PromptTokens)
	fmt.Fprintf(e.stdout, "%-10s %14s %14s  (ledger; all-sync would be $%s)\n", "cost", "$"+predCost.String(), "$"+ledgerCost.String(), pred.CostUSD)
	fmt.Fprintf(e.stdout, "%-10s %14s %14d  (%d files uploaded)\n", "batches", "", l.Batch.BatchesCreated, l.Batch.FilesUploaded)
	fmt.Fprintf(e.stdout, "%-10s %14s %14s\n", "duration", "", dur.Round(10*time.Millisecond))
	fmt.Fprintf(e.stdout, "\nVerify: %d of %d chunks present, %d missing, %d stale, %d duplicate rows\n", rep.Present, rep.Expected, rep.Missing, rep.Stale, rep.Duplicates)
	var problems []string
	if !rep.Complete() || rep.Duplicates > 0 || int64(rows) != pred.Chunks || tokens != pred.Tokens {
		problems = append(problems, fmt.Sprintf("coverage: %d missing, %d duplicates, %d rows and %d tokens for %d chunks and %d tokens predicted", rep.Missing, rep.Duplicates, rows, tokens, pred.Chunks, pred.Tokens))
	}
	if l.Batch.PromptTokens+l.Totals.PromptTokens != pred.Tokens {
		problems = append(problems, fmt.Sprintf("billed %d tokens, predicted %d", l.Batch.PromptTokens+l.Totals.PromptTokens, pred.Tokens))
	}
	if d.mode == planner.ModeBatch && ledgerCost != predCost {
		problems = append(problems, fmt.Sprintf("billed $%s, predicted $%s at the batch price", ledgerCost, predCost))
	}
	if twice > 0 || dupBatches > 0 {
		problems = append(problems, fmt.Sprintf("%d inputs billed twice, %d batches created twice", twice, dupBatches))
	}
	if len(problems) > 0 {
		return &exitCodeError{exitDrill, errors.New("drill FAILED: " + strings.Join(problems, "; "))}
	}
	fmt.Fprintln(e.stdout, "Drill PASSED: nothing lost, nothing duplicated, no batch submitted twice, billed = predicted.")
	return nil
}
