package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
)

// stateOf is the job state of a run's typed outcome: the one place the
// planner's outcomes become the job's vocabulary (the API's state strings).
// An interrupted run is cancelled when a cancel stopped it (cause
// ErrCancelled) and interrupted otherwise (a server shutdown).
func stateOf(o planner.Outcome, cause error) State {
	switch o {
	case planner.OutcomeComplete:
		return Succeeded
	case planner.OutcomeBudgetExceeded:
		return BudgetExhausted
	case planner.OutcomeInterrupted:
		if errors.Is(cause, ErrCancelled) {
			return Cancelled
		}
		return Interrupted
	default:
		return Failed
	}
}

// outcomeOf is the outcome of a run that returned sum and err: the
// summary's, classified by the planner; a run that ended before it had a
// summary failed, or was interrupted when its ctx ended. As before the
// typed outcome, a run whose ctx ended with an error counts as
// interrupted, whatever failed meanwhile (a cancel is never a failure).
func outcomeOf(ctx context.Context, sum *planner.Summary, err error) planner.Outcome {
	o := planner.OutcomeFailed
	switch {
	case sum != nil:
		o = sum.Outcome
	case err == nil:
		o = planner.OutcomeComplete
	}
	if err != nil && ctx.Err() != nil {
		return planner.OutcomeInterrupted
	}
	return o
}

// execute runs the rebuild and returns its outcome, and the error text for
// last_error (empty when it succeeded or was stopped on purpose).
func (m *Manager) execute(ctx context.Context, log *slog.Logger, j *job, spec Spec, prior runTotals, run int) (o planner.Outcome, lastErr string) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("rebuild job panicked", logPanic, fmt.Sprint(p))
			o, lastErr = planner.OutcomeFailed, "internal error (see the server log)"
		}
	}()
	rspec, ckdir, err := m.prepare(spec, j.ID)
	if err != nil {
		return planner.OutcomeFailed, err.Error()
	}
	if spec.BudgetUSD > 0 {
		left := spec.BudgetUSD - prior.CostUSD
		if left <= 0 {
			return planner.OutcomeBudgetExceeded, fmt.Sprintf("%v: $%s of the $%s budget is spent; resume with a higher budget_usd", planner.ErrBudgetExceeded, prior.CostUSD, spec.BudgetUSD)
		}
		rspec.Budget = spec.BudgetUSD // the checkpoint's spend ledger counts every run
	}
	emb, err := m.cfg.NewEmbedder(spec)
	if err != nil {
		return planner.OutcomeFailed, fmt.Sprintf("building the embedder: %v", err)
	}
	dir := filepath.Join(m.cfg.DataDir, filepath.FromSlash(ckdir))
	if err := os.MkdirAll(dir, 0o755); err != nil { // auto mode plans from the checkpoint before opening it
		return planner.OutcomeFailed, fmt.Sprintf("creating the checkpoint directory %s: %v", ckdir, err)
	}
	rb := &planner.Rebuilder{
		Embedder:         emb,
		Tokenizer:        m.tok,
		Store:            checkpoint.NewDir(dir),
		Logger:           log,
		OnProgress:       m.progressSink(log, j),
		ProgressInterval: m.cfg.ProgressInterval,
		GracePeriod:      m.cfg.GracePeriod,
		Now:              m.cfg.Now,
	}
	log.Info("rebuild job run started", logRun, run, logCheckpointDir, ckdir, logMode, spec.Mode)
	sum, err := m.runMode(ctx, rb, spec, rspec)
	if err != nil {
		err = m.clientError(err, rspec.Paths, spec.Paths)
	}
	o = outcomeOf(ctx, sum, err)
	m.mu.Lock()
	j.finalSeen = true // later progress ticks lost the race with the end
	m.mu.Unlock()
	switch o {
	case planner.OutcomeComplete, planner.OutcomeInterrupted:
		return o, ""
	}
	if err == nil {
		return o, ""
	}
	return o, err.Error()
}

// runMode runs the rebuild in the spec's mode, through the planner entry
// points the CLI's rebuild --mode uses.
func (m *Manager) runMode(ctx context.Context, rb *planner.Rebuilder, spec Spec, rspec planner.RebuildSpec) (*planner.Summary, error) {
	if spec.Mode == "" || spec.Mode == planner.ModeSync {
		return rb.Run(ctx, rspec)
	}
	api, err := m.cfg.NewBatchAPI(spec)
	if err != nil {
		return nil, fmt.Errorf("building the batch api: %w", err)
	}
	br := &planner.BatchRunner{Rebuilder: rb, API: api, Opts: spec.batchOptions()}
	if spec.Mode == planner.ModeBatch {
		return br.Run(ctx, rspec)
	}
	return planner.RunAuto(ctx, br, rspec, planner.AutoOptions{RTO: spec.RTO.D(), P50: spec.BatchP50.D(), P90: spec.BatchP90.D()})
}

// batchOptions are the planner's batch options of the spec (zero values
// take the planner's defaults).
func (s Spec) batchOptions() planner.BatchOptions {
	tok := s.BatchEnqueuedTokens
	if tok <= 0 && s.BatchTier > 0 {
		tok = planner.EnqueuedTokensByTier[s.BatchTier]
	}
	return planner.BatchOptions{MaxRequests: s.BatchMaxRequests, EnqueuedTokens: tok,
		PollMin: s.BatchPollMin.D(), PollMax: s.BatchPollMax.D()}
}

// progressSink records a run's progress snapshots in the job and its file;
// a snapshot that arrives after the run ended is dropped.
func (m *Manager) progressSink(log *slog.Logger, j *job) func(planner.Progress) {
	return func(p planner.Progress) {
		m.mu.Lock()
		if j.finalSeen || j.State != Running {
			m.mu.Unlock()
			return
		}
		j.Progress = p
		j.UpdatedAt = m.now().UTC()
		w, err := m.encodeLocked(j)
		m.mu.Unlock()
		if err == nil {
			err = m.files.write(w)
		}
		if err != nil {
			log.Error("writing job file", logErr, err)
		}
	}
}
