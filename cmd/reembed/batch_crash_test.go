package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// batchMoments are the moments a batch rebuild is killed at: as its request
// arrives at the provider (the provider still acts on it: a batch is created
// though the child never hears of it) or right after the answer.
var batchMoments = []struct{ name, method, path, when string }{
	{"upload", "POST", "/v1/files", "arrive"},
	{"uploaded", "POST", "/v1/files", "served"},
	{"create", "POST", "/v1/batches", "arrive"},
	{"created", "POST", "/v1/batches", "served"},
	{"poll", "GET", "/v1/batches/", "served"},
	{"download", "GET", "/content", "arrive"},
	{"commit", "GET", "/content", "commit"}, // a few ms after the output is served: while parts commit
}

// batchHooked serves the simulator and calls hook(moment) for each request.
type batchHooked struct {
	sim  *embedder.Simulator
	mu   sync.Mutex
	hook func(moment string)
}

func (p *batchHooked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	hook := p.hook
	p.mu.Unlock()
	match := func(m struct{ name, method, path, when string }) bool {
		return r.Method == m.method && (strings.HasPrefix(r.URL.Path, m.path) && !strings.HasSuffix(r.URL.Path, "/content") ||
			m.path == "/content" && strings.HasSuffix(r.URL.Path, "/content")) && (m.path != "/v1/batches/" || r.Method == "GET")
	}
	fire := func(when string) {
		if hook == nil {
			return
		}
		for _, m := range batchMoments {
			if m.when == when && match(m) {
				hook(m.name)
			}
		}
	}
	fire("arrive")
	p.sim.ServeHTTP(w, r)
	fire("served")
	fire("commit")
}

// TestBatchRebuildSIGKILL: a batch rebuild of the sample, killed with
// SIGKILL at ≥ 20 moments across upload, create, poll, download and commit,
// then resumed to the end: no batch created twice (the simulator's ledger,
// by the metadata tag), no token billed twice, every chunk present once, and
// the tokens billed equal the job's own prediction.
func TestBatchRebuildSIGKILL(t *testing.T) {
	t.Parallel()
	bin := buildReembed(t)
	root, tok, model := sampleSetup(t)
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Batch: embedder.BatchSimConfig{
		CompletionP50: 150 * time.Millisecond, CompletionP90: 400 * time.Millisecond, Seed: 5}})
	if err != nil {
		t.Fatal(err)
	}
	prov := &batchHooked{sim: sim}
	srv := httptest.NewServer(prov)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	out := filepath.Join(t.TempDir(), "checkpoint")
	args := []string{"rebuild", "--mode", "batch", "--provider", "openai", "--base-url", srv.URL + "/v1",
		"--batch-size", "16", "--batch-max-requests", "2", "--batch-enqueued-tokens", "40000", "--part-rows", "24",
		"--batch-poll-min", "20ms", "--batch-poll-max", "100ms", "--progress-interval", "1h", "--format", "json",
		"--out", out, root}
	kills := 21
	if testing.Short() {
		kills = 7
	}
	rng := rand.New(rand.NewPCG(9, 9))
	killedAt := map[string]int{}
	for killed, runs := 0, 0; ; runs++ {
		if runs > 4*kills {
			t.Fatalf("%d runs for %d kills", runs, killed)
		}
		final := killed >= kills
		target := batchMoments[killed%len(batchMoments)].name
		skip := rng.IntN(3) // kill at the 1st to 3rd occurrence of the moment
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var proc atomic.Pointer[os.Process]
		var fired atomic.Bool
		if !final {
			prov.mu.Lock()
			prov.hook = func(m string) {
				if m != target || fired.Load() {
					return
				}
				if skip > 0 {
					skip--
					return
				}
				if p := proc.Load(); p != nil && fired.CompareAndSwap(false, true) {
					if m == "commit" {
						time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
					}
					_ = p.Signal(syscall.SIGKILL)
				}
			}
			prov.mu.Unlock()
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proc.Store(cmd.Process)
		err := cmd.Wait()
		prov.mu.Lock()
		prov.hook = nil
		prov.mu.Unlock()
		if final {
			if err != nil {
				t.Fatalf("final run: %v\n%s", err, stderr.String())
			}
			break
		}
		if fired.Load() {
			killed++
			killedAt[target]++
			continue
		}
		if err != nil {
			t.Fatalf("run %d (target %s) failed without a kill: %v\n%s", runs, target, err, stderr.String())
		}
		// The run finished before the moment came: start over on a fresh checkpoint would lose
		// the ledger's meaning, so the remaining kills happen at the final check instead.
		t.Logf("run %d completed before its %s kill (%d kills so far)", runs, target, killed)
		kills = killed
	}
	t.Logf("killed %d times: %v", len(killedAt), killedAt)
	if n := sumCounts(killedAt); n < 20 && !testing.Short() {
		t.Errorf("only %d kills landed (want >= 20): %v", n, killedAt)
	}
	l := sim.Ledger()
	tags := map[string]int{}
	for _, b := range l.Batch.Batches {
		tags[b.Metadata["reembed_batch"]]++
	}
	for tag, n := range tags {
		if n > 1 {
			t.Errorf("batch %s created %d times", tag, n)
		}
	}
	for h, n := range l.Inputs {
		if n > 1 {
			t.Errorf("input %s billed %d times", h[:12], n)
		}
	}
	spec := planner.RebuildSpec{Paths: []string{root}, Model: model, ChunkTokens: planner.DefaultChunkTokens, ChunkOverlap: planner.DefaultChunkOverlap}
	rep, err := planner.Verify(context.Background(), tok, checkpoint.NewDir(out), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Duplicates != 0 || rep.Extra != 0 {
		t.Errorf("coverage %+v", rep)
	}
	est, err := planner.Run(t.Context(), tok, planner.EstimateRequest{Paths: spec.Paths, Models: []pricing.Model{model},
		ChunkTokens: spec.ChunkTokens, ChunkOverlap: spec.ChunkOverlap})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Batch.PromptTokens+l.Totals.PromptTokens, est.Estimates[0].Tokens; got != want {
		t.Errorf("billed %d tokens (batch %d + sync %d), predicted %d", got, l.Batch.PromptTokens, l.Totals.PromptTokens, want)
	}
	// The spend ledger is exact across the kills: each batch's reservation,
	// held under its tag, was settled once, whichever run ingested it.
	sp, err := checkpoint.OpenSpendLedger(context.Background(), checkpoint.NewDir(out), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if s := sp.Prior(); s.AbandonedPico != 0 || s.OpenPico != 0 || s.SettledToken != l.Batch.PromptTokens+l.Totals.PromptTokens {
		t.Errorf("spend ledger after %d kills: %+v; provider billed %d batch + %d sync tokens", sumCounts(killedAt), s, l.Batch.PromptTokens, l.Totals.PromptTokens)
	}
	t.Logf("%d batches created, %d files uploaded, %d tokens billed at the batch price", l.Batch.BatchesCreated, l.Batch.FilesUploaded, l.Batch.PromptTokens)
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
