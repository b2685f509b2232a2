package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/reembed/reembed/planner"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/pricing"
)

// jobsCorpus writes a few small documents under a new corpus root.
func jobsCorpus(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{
		"The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the clocks were striking thirteen.",
		"Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, I thought I would sail about.",
		"It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
	} {
		name := filepath.Join(root, "docs", string(rune('a'+i))+".txt")
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// ledger counts, per chunk text, how often a fake embedder was paid for it.
type ledger struct {
	mu     sync.Mutex
	paid   map[string]int
	calls  int
	gate   chan struct{} // when set, the first call waits for it to close
	called chan struct{} // closed at the first call
	once   sync.Once
}

func newLedger(gated bool) *ledger {
	l := &ledger{paid: map[string]int{}, called: make(chan struct{})}
	if gated {
		l.gate = make(chan struct{})
	}
	return l
}

func (l *ledger) embedder() embedder.Embedder {
	return &embeddertest.Fake{Func: func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
		l.once.Do(func() { close(l.called) })
		if l.gate != nil {
			<-l.gate
		}
		l.mu.Lock()
		l.calls++
		for _, in := range req.Inputs {
			l.paid[in.Text]++
		}
		l.mu.Unlock()
		return embeddertest.Vectors(req, "", 8), nil
	}}
}

func (l *ledger) paidTwice() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for text, n := range l.paid {
		if n > 1 {
			out = append(out, text)
		}
	}
	return out
}

func (l *ledger) inputs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.paid)
}

func openTestJobs(t *testing.T, data, root string, l *ledger) *Manager {
	t.Helper()
	m, err := Open(Config{DataDir: data, CorpusRoots: []string{root},
		NewEmbedder: func(Spec) (embedder.Embedder, error) { return l.embedder(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m
}

func testSpec() Spec {
	return Spec{Model: "text-embedding-3-small", Dimensions: 8, Paths: []string{"docs"}, ChunkTokens: 8, BatchSize: 2, PartRows: 2, Concurrency: 1}
}

func readJobFile(t *testing.T, data, id string) jobFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "jobs", id, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f jobFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestJobsRunToSuccessAndPersist(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	l := newLedger(false)
	m := openTestJobs(t, data, root, l)
	j, created, err := m.Submit(t.Context(), testSpec(), "")
	if err != nil || !created {
		t.Fatalf("Submit = %v, %v", created, err)
	}
	if j.State != Queued && j.State != Running {
		t.Errorf("state after submit = %s, want queued or running", j.State)
	}
	j, err = m.Wait(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != Succeeded || j.LastError != "" {
		t.Fatalf("job ended %s (%q), want succeeded", j.State, j.LastError)
	}
	if j.Progress.CommittedChunks == 0 || j.Progress.CommittedChunks != j.Progress.PlannedChunks {
		t.Errorf("committed %d chunks, planned %d", j.Progress.CommittedChunks, j.Progress.PlannedChunks)
	}
	if int(j.Progress.CommittedChunks) != l.inputs() || len(l.paidTwice()) > 0 {
		t.Errorf("committed %d chunks, paid for %d distinct (%d twice)", j.Progress.CommittedChunks, l.inputs(), len(l.paidTwice()))
	}
	if j.BilledTokens == 0 || j.CostUSD <= 0 || j.Runs != 1 || j.FinishedAt == nil {
		t.Errorf("totals: billed %d, cost %s, runs %d, finished %v", j.BilledTokens, j.CostUSD, j.Runs, j.FinishedAt)
	}
	f := readJobFile(t, data, j.ID)
	if f.Job.State != Succeeded || f.Job.Spec.Paths[0] != "docs" {
		t.Errorf("job file: state %s, paths %v", f.Job.State, f.Job.Spec.Paths)
	}
	parts, _ := filepath.Glob(filepath.Join(data, "jobs", j.ID, "checkpoint", "part-*.parquet"))
	if len(parts) != j.Progress.Parts || len(parts) == 0 {
		t.Errorf("%d part files, progress says %d", len(parts), j.Progress.Parts)
	}
	if err := m.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A new manager on the same data directory lists the job and runs nothing.
	l2 := newLedger(false)
	m2 := openTestJobs(t, data, root, l2)
	got, err := m2.Get(j.ID)
	if err != nil || got.State != Succeeded || got.BilledTokens != j.BilledTokens {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if l2.inputs() != 0 {
		t.Errorf("reopen embedded %d chunks again", l2.inputs())
	}
	if list := m2.List(); len(list) != 1 || list[0].ID != j.ID {
		t.Errorf("List = %v", list)
	}
}

func TestJobsIdempotencyKey(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	m := openTestJobs(t, data, root, newLedger(false))
	a, created, err := m.Submit(t.Context(), testSpec(), "key-1")
	if err != nil || !created {
		t.Fatal(created, err)
	}
	b, created, err := m.Submit(t.Context(), testSpec(), "key-1")
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("retry with the same key: id %s (first %s), created %v, err %v", b.ID, a.ID, created, err)
	}
	other := testSpec()
	other.ChunkTokens = 16
	if _, _, err := m.Submit(t.Context(), other, "key-1"); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Errorf("same key, other spec: err = %v, want ErrIdempotencyKeyReused", err)
	}
	m.Wait(t.Context(), a.ID)
	if n := len(m.List()); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
	// The key survives a restart.
	m.Shutdown(t.Context())
	m2 := openTestJobs(t, data, root, newLedger(false))
	if c, created, err := m2.Submit(t.Context(), testSpec(), "key-1"); err != nil || created || c.ID != a.ID {
		t.Errorf("after restart: id %s, created %v, err %v", c.ID, created, err)
	}
}

func TestJobsCancelThenResume(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	l := newLedger(true)
	m := openTestJobs(t, data, root, l)
	j, _, err := m.Submit(t.Context(), testSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	<-l.called // the first request is in flight
	if _, err := m.Resume(t.Context(), j.ID, ResumeOptions{}); !errors.Is(err, ErrActive) {
		t.Errorf("resume while running: %v, want ErrActive", err)
	}
	same := testSpec()
	same.OutDir = j.CheckpointDir
	if _, _, err := m.Submit(t.Context(), same, ""); !errors.Is(err, ErrActive) {
		t.Errorf("a second job on the running job's checkpoint: %v, want ErrActive", err)
	}
	c, err := m.Cancel(t.Context(), j.ID)
	if err != nil || !c.CancelRequested {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	close(l.gate)
	j, _ = m.Wait(t.Context(), j.ID)
	if j.State != Cancelled {
		t.Fatalf("after cancel: %s (%s), want cancelled", j.State, j.LastError)
	}
	if j.Progress.CommittedChunks != j.Progress.EmbeddedChunks {
		t.Errorf("cancelled with %d embedded but %d committed", j.Progress.EmbeddedChunks, j.Progress.CommittedChunks)
	}
	if again, err := m.Cancel(t.Context(), j.ID); err != nil || again.State != Cancelled {
		t.Errorf("second cancel: %s, %v", again.State, err)
	}
	if _, err := m.Resume(t.Context(), j.ID, ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	j, _ = m.Wait(t.Context(), j.ID)
	if j.State != Succeeded || j.Runs != 2 {
		t.Fatalf("after resume: %s after %d runs (%s)", j.State, j.Runs, j.LastError)
	}
	if twice := l.paidTwice(); len(twice) > 0 {
		t.Errorf("%d chunks paid twice across cancel and resume", len(twice))
	}
	if _, err := m.Cancel(t.Context(), j.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("cancel a succeeded job: %v, want ErrFinished", err)
	}
	if _, err := m.Get("rb_00000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestJobsShutdownInterruptsAndNextStartResumes(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	l := newLedger(true)
	m := openTestJobs(t, data, root, l)
	j, _, err := m.Submit(t.Context(), testSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	<-l.called
	done := make(chan error, 1)
	go func() { done <- m.Shutdown(t.Context()) }()
	// Shutdown waits for the request in flight; let it finish.
	// Shutdown marks the manager closing and cancels the run under one lock,
	// so once Closing reports true the job is already being interrupted.
	for !m.Closing() {
		time.Sleep(time.Millisecond)
	}
	close(l.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Submit(t.Context(), testSpec(), ""); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("submit after shutdown: %v", err)
	}
	f := readJobFile(t, data, j.ID)
	if f.Job.State != Interrupted {
		t.Fatalf("job file after shutdown says %s, want interrupted", f.Job.State)
	}
	// A job file write that a crash interrupted leaves a temp file: removed on open.
	stray := filepath.Join(data, "jobs", j.ID, "job.json.tmp-123")
	os.WriteFile(stray, []byte("{"), 0o644)
	before := l.inputs()

	m2 := openTestJobs(t, data, root, l) // same ledger: nothing may be paid twice
	got, err := m2.Wait(t.Context(), j.ID)
	if err != nil || got.State != Succeeded {
		t.Fatalf("after restart: %s (%s), %v", got.State, got.LastError, err)
	}
	if got.Runs != 2 || got.Progress.ReusedChunks != int64(before) {
		t.Errorf("runs %d, reused %d chunks, want 2 and %d", got.Runs, got.Progress.ReusedChunks, before)
	}
	if twice := l.paidTwice(); len(twice) > 0 {
		t.Errorf("%d chunks paid twice across the restart", len(twice))
	}
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stray temp job file: %v", err)
	}
}

func TestJobsBudget(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	m := openTestJobs(t, data, root, newLedger(false))
	spec := testSpec()
	spec.Model = "text-embedding-3-large" // $0.13 per 1M tokens: 1 micro-dollar buys ~7 tokens
	spec.BudgetUSD = 2
	j, _, err := m.Submit(t.Context(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	j, _ = m.Wait(t.Context(), j.ID)
	if j.State != BudgetExhausted || !strings.Contains(j.LastError, "budget") {
		t.Fatalf("state %s (%q), want budget_exhausted", j.State, j.LastError)
	}
	if j.CostUSD > spec.BudgetUSD {
		t.Errorf("spent %s of a %s budget", j.CostUSD, spec.BudgetUSD)
	}
	more := pricing.Micros(1_000_000)
	if _, err := m.Resume(t.Context(), j.ID, ResumeOptions{BudgetUSD: &more}); err != nil {
		t.Fatal(err)
	}
	j, _ = m.Wait(t.Context(), j.ID)
	if j.State != Succeeded || j.Spec.BudgetUSD != more {
		t.Errorf("after raising the budget: %s, budget %s", j.State, j.Spec.BudgetUSD)
	}
}

func TestJobsSubmitRejects(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	m := openTestJobs(t, data, root, newLedger(false))
	for _, tc := range []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"unknown model", func(s *Spec) { s.Model = "nope" }, "model"},
		{"no paths", func(s *Spec) { s.Paths = nil }, "paths"},
		{"dotdot", func(s *Spec) { s.Paths = []string{"../x"} }, "paths"},
		{"absolute outside", func(s *Spec) { s.Paths = []string{"/etc"} }, "paths"},
		{"missing", func(s *Spec) { s.Paths = []string{"nope"} }, "paths"},
		{"provider", func(s *Spec) { s.Provider = "openai" }, "provider"},
		{"overlap", func(s *Spec) { s.ChunkOverlap = 8 }, "chunk_overlap"},
		{"negative budget", func(s *Spec) { s.BudgetUSD = -1 }, "budget_usd"},
		{"out dir escapes", func(s *Spec) { s.OutDir = "../elsewhere" }, "out_dir"},
		{"out dir in jobs", func(s *Spec) { s.OutDir = "jobs/x" }, "out_dir"},
		{"dimensions", func(s *Spec) { s.Dimensions = 5000 }, "dimensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			tc.edit(&spec)
			_, _, err := m.Submit(t.Context(), spec, "")
			fe, ok := errors.AsType[*planner.FieldError](err)
			if !ok || fe.Field != tc.field {
				t.Errorf("err = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
	if n := len(m.List()); n != 0 {
		t.Errorf("%d jobs created by bad specs", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(data, "jobs")); len(ents) != 0 {
		t.Errorf("bad specs left %d entries in jobs/", len(ents))
	}
}

// TestJobsDataDirLock: a second job manager on the same data directory is
// refused while the first runs (it would run the same jobs twice), and
// allowed once the first has shut down.
func TestJobsDataDirLock(t *testing.T) {
	data, root := t.TempDir(), jobsCorpus(t)
	m := openTestJobs(t, data, root, newLedger(false))
	_, err := Open(Config{DataDir: data, CorpusRoots: []string{root},
		NewEmbedder: func(Spec) (embedder.Embedder, error) { return nil, errors.New("unused") }})
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Open on a data directory in use: err = %v, want ErrDataDirInUse", err)
	}
	if err := m.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	openTestJobs(t, data, root, newLedger(false))
}
