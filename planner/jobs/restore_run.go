package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
)

// scheduleLocked starts queued restores, oldest first, while slots are free
// and no running restore writes the same table.
func (m *RestoreManager) scheduleLocked() {
	if m.closing || m.base == nil {
		return
	}
	var queued []*restoreJob
	for _, j := range m.jobs {
		if j.State == Queued {
			queued = append(queued, j)
		}
	}
	sortOldestFirst(queued, func(j *restoreJob) (time.Time, string) { return j.CreatedAt, j.ID })
	for _, j := range queued {
		if m.running >= m.cfg.MaxRunning {
			return
		}
		busy := false
		for _, o := range m.jobs {
			busy = busy || o.State == Running && o.Spec.DSN == j.Spec.DSN && o.Spec.Table == j.Spec.Table
		}
		if !busy {
			m.startLocked(j)
		}
	}
}

// startLocked runs j on its own goroutine, under a context the manager owns.
func (m *RestoreManager) startLocked(j *restoreJob) {
	ctx, cancel := context.WithCancelCause(m.base)
	now := m.now().UTC()
	j.State, j.cancel = Running, cancel
	j.Runs++
	j.StartedAt, j.UpdatedAt = &now, now
	j.Progress = store.Progress{Phase: "starting"}
	j.Report, j.Verify, j.VerifyPassed = nil, nil, nil
	if err := m.persistLocked(j); err != nil {
		m.log.Error("writing restore job file", logJobID, j.ID, logErr, err)
	}
	m.running++
	m.runs.Add(1)
	go m.run(ctx, j, j.Spec, j.CheckpointDir, j.Runs)
}

// run executes one run and records how it ended.
func (m *RestoreManager) run(ctx context.Context, j *restoreJob, spec RestoreSpec, ckdir string, run int) {
	defer m.runs.Done()
	log := m.log.With(logJobID, j.ID)
	log.Info("restore job run started", logRun, run, logCheckpointDir, ckdir)
	state, lastErr := m.execute(ctx, log, j, spec, ckdir)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running--
	now := m.now().UTC()
	j.State, j.LastError, j.cancel, j.UpdatedAt = state, lastErr, nil, now
	if state != Interrupted {
		j.FinishedAt = &now
	}
	if err := m.persistLocked(j); err != nil {
		log.Error("writing restore job file", logErr, err)
	}
	log.Info("restore job run ended", logState, string(state), logCause, fmt.Sprint(context.Cause(ctx)))
	m.scheduleLocked()
}

// execute restores (and verifies) and maps the outcome to a state and a
// last_error without the password.
func (m *RestoreManager) execute(ctx context.Context, log *slog.Logger, j *restoreJob, spec RestoreSpec, ckdir string) (state State, lastErr string) {
	password := ""
	if spec.PasswordEnv != "" {
		password = m.cfg.Getenv(spec.PasswordEnv)
	}
	scrub := func(s string) string {
		if password != "" {
			s = strings.ReplaceAll(s, password, "xxxxx")
		}
		return s
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("restore job panicked", logPanic, scrub(fmt.Sprint(p)))
			state, lastErr = Failed, "internal error (see the server log)"
		}
	}()
	err := m.restore(ctx, log, j, spec, ckdir, password, scrub)
	switch {
	case err == nil:
		return Succeeded, ""
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrCancelled):
		return Cancelled, ""
	case ctx.Err() != nil:
		return Interrupted, ""
	}
	msg := scrub(err.Error())
	log.Warn("restore job failed", logErr, msg)
	return Failed, msg
}

// restore is one run: open the checkpoint and the sink, load, index,
// publish, then verify when asked.
func (m *RestoreManager) restore(ctx context.Context, log *slog.Logger, j *restoreJob, spec RestoreSpec, ckdir, password string, scrub func(string) string) error {
	src, err := m.checkpointStore(ctx, ckdir, "checkpoint")
	if err != nil {
		return err
	}
	man, err := anyManifest(ctx, src)
	if err != nil {
		return fmt.Errorf("reading the checkpoint's manifest: %w", err)
	}
	target := RestoreTarget{DSN: spec.DSN, Password: password, Table: spec.Table, Mode: spec.Mode,
		Notice: func(msg string) { m.warn(j, scrub(msg)) }}
	sink, err := m.cfg.OpenSink(ctx, target)
	if err != nil {
		return err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	opts := store.Options{Metric: spec.Metric, Logger: log, Now: m.cfg.Now, Progress: func(p store.Progress) { m.progress(j, p) },
		Index: store.IndexOptions{Kind: spec.Index, M: spec.HNSWM, EfConstruction: spec.HNSWEfConstruction, Lists: spec.IVFFlatLists,
			MaintenanceWorkMem: spec.MaintenanceWorkMem, MaxIndexMemory: spec.MaxIndexMemory, ParallelWorkers: spec.ParallelWorkers}}
	rep, err := store.Restore(ctx, src, man, sink, opts)
	m.mu.Lock()
	j.Report = &rep
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if !spec.Verify {
		return nil
	}
	return m.verify(ctx, j, spec, target, src)
}

// verify compares the restored table with the checkpoint.
func (m *RestoreManager) verify(ctx context.Context, j *restoreJob, spec RestoreSpec, target RestoreTarget, src checkpoint.Store) error {
	m.mu.Lock()
	p := j.Progress
	m.mu.Unlock()
	p.Phase = "verify"
	m.progress(j, p)
	rd, err := m.cfg.OpenSink(ctx, target)
	if err != nil {
		return err
	}
	defer rd.Close(context.WithoutCancel(ctx))
	if err := rd.Attach(ctx, spec.Metric); err != nil {
		return err
	}
	queries := spec.IndexQueries
	if spec.Index == "none" {
		queries = -1
	}
	rep, err := store.Verify(ctx, src, rd, store.VerifyOptions{Sample: spec.VerifySample, IndexQueries: queries, Round: rd.VerifyRound()})
	if err != nil {
		return fmt.Errorf("verifying the restored table: %w", err)
	}
	ok := rep.Complete() && (rep.IndexQueries == 0 || rep.RecallAt1 >= spec.MinRecall)
	m.mu.Lock()
	j.Verify, j.VerifyPassed = &rep, &ok
	m.mu.Unlock()
	switch {
	case !rep.Complete():
		return fmt.Errorf("verify: table %s differs from the checkpoint: %d missing, %d extra, %d stale, %d of %d sampled vectors differ (resume the restore)",
			spec.Table, rep.Missing, rep.Extra, rep.Stale, rep.VectorsDiffering, rep.VectorsSampled)
	case !ok:
		return fmt.Errorf("verify: index recall@1 %.2f below min_recall %.2f (rebuild the index, or raise hnsw.ef_search)", rep.RecallAt1, spec.MinRecall)
	}
	return nil
}

// progress records a snapshot; job.json is rewritten at most every
// ProgressInterval, and at every phase change.
func (m *RestoreManager) progress(j *restoreJob, p store.Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.State != Running {
		return
	}
	phaseChanged := p.Phase != j.Progress.Phase || p.IndexPhase != j.Progress.IndexPhase
	j.Progress = p
	now := m.now()
	j.UpdatedAt = now.UTC()
	if !phaseChanged && now.Sub(j.lastWrite) < m.cfg.ProgressInterval {
		m.notifyLocked()
		return
	}
	w, err := m.encodeLocked(j)
	if err != nil {
		m.log.Error("writing restore job file", logJobID, j.ID, logErr, err)
		return
	}
	m.writes.Add(1)
	go func() {
		defer m.writes.Done()
		if err := m.files.write(w); err != nil {
			m.log.Error("writing restore job file", logJobID, w.id, logErr, err)
		}
	}()
}

// warn records a server notice, keeping the last maxWarnings.
func (m *RestoreManager) warn(j *restoreJob, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j.Warnings = append(j.Warnings, msg)
	if len(j.Warnings) > maxWarnings {
		j.Warnings = j.Warnings[len(j.Warnings)-maxWarnings:]
	}
	m.log.Warn("restore: postgres notice", logJobID, j.ID, "notice", msg)
}
