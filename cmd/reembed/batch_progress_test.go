package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// TestBatchProgressLines: rebuild --mode auto, with its progress as JSON
// lines (stderr is not a terminal), shows while batches run: the batches by
// state, the next poll, the deadline (start + --rto) and the armed
// fallback; the final summary counts the requests completed and failed.
func TestBatchProgressLines(t *testing.T) {
	t.Parallel()
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Batch: embedder.BatchSimConfig{
		CompletionP50: 1200 * time.Millisecond, CompletionP90: 1500 * time.Millisecond, Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	root := t.TempDir()
	for i := range 6 {
		text := strings.Repeat(fmt.Sprintf("document %d says something about embeddings and batches. ", i), 4)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("d%d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	code, stdout, stderr := runMain(t, "rebuild", "--mode", "auto", "--rto", "1h", "--batch-p50", "1s", "--batch-p90", "2s",
		"--provider", "openai", "--base-url", srv.URL+"/v1", "--dimensions", "8", "--chunk-tokens", "16", "--chunk-overlap", "0",
		"--batch-size", "4", "--batch-max-requests", "2", "--batch-poll-min", "10ms", "--batch-poll-max", "50ms",
		"--progress-interval", "10ms", "--format", "json", "--out", filepath.Join(t.TempDir(), "ck"), root)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var seen bool
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var line struct {
			Event string                 `json:"event"`
			Batch *planner.BatchProgress `json:"batch"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Event != "progress" || line.Batch == nil {
			continue
		}
		b := line.Batch
		if b.Mode == planner.ModeAuto && b.NextPollAt != nil && b.Deadline != nil && b.FallbackArmed &&
			b.Batches["in_progress"]+b.Batches["validating"] > 0 {
			if d := b.Deadline.Sub(start); d < time.Hour || d > time.Hour+time.Minute {
				t.Errorf("deadline %s after the start, want the 1h rto", d)
			}
			seen = true
		}
	}
	if !seen {
		t.Errorf("no progress line showed running batches, the next poll, the deadline and the armed fallback:\n%s", stderr)
	}
	var sum planner.Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	if sum.Batch == nil || sum.Batch.RequestsCompleted == 0 || sum.Batch.RequestsFailed != 0 || sum.Batch.Batches["completed"] == 0 {
		t.Errorf("summary batch figures: %+v", sum.Batch)
	}
}

// TestBatchBudgetExit3: rebuild --mode batch with --budget-usd below the
// predicted batch cost exits 3 having billed no more than the cap; run
// again with the same cap, it exits 3 again and the provider bills nothing
// more (the cap is over the whole checkpoint, not per run).
func TestBatchBudgetExit3(t *testing.T) {
	t.Parallel()
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Batch: embedder.BatchSimConfig{
		CompletionP50: 20 * time.Millisecond, CompletionP90: 60 * time.Millisecond, Seed: 4}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	root := t.TempDir()
	for i := range 40 {
		text := strings.Repeat(fmt.Sprintf("paragraph %d of a corpus whose embeddings were lost and must be rebuilt in batches. ", i), 6)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("d%02d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "ck")
	args := []string{"rebuild", "--mode", "batch", "--budget-usd", "0.00002", "--provider", "openai", "--base-url", srv.URL + "/v1",
		"--dimensions", "8", "--chunk-tokens", "64", "--chunk-overlap", "0", "--batch-size", "4", "--batch-max-requests", "1",
		"--batch-enqueued-tokens", "600", "--batch-poll-min", "10ms", "--batch-poll-max", "40ms", "--format", "json", "--out", out, root}
	code, _, stderr := runMain(t, args...)
	if code != exitBudget {
		t.Fatalf("exit %d, want %d\n%s", code, exitBudget, stderr)
	}
	l1 := sim.Ledger()
	cat, _ := loadCatalog("")
	model, _ := cat.Lookup("text-embedding-3-small")
	spent := pricing.Cost(l1.Batch.PromptTokens, *model.BatchPricePer1M)
	if l1.Batch.PromptTokens == 0 || spent > 20 {
		t.Errorf("run 1 billed %d tokens, $%s, against a $0.00002 cap", l1.Batch.PromptTokens, spent)
	}
	if code, _, stderr := runMain(t, args...); code != exitBudget {
		t.Fatalf("run 2: exit %d, want %d\n%s", code, exitBudget, stderr)
	}
	if l2 := sim.Ledger(); l2.Batch.PromptTokens != l1.Batch.PromptTokens || l2.Batch.BatchesCreated != l1.Batch.BatchesCreated {
		t.Errorf("run 2 spent again: %d tokens in %d batches, were %d in %d", l2.Batch.PromptTokens, l2.Batch.BatchesCreated,
			l1.Batch.PromptTokens, l1.Batch.BatchesCreated)
	}
	t.Logf("cap $0.00002: billed %d tokens ($%s) in %d batches, then nothing", l1.Batch.PromptTokens, spent, l1.Batch.BatchesCreated)
}
