package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

var stoppingRE = regexp.MustCompile(`^stopping: waiting for (\d+) requests in flight \(Ctrl-C again to abort\)$`)

// stderrWatcher copies a child's stderr and reports the "stopping:" line.
type stderrWatcher struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	stopping chan int // the in-flight count of the stopping line
	done     chan struct{}
}

func watchStderr(r io.Reader) *stderrWatcher {
	w := &stderrWatcher{stopping: make(chan int, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.mu.Lock()
			w.buf.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			if m := stoppingRE.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				w.stopping <- n
			}
		}
	}()
	return w
}

func (w *stderrWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestStopStartsNoRequest signals a rebuild whose batches wait on the rate
// limiter (concurrency 4, 120 requests per minute): the child prints the
// stopping line at once, and the provider sees no request arrive after it
// beyond the N it says are in flight; it exits 130. SIGINT and SIGTERM.
func TestStopStartsNoRequest(t *testing.T) {
	t.Parallel()
	bin := buildReembed(t)
	root, _, _ := sampleSetup(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			prov, baseURL := newHookedProvider(t, 5*time.Millisecond)
			arrived2 := make(chan struct{})
			var once sync.Once
			prov.setHook(func(ev string, n int) {
				if ev == "arrive" && n == 2 {
					once.Do(func() { close(arrived2) })
				}
			})
			out := filepath.Join(t.TempDir(), "checkpoint")
			cmd := childRebuild(bin, baseURL, out, filepath.Join(root, "html"), "--concurrency", "4", "--rpm", "120")
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			w := watchStderr(pipe)
			<-arrived2
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var inFlight int
			select {
			case inFlight = <-w.stopping:
			case <-w.done:
				t.Fatalf("no stopping line before the child ended:\n%s", w.String())
			}
			atLine, _ := prov.counts()
			<-w.done
			werr := cmd.Wait()
			prov.settle()
			var exit *exec.ExitError
			if !errors.As(werr, &exit) || exit.ExitCode() != exitInterrupted {
				t.Fatalf("exit %v, want %d\n%s", werr, exitInterrupted, w.String())
			}
			end, _ := prov.counts()
			if end-atLine > inFlight {
				t.Errorf("%d requests arrived after the stopping line, which counted %d in flight", end-atLine, inFlight)
			}
			t.Logf("%s: %d in flight at the stop; %d requests arrived after the line; %d in all", sig, inFlight, end-atLine, end)
		})
	}
}

// TestSecondSignalAborts: with a request held on the wire, a second SIGINT
// exits 130 at once instead of waiting for it; the next run resumes and
// completes with every chunk committed once.
func TestSecondSignalAborts(t *testing.T) {
	t.Parallel()
	bin := buildReembed(t)
	root, tok, model := sampleSetup(t)
	html := filepath.Join(root, "html")
	prov, baseURL := newHookedProvider(t, 5*time.Millisecond)
	held, release := make(chan struct{}), make(chan struct{})
	prov.setHook(func(ev string, n int) {
		if ev == "arrive" && n == 3 {
			close(held)
			<-release
		}
	})
	out := filepath.Join(t.TempDir(), "checkpoint")
	cmd := childRebuild(bin, baseURL, out, html)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	w := watchStderr(pipe)
	<-held
	cmd.Process.Signal(syscall.SIGINT)
	if n := <-w.stopping; n < 1 {
		t.Errorf("stopping line counts %d in flight, want the held request", n)
	}
	cmd.Process.Signal(syscall.SIGINT)
	<-w.done
	werr := cmd.Wait() // returns while the request is still held: the abort did not wait
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("after a second SIGINT: exit %v, want %d\n%s", werr, exitInterrupted, w.String())
	}
	close(release)
	prov.settle()
	prov.setHook(nil)
	if b, err := childRebuild(bin, baseURL, out, html).CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	spec := planner.RebuildSpec{Paths: []string{html}, Model: model, ChunkTokens: planner.DefaultChunkTokens, ChunkOverlap: planner.DefaultChunkOverlap}
	rep, err := planner.Verify(t.Context(), tok, checkpoint.NewDir(out), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Duplicates != 0 {
		t.Errorf("after the abort and a resume: Verify = %+v, want complete without duplicates", rep)
	}
}

// TestBudgetHoldsAcrossKills SIGKILLs `rebuild --budget-usd B` again and
// again at random requests until a run stops on the budget: the provider's
// ledger never bills more than B over all the runs. Reservations open at a
// kill count as spent, so the documented worst case over B is zero for a
// provider that bills our count.
func TestBudgetHoldsAcrossKills(t *testing.T) {
	t.Parallel()
	bin := buildReembed(t)
	root, tok, model := sampleSetup(t)
	html := filepath.Join(root, "html")
	est, err := planner.Run(t.Context(), tok, planner.EstimateRequest{Paths: []string{html}, Models: []pricing.Model{model},
		ChunkTokens: planner.DefaultChunkTokens, ChunkOverlap: planner.DefaultChunkOverlap, Limits: planner.Limits{BatchSize: crashBatch}})
	if err != nil {
		t.Fatal(err)
	}
	full := est.Estimates[0].CostUSD
	budget := full * 2 / 3
	prov, baseURL := newHookedProvider(t, 10*time.Millisecond)
	out := filepath.Join(t.TempDir(), "checkpoint")
	kills, runs := 0, 0
	for ; runs < 30; runs++ {
		killAt := 1 + runs%3
		cmd := childRebuild(bin, baseURL, out, html, "--budget-usd", budget.String())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		base, _ := prov.counts()
		var started sync.WaitGroup
		started.Add(1)
		proc := cmd
		var once sync.Once
		prov.setHook(func(ev string, n int) {
			if ev == "arrive" && n == base+killAt {
				once.Do(func() { started.Wait(); proc.Process.Signal(syscall.SIGKILL) })
			}
		})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started.Done()
		werr := cmd.Wait()
		prov.settle()
		prov.setHook(nil)
		var exit *exec.ExitError
		switch {
		case werr == nil:
			t.Fatalf("run %d completed under a budget of $%s for a $%s corpus", runs, budget, full)
		case errors.As(werr, &exit) && exit.ExitCode() == exitBudget:
			runs++
			goto done
		case errors.As(werr, &exit) && exit.ExitCode() == -1:
			kills++
		default:
			t.Fatalf("run %d: %v\n%s", runs, werr, stderr.String())
		}
	}
	t.Fatalf("no run stopped on the budget after %d runs", runs)
done:
	led := prov.sim.Ledger()
	var billed pricing.Micros
	for _, q := range led.Requests {
		billed += pricing.CostCeil(int64(q.BilledTokens), model.PricePer1M)
	}
	exact := pricing.Cost(led.Totals.PromptTokens, model.PricePer1M)
	if billed > budget {
		t.Errorf("the provider billed $%s (each request rounded up; $%s exactly) over %d runs and %d SIGKILLs, budget $%s", billed, exact, runs, kills, budget)
	}
	t.Logf("budget $%s, corpus $%s: %d runs, %d SIGKILLs, billed $%s exactly ($%s rounded up per request), %d requests",
		budget, full, runs, kills, exact, billed, led.Totals.Billed)
}
