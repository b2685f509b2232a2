package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// The child rebuilds run with these settings; the crash test's bounds use them.
const (
	crashBatch       = 16
	crashConcurrency = 2
	crashKeyEnv      = "REEMBED_CRASH_TEST_KEY"
	crashKey         = "sk-crash-test-SECRET-0123456789"
)

// hookedProvider serves the simulator over HTTP and calls hook when an
// embedding request arrives and when it has been answered (n counts
// requests from 1 over the provider's life). It counts the open client
// connections, so a test can wait until a killed child's requests, even
// those still unread in a socket buffer, are settled in the ledger.
type hookedProvider struct {
	sim *embedder.Simulator

	mu      sync.Mutex
	closed  *sync.Cond // signalled when a connection closes
	conns   int
	arrived int
	served  int
	hook    func(event string, n int)
}

func (p *hookedProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/embeddings") {
		p.sim.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.arrived++
	n, hook := p.arrived, p.hook
	p.mu.Unlock()
	if hook != nil {
		hook("arrive", n)
	}
	p.sim.ServeHTTP(w, r)
	p.mu.Lock()
	p.served++
	n, hook = p.served, p.hook
	p.mu.Unlock()
	if hook != nil {
		hook("served", n)
	}
}

// connState is the server's ConnState hook.
func (p *hookedProvider) connState(_ net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns++
	case http.StateClosed, http.StateHijacked:
		p.conns--
		p.closed.Broadcast()
	}
}

// settle waits until every client connection is closed: after a child
// exits, its requests have then all been answered or abandoned.
func (p *hookedProvider) settle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.conns > 0 {
		p.closed.Wait()
	}
}

func (p *hookedProvider) setHook(h func(event string, n int)) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

func (p *hookedProvider) counts() (arrived, served int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arrived, p.served
}

// newHookedProvider starts a simulator with latency and crashKey on a
// loopback httptest server and returns it with the base URL.
func newHookedProvider(t *testing.T, latency time.Duration) (*hookedProvider, string) {
	t.Helper()
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{APIKey: crashKey, Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	p := &hookedProvider{sim: sim}
	p.closed = sync.NewCond(&p.mu)
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ConnState = p.connState
	srv.Start()
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return p, srv.URL + "/v1"
}

// childRebuild returns the command of a rebuild child against baseURL.
func childRebuild(bin, baseURL, out, corpusRoot string, extra ...string) *exec.Cmd {
	args := []string{"rebuild", "--provider", "openai", "--base-url", baseURL, "--api-key-env", crashKeyEnv,
		"--batch-size", strconv.Itoa(crashBatch), "--part-rows", strconv.Itoa(crashBatch),
		"--concurrency", strconv.Itoa(crashConcurrency), "--rpm", "0", "--tpm", "0",
		"--progress-interval", "1h", "--format", "json", "--out", out}
	args = append(args, extra...)
	args = append(args, corpusRoot)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), crashKeyEnv+"="+crashKey)
	return cmd
}

// crashRun is what one child run did, for the checks made at the end.
type crashRun struct {
	mode            string
	killed          bool
	committedBefore map[string]int // sha256 → rows, before the run
	billed          map[string]int // sha256 → times billed during the run
	committed       map[string]int // sha256 → rows committed by the run
	billedTokens    int64
}

// checkpointState reads a checkpoint after a run: the rows of every part
// not in seen (which it adds to), and the temp files present.
type checkpointState struct {
	out   string
	seen  map[string]bool
	rows  map[string]int   // sha256 → committed rows, all parts
	toks  map[string]int32 // sha256 → tokens of the text
	total int
}

func (c *checkpointState) update(t *testing.T) (fresh map[string]int, temps []string) {
	t.Helper()
	ctx := context.Background()
	store := checkpoint.NewDir(c.out)
	ix, err := checkpoint.Scan(ctx, store, checkpoint.ScanOptions{})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("scanning the checkpoint: %v", err)
	}
	if ix != nil && len(ix.Unreadable()) > 0 {
		t.Fatalf("a committed part is unreadable after a kill: %+v", ix.Unreadable())
	}
	files, err := store.List(ctx)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	fresh = map[string]int{}
	for _, f := range files {
		switch {
		case strings.Contains(f.Name, checkpoint.TempPrefix):
			temps = append(temps, f.Name)
		case strings.HasSuffix(f.Name, ".parquet") && !c.seen[f.Name]:
			c.seen[f.Name] = true
			r, err := store.Open(ctx, f.Name)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := checkpoint.ReadRows(r, r.Size())
			r.Close()
			if err != nil {
				t.Fatalf("committed part %s does not read: %v", f.Name, err)
			}
			for _, row := range rows {
				fresh[row.ChunkSHA256]++
				c.rows[row.ChunkSHA256]++
				c.toks[row.ChunkSHA256] = row.Tokens
				c.total++
			}
		}
	}
	return fresh, temps
}

// ledgerDiff returns what was billed between two ledger snapshots.
func ledgerDiff(before, after embedder.Ledger) (map[string]int, int64) {
	d := map[string]int{}
	for sha, n := range after.Inputs {
		if n -= before.Inputs[sha]; n > 0 {
			d[sha] = n
		}
	}
	return d, after.Totals.PromptTokens - before.Totals.PromptTokens
}

// TestRebuildSubprocess runs the real reembed binary as a child process
// against a simulated provider on loopback: SIGKILLed at random moments and
// resumed (crash), and stopped by SIGTERM or SIGINT (signals).
func TestRebuildSubprocess(t *testing.T) {
	t.Parallel()
	bin := buildReembed(t)
	root, tok, model := sampleSetup(t)
	// The job's own estimate, with the rebuild's default chunking.
	plan := func(root string) (planner.RebuildSpec, planner.ModelEstimate) {
		spec := planner.RebuildSpec{Paths: []string{root}, Model: model, ChunkTokens: planner.DefaultChunkTokens, ChunkOverlap: planner.DefaultChunkOverlap}
		est, err := planner.Run(t.Context(), tok, planner.EstimateRequest{Paths: spec.Paths, Models: []pricing.Model{model},
			ChunkTokens: spec.ChunkTokens, ChunkOverlap: spec.ChunkOverlap, Limits: planner.Limits{BatchSize: crashBatch}})
		if err != nil {
			t.Fatal(err)
		}
		return spec, est.Estimates[0]
	}
	spec, all := plan(root)
	// The signal tests use the sample's HTML documents (about 150 chunks).
	htmlRoot := filepath.Join(root, "html")
	htmlSpec, htmlPlan := plan(htmlRoot)

	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		testCrashResume(t, bin, root, spec, tok, all)
	})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			testSignalStops(t, bin, htmlRoot, htmlSpec, tok, htmlPlan, sig)
		})
	}
}

// crashKills is how many SIGKILLs the crash test delivers:
// REEMBED_CRASH_KILLS (the soak script sets 200+), else 24, 8 with -short.
func crashKills(t *testing.T) int {
	if s := os.Getenv("REEMBED_CRASH_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("REEMBED_CRASH_KILLS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 8
	}
	return 24
}

func testCrashResume(t *testing.T, bin, root string, spec planner.RebuildSpec, tok tokenizer.Tokenizer, plan planner.ModelEstimate) {
	kills := crashKills(t)
	seed := uint64(1)
	if s := os.Getenv("REEMBED_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("%d kills, seed %d (REEMBED_CRASH_KILLS, REEMBED_CRASH_SEED)", kills, seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	prov, baseURL := newHookedProvider(t, 10*time.Millisecond)
	out := filepath.Join(t.TempDir(), "checkpoint")
	state := &checkpointState{out: out, seen: map[string]bool{}, rows: map[string]int{}, toks: map[string]int32{}}

	var runs []crashRun
	modes := map[string]int{}
	ledger := prov.sim.Ledger()
	for killed := 0; killed < kills; {
		if len(runs) > 3*kills {
			t.Fatalf("%d runs for %d kills: the children keep finishing before the kill", len(runs), killed)
		}
		remainingReq := (int(plan.Chunks) - state.total + crashBatch - 1) / crashBatch
		k := 1 + rng.IntN(max(1, (remainingReq-1)/(kills-killed)))
		arrivedBase, servedBase := prov.counts()
		cmd := childRebuild(bin, baseURL, out, root)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		// The hooks run on the server's goroutines: they see the process
		// through an atomic, stored once it is started.
		var proc atomic.Pointer[os.Process]
		var once sync.Once
		kill := func() {
			if p := proc.Load(); p != nil {
				once.Do(func() { p.Signal(syscall.SIGKILL) })
			}
		}
		var mode string
		var timer *time.Timer
		afterStart := time.Duration(-1)
		// Each run is killed before its request k+1 is answered, so that
		// the corpus cannot be finished before the last kill.
		choice := rng.IntN(3)
		if choice == 1 && k+crashConcurrency >= remainingReq {
			choice = 0
		}
		switch choice {
		case 0: // the k-th request of the run has reached the provider
			mode = "request-arrived"
			prov.setHook(func(ev string, n int) {
				if ev == "arrive" && n-arrivedBase == k {
					kill()
				}
			})
		case 1: // some time after the k-th answer
			mode = "after-answer"
			delay := time.Duration(rng.IntN(15_000)) * time.Microsecond
			prov.setHook(func(ev string, n int) {
				switch {
				case ev == "served" && n-servedBase == k:
					time.AfterFunc(delay, kill)
				case ev == "arrive" && n-arrivedBase == k+crashConcurrency+1:
					kill()
				}
			})
		default: // some time after the start: reading, planning, recovering or embedding
			mode = "after-start"
			afterStart = time.Duration(rng.IntN(600)) * time.Millisecond
			prov.setHook(func(ev string, n int) {
				if ev == "arrive" && n-arrivedBase == k+1 {
					kill()
				}
			})
		}
		committedBefore := copyCounts(state.rows)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proc.Store(cmd.Process)
		if afterStart >= 0 {
			timer = time.AfterFunc(afterStart, kill)
		}
		werr := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		prov.setHook(nil)
		prov.settle() // the dead child's requests are settled in the ledger
		var exit *exec.ExitError
		run := crashRun{mode: mode, committedBefore: committedBefore}
		switch {
		case errors.As(werr, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			run.killed = true
			killed++
			modes[mode]++
		case werr == nil:
			// finished before the kill: it counts as a run, not a kill
		default:
			t.Fatalf("run %d (%s) failed: %v\n%s", len(runs)+1, mode, werr, stderr.String())
		}
		now := prov.sim.Ledger()
		run.billed, run.billedTokens = ledgerDiff(ledger, now)
		ledger = now
		run.committed, _ = state.update(t)
		runs = append(runs, run)
		if state.total >= int(plan.Chunks) && killed < kills && !run.killed {
			t.Fatalf("the corpus was complete after %d of %d kills", killed, kills)
		}
	}
	t.Logf("kills by moment: %v", modes)

	// Resume to completion.
	cmd := childRebuild(bin, baseURL, out, root)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	committedBefore := copyCounts(state.rows)
	if err := cmd.Run(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, stderr.String())
	}
	prov.settle()
	var sum planner.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("final summary: %v\n%s", err, stdout.String())
	}
	if sum.Stopped != "complete" {
		t.Fatalf("final run stopped %q", sum.Stopped)
	}
	now := prov.sim.Ledger()
	final := crashRun{mode: "final", committedBefore: committedBefore}
	final.billed, final.billedTokens = ledgerDiff(ledger, now)
	ledger = now
	var temps []string
	final.committed, temps = state.update(t)
	runs = append(runs, final)

	// Every chunk exactly once, every part readable, no temp file left.
	rep, err := planner.Verify(t.Context(), tok, checkpoint.NewDir(out), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Duplicates != 0 || rep.Superseded != 0 || rep.Extra != 0 || rep.UnreadableParts != 0 ||
		int64(rep.Expected) != plan.Chunks || state.total != rep.Expected {
		t.Fatalf("after %d kills: Verify = %+v with %d rows, want each of %d chunks exactly once", kills, rep, state.total, plan.Chunks)
	}
	if len(temps) > 0 {
		t.Errorf("temp files left after the final resume: %q", temps)
	}

	// Billing. Per run: nothing committed before it was billed again
	// (corpus[sha] counts the chunks with that text), and what a killed run
	// billed but did not commit is bounded by what can be in flight.
	corpus := state.rows
	var maxBatchTokens int
	for _, r := range ledger.Requests {
		maxBatchTokens = max(maxBatchTokens, r.BilledTokens)
	}
	var lostTokens, worstTokens int64
	var lostRows, worstRows int
	for i, r := range runs {
		var runLostRows int
		var runLostTokens int64
		for sha, n := range r.billed {
			if need := corpus[sha] - r.committedBefore[sha]; n > need {
				t.Errorf("run %d (%s) billed text %s… %d times; only %d of its %d chunks were not yet committed",
					i+1, r.mode, sha[:12], n, need, corpus[sha])
			}
			if c := r.committed[sha]; c > n {
				t.Errorf("run %d committed text %s… %d times but was billed for it %d times", i+1, sha[:12], c, n)
			} else {
				runLostRows += n - c
				runLostTokens += int64(n-c) * int64(state.toks[sha])
			}
		}
		if !r.killed && runLostRows > 0 {
			t.Errorf("run %d (%s) was not killed but %d billed rows were not committed", i+1, r.mode, runLostRows)
		}
		lostRows += runLostRows
		lostTokens += runLostTokens
		worstRows = max(worstRows, runLostRows)
		worstTokens = max(worstTokens, runLostTokens)
	}
	if ledger.Totals.PromptTokens != plan.Tokens+lostTokens {
		t.Errorf("ledger billed %d tokens; corpus %d + lost at kills %d = %d", ledger.Totals.PromptTokens, plan.Tokens, lostTokens, plan.Tokens+lostTokens)
	}
	// What a kill can lose, embedded and paid but not committed: fewer
	// than part-rows buffered rows, the batch the writer holds, the part
	// committing in the background, the batches queued for the writer and
	// those in flight (planner.RowsQueue).
	queued := planner.RowsQueue(crashConcurrency) + crashConcurrency
	perKillRows := (crashBatch - 1) + crashBatch + crashBatch + queued*crashBatch
	perKillTokens := int64(queued+3) * int64(maxBatchTokens)
	if worstRows > perKillRows {
		t.Errorf("one kill lost %d billed rows, more than the %d that can be uncommitted", worstRows, perKillRows)
	}
	if lostTokens > int64(kills)*perKillTokens {
		t.Errorf("kills lost %d billed tokens, more than %d kills × %d", lostTokens, kills, perKillTokens)
	}
	twice := 0
	for sha, n := range ledger.Inputs {
		twice += n - min(n, corpus[sha])
	}
	if twice != lostRows {
		t.Errorf("%d chunks billed twice, but %d were lost at kills", twice, lostRows)
	}
	t.Logf("%d runs, %d kills: billed %d tokens for a %d-token corpus (+%.1f%%); %d chunks billed twice, at most %d (%d tokens) at one kill; "+
		"kills × concurrency × batch would allow %d chunks, %d tokens",
		len(runs), kills, ledger.Totals.PromptTokens, plan.Tokens, 100*float64(lostTokens)/float64(plan.Tokens), twice, worstRows, worstTokens,
		kills*crashConcurrency*crashBatch, int64(kills)*crashConcurrency*int64(maxBatchTokens))
}

// copyCounts returns a copy of m.
func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// testSignalStops sends sig to a child once a part is committed, while a
// request is held in flight: the child finishes it, commits, exits 130, and
// a resume completes with every text billed exactly once.
func testSignalStops(t *testing.T, bin, root string, spec planner.RebuildSpec, tok tokenizer.Tokenizer, plan planner.ModelEstimate, sig syscall.Signal) {
	prov, baseURL := newHookedProvider(t, 5*time.Millisecond)
	out := filepath.Join(t.TempDir(), "checkpoint")
	const heldRequest = 3
	held, release := make(chan struct{}), make(chan struct{})
	prov.setHook(func(ev string, n int) {
		if ev == "arrive" && n == heldRequest {
			close(held)
			<-release
		}
	})
	cmd := childRebuild(bin, baseURL, out, root)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	committed := make(chan struct{})
	var stderr bytes.Buffer
	var stderrMu sync.Mutex
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pipe)
		once := sync.OnceFunc(func() { close(committed) })
		for sc.Scan() {
			stderrMu.Lock()
			stderr.Write(sc.Bytes())
			stderr.WriteByte('\n')
			stderrMu.Unlock()
			if strings.Contains(sc.Text(), "committed checkpoint part") {
				once()
			}
		}
	}()
	<-committed
	<-held
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-copied
	werr := cmd.Wait()
	var exit *exec.ExitError
	prov.settle()
	if !errors.As(werr, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("after %s: exit %v, want code %d\n%s", sig, werr, exitInterrupted, stderr.String())
	}
	var sum planner.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Stopped != "interrupted" {
		t.Errorf("summary after %s: stopped %q (%v), want interrupted", sig, sum.Stopped, err)
	}
	state := &checkpointState{out: out, seen: map[string]bool{}, rows: map[string]int{}, toks: map[string]int32{}}
	if _, temps := state.update(t); len(temps) > 0 {
		t.Errorf("temp files left by a clean stop: %q", temps)
	}
	led := prov.sim.Ledger()
	if led.Totals.Billed < heldRequest {
		t.Errorf("%d requests billed before the stop, want the held one (number %d) finished too", led.Totals.Billed, heldRequest)
	}
	if state.total != led.Totals.BilledInputs {
		t.Errorf("the interrupted run committed %d rows of the %d it was billed for", state.total, led.Totals.BilledInputs)
	}
	if int64(state.total) >= plan.Chunks {
		t.Fatalf("the signal came too late: all %d chunks were embedded", state.total)
	}

	resume := childRebuild(bin, baseURL, out, root)
	if b, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	prov.settle()
	state.update(t)
	rep, err := planner.Verify(t.Context(), tok, checkpoint.NewDir(out), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Duplicates != 0 || state.total != rep.Expected {
		t.Errorf("Verify = %+v with %d rows, want complete, each chunk once", rep, state.total)
	}
	led = prov.sim.Ledger()
	for sha, n := range led.Inputs {
		if n != state.rows[sha] {
			t.Errorf("text %s… billed %d times for %d chunks", sha[:12], n, state.rows[sha])
		}
	}
	if led.Totals.PromptTokens != plan.Tokens {
		t.Errorf("billed %d tokens for a %d-token corpus", led.Totals.PromptTokens, plan.Tokens)
	}
}

// TestRebuildBudgetCLI stops `reembed rebuild --budget-usd` below the corpus
// cost with exit 3 and a summary that says why; `verify` then exits 4; a
// rerun without the cap completes, reporting progress as JSON lines; another
// chunking is refused with exit 2; `verify` exits 0, and 4 once a part is
// deleted.
func TestRebuildBudgetCLI(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "corpus")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("rebuild resume budget chunk token vector parquet commit the of and to in a is")
	for i := range 12 {
		var b strings.Builder
		for j := range 400 {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("doc-%02d.txt", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "checkpoint")
	common := []string{"--out", out, "--dimensions", "8", "--chunk-tokens", "64", "--chunk-overlap", "0",
		"--batch-size", "4", "--part-rows", "4", "--concurrency", "1", "--progress-interval", "1h", "--format", "json"}

	// 12 documents × ~400 tokens at $0.02/1M ≈ $0.0001: cap at a third.
	code, stdout, stderr := runMain(t, append(append([]string{"rebuild", "--budget-usd", "0.00003"}, common...), root)...)
	if code != exitBudget {
		t.Fatalf("rebuild with a budget: exit %d, want %d\n%s", code, exitBudget, stderr)
	}
	var sum planner.Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	if sum.Stopped != "budget" || sum.Cost > 30 || sum.CommittedChunks == 0 || sum.CommittedChunks != sum.EmbeddedChunks {
		t.Errorf("summary: stopped %q, cost $%s, committed %d of %d embedded; want budget, ≤ $0.00003, all committed",
			sum.Stopped, sum.Cost, sum.CommittedChunks, sum.EmbeddedChunks)
	}
	if !strings.Contains(stderr, "budget") || !strings.Contains(stderr, "--budget-usd") {
		t.Errorf("stderr does not say the budget stopped the job and how to resume:\n%s", stderr)
	}

	code, _, stderr = runMain(t, "verify", "--checkpoint", out, root)
	if code != exitIncomplete {
		t.Errorf("verify of a partial checkpoint: exit %d, want %d\n%s", code, exitIncomplete, stderr)
	}

	code, stdout, stderr = runMain(t, append(append([]string{"rebuild"}, common...), root)...)
	if code != exitOK {
		t.Fatalf("rebuild without a budget: exit %d\n%s", code, stderr)
	}
	var sum2 planner.Summary
	if err := json.Unmarshal([]byte(stdout), &sum2); err != nil {
		t.Fatal(err)
	}
	if sum2.ReusedChunks != sum.CommittedChunks || sum2.Stopped != "complete" {
		t.Errorf("resume reused %d chunks (stopped %q), want the %d committed under the budget", sum2.ReusedChunks, sum2.Stopped, sum.CommittedChunks)
	}
	// Not a terminal: progress is JSON lines on stderr, the last one final.
	var last map[string]any
	for _, line := range strings.Split(stderr, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["event"] == "progress" {
			last = ev
		}
	}
	if last == nil || last["state"] != "complete" || last["embedded_chunks"] != float64(sum2.EmbeddedChunks) || last["planned_chunks"] != float64(sum2.PlannedChunks) {
		t.Errorf("last progress line on stderr = %v, want the complete snapshot of %d chunks\n%s", last, sum2.EmbeddedChunks, stderr)
	}

	// Another chunking is refused (exit 2) and names --force; nothing changes.
	code, _, stderr = runMain(t, append(append([]string{"rebuild"}, common...), "--chunk-tokens", "32", root)...)
	if code != exitUsage || !strings.Contains(stderr, "--force") {
		t.Errorf("rebuild with another --chunk-tokens: exit %d, want %d naming --force\n%s", code, exitUsage, stderr)
	}

	code, stdout, stderr = runMain(t, "verify", "--checkpoint", out, "--format", "json", root)
	if code != exitOK {
		t.Fatalf("verify of a complete checkpoint: exit %d\n%s%s", code, stdout, stderr)
	}
	var rep struct {
		Complete bool `json:"complete"`
		checkpoint.Report
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || !rep.Complete || rep.Present != rep.Expected || rep.Duplicates != 0 {
		t.Errorf("verify JSON = %+v (%v), want complete", rep, err)
	}

	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	slices.Sort(parts)
	if len(parts) == 0 {
		t.Fatal("no parts")
	}
	if err := os.Remove(parts[0]); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runMain(t, "verify", "--checkpoint", out, root)
	if code != exitIncomplete || !strings.Contains(stdout, "missing") {
		t.Errorf("verify after deleting %s: exit %d, want %d, listing missing chunks\n%s", filepath.Base(parts[0]), code, exitIncomplete, stdout)
	}
}
