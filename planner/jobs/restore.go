package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/store"
)

// Sentinel errors of [RestoreManager]. Match them with errors.Is.
var (
	// ErrRestoreNotFound: no restore job has that id.
	ErrRestoreNotFound = errors.New("no such restore job")
	// ErrRestoreActive: the job is queued or running (resume), or another
	// active restore writes the same table of the same database (submit).
	ErrRestoreActive = errors.New("restore job is active")
	// ErrRestoreFinished: the job has ended and cannot be cancelled.
	ErrRestoreFinished = errors.New("restore job has finished")
)

// RestoreJob is a restore job as clients see it: a checkpoint loaded into a
// vector store (pgvector), indexed, swapped in and verified. It is a value:
// the manager hands out copies. It never holds a password.
type RestoreJob struct {
	ID    string      `json:"id"`
	State State       `json:"state"`
	Spec  RestoreSpec `json:"spec"`
	// CheckpointDir is the checkpoint restored, relative to the data directory.
	CheckpointDir string `json:"checkpoint_dir"`
	// Progress is the latest snapshot of the current (or last) run: parts
	// loaded and total, rows, and the index build's phase and tuples
	// (pg_stat_progress_create_index).
	Progress store.Progress `json:"progress"`
	// Report is what the last run did (nil until a run ended): parts loaded
	// by it and skipped as loaded by earlier runs, rows it loaded, and the
	// checkpoint's keys.
	Report *store.Report `json:"report,omitempty"`
	// Verify compares the live table with the checkpoint after the restore
	// (nil when not asked or not reached); VerifyPassed sums it up.
	Verify       *store.VerifyReport `json:"verify,omitempty"`
	VerifyPassed *bool               `json:"verify_passed,omitempty"`
	// Warnings are the server's notices (e.g. the index graph not fitting in
	// maintenance_work_mem), the last few.
	Warnings []string `json:"warnings,omitempty"`
	// Runs counts the runs started, including resumes after a restart.
	Runs            int        `json:"runs"`
	CancelRequested bool       `json:"cancel_requested"`
	LastError       string     `json:"last_error,omitempty"`
	IdempotencyKey  string     `json:"idempotency_key,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
}

// maxWarnings bounds RestoreJob.Warnings.
const maxWarnings = 20

// restoreFile is what restores/<id>/job.json holds.
type restoreFile struct {
	Version int        `json:"version"`
	Job     RestoreJob `json:"restore"`
}

// RestoreSink is what a restore job needs of a store: the restore's
// [store.Sink], the verify's [store.Reader], and the verify's attach.
// *pgvector.Sink implements it.
type RestoreSink interface {
	store.Sink
	store.Reader
	// Attach points the sink at the existing table for reading (verify).
	Attach(ctx context.Context, metric string) error
	// VerifyRound maps a checkpoint vector to what the table holds (nil: identity).
	VerifyRound() func([]float32) []float32
	// Close closes the connection.
	Close(ctx context.Context) error
}

// RestoreTarget is where a job's sink connects: what [RestoreSinkOpener] gets.
type RestoreTarget struct {
	// DSN is the connection string, without a password.
	DSN string
	// Password is read from the server's environment variable the spec
	// names in password_env; "" lets the driver read PGPASSWORD or ~/.pgpass.
	Password string
	// Table and Mode ("auto", "swap", "append") as in the spec.
	Table, Mode string
	// Notice receives the server's notices.
	Notice func(string)
}

// RestoreSinkOpener connects to a restore target. Its errors must not hold
// the password (the manager scrubs it too).
type RestoreSinkOpener func(ctx context.Context, t RestoreTarget) (RestoreSink, error)

// RestoreConfig configures [OpenRestores].
type RestoreConfig struct {
	// DataDir holds restores/<id>/job.json; checkpoints restored must be
	// inside it. Required.
	DataDir string
	// OpenSink connects to targets. Required.
	OpenSink RestoreSinkOpener
	// RebuildCheckpoint returns the checkpoint directory (relative to the
	// data directory) of a rebuild job, and whether that job is still
	// active; nil refuses checkpoint_job. [Manager.CheckpointOf] fits.
	RebuildCheckpoint func(id string) (dir string, active bool, err error)
	// Getenv reads password_env; nil means os.Getenv.
	Getenv func(string) string
	// MaxRunning is how many restores run at once (default 1).
	MaxRunning int
	// ProgressInterval bounds how often progress is written to job.json
	// (default 1s); clients always read the latest snapshot.
	ProgressInterval time.Duration
	// Logger receives job start and end records; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RestoreManager runs restore jobs and keeps them durable, as [Manager]
// does rebuilds: each job is restores/<id>/job.json in the data directory,
// written atomically at every state change and progress refresh; a server
// killed mid-restore resumes it at the next [OpenRestores], and the store's
// ledger makes the resume load each row exactly once. It owns its runs'
// contexts. It is safe for concurrent use.
type RestoreManager struct {
	cfg   RestoreConfig
	log   *slog.Logger
	now   func() time.Time
	files *jobFiles // DataDir/restores/<id>/job.json
	lock  *os.File

	base     context.Context
	stopBase context.CancelFunc

	table[restoreJob, RestoreJob] // its mu guards the table and what follows
	running                       int
	closing                       bool
	runs                          sync.WaitGroup
	writes                        sync.WaitGroup // progress writes in flight
}

// restoreJob is the manager's record of one job; guarded by RestoreManager.mu.
type restoreJob struct {
	RestoreJob
	cancel    context.CancelCauseFunc
	lastWrite time.Time
	fileSlot  // orders the writes of its job file
}

func (j *restoreJob) view() RestoreJob {
	v := j.RestoreJob
	v.Warnings = slices.Clone(v.Warnings)
	return v
}

// OpenRestores loads the restore jobs of cfg.DataDir and starts the ones
// that were queued, running (the server was killed) or interrupted (it was
// shut down). It locks DataDir/restores/lock.
func OpenRestores(cfg RestoreConfig) (*RestoreManager, error) {
	if cfg.DataDir == "" || cfg.OpenSink == nil {
		return nil, errors.New("jobs: restores need a data directory and a sink opener")
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 1
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	m := &RestoreManager{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	m.setup((*restoreJob).view, ErrRestoreNotFound)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "restores"), 0o755); err != nil {
		return nil, fmt.Errorf("jobs: creating the restores directory: %w", err)
	}
	data, err := corpus.RealDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("jobs: data directory: %w", err)
	}
	m.cfg.DataDir = data
	m.files = newJobFiles(filepath.Join(data, "restores"), "restore")
	if m.lock, err = lockDataDir(m.files.dir); err != nil {
		return nil, err
	}
	if err := m.load(); err != nil {
		m.lock.Close()
		return nil, err
	}
	m.base, m.stopBase = context.WithCancel(context.Background())
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		if j.State == Running || j.State == Interrupted {
			m.log.Info("restore job resuming after restart", logJobID, j.ID, logState, string(j.State))
			j.State = Queued
			j.UpdatedAt = m.now().UTC()
			if err := m.persistLocked(j); err != nil {
				return nil, err
			}
		}
	}
	m.scheduleLocked()
	return m, nil
}

// load reads every restores/<id>/job.json.
func (m *RestoreManager) load() error {
	return loadJobFiles(m.files.dir, ValidRestoreID, func(f *restoreFile) (int, string) { return f.Version, f.Job.ID }, func(f *restoreFile) {
		m.addLocked(f.Job.ID, f.Job.IdempotencyKey, &restoreJob{RestoreJob: f.Job})
	})
}

// SubmitRestore validates spec and queues a new restore, or, when key names
// an earlier job with the same spec, returns that job and created == false.
// Errors: *planner.FieldError (bad spec), ErrIdempotencyKeyReused,
// ErrRestoreActive (an active restore writes the same table),
// ErrShuttingDown.
func (m *RestoreManager) SubmitRestore(ctx context.Context, spec RestoreSpec, key string) (RestoreJob, bool, error) {
	spec = spec.withDefaults()
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, found, err := m.byKeyLocked(key, spec, func(j *restoreJob) any { return j.Spec }); found || err != nil {
		return old, false, err
	}
	if m.closing {
		return RestoreJob{}, false, ErrShuttingDown
	}
	ckdir, err := m.prepare(ctx, spec)
	if err != nil {
		return RestoreJob{}, false, err
	}
	if other := m.activeOnTableLocked(spec, ""); other != "" {
		return RestoreJob{}, false, fmt.Errorf("%w: restore %s writes table %s of that database", ErrRestoreActive, other, spec.Table)
	}
	id, err := newID(restoreIDPrefix, "restore")
	if err != nil {
		return RestoreJob{}, false, err
	}
	now := m.now().UTC()
	j := &restoreJob{RestoreJob: RestoreJob{ID: id, State: Queued, Spec: spec, CheckpointDir: ckdir, IdempotencyKey: key,
		CreatedAt: now, UpdatedAt: now}}
	if err := m.persistLocked(j); err != nil {
		return RestoreJob{}, false, err
	}
	m.addLocked(id, key, j)
	m.log.Info("restore job queued", logJobID, id, logCheckpointDir, ckdir)
	m.scheduleLocked()
	return j.view(), true, nil
}

// activeOnTableLocked returns the id of an active restore (other than
// except) into the same table of the same database.
func (m *RestoreManager) activeOnTableLocked(spec RestoreSpec, except string) string {
	for _, o := range m.jobs {
		if o.ID != except && o.State.Active() && o.Spec.DSN == spec.DSN && o.Spec.Table == spec.Table {
			return o.ID
		}
	}
	return ""
}

// GetRestore returns the job, or ErrRestoreNotFound.
func (m *RestoreManager) GetRestore(id string) (RestoreJob, error) {
	return m.get(id)
}

// ListRestores returns every restore job, oldest first.
func (m *RestoreManager) ListRestores() []RestoreJob {
	return m.list(func(j RestoreJob) (time.Time, string) { return j.CreatedAt, j.ID })
}

// CancelRestore stops a job: a queued or interrupted one at once, a running
// one after the part in flight is rolled back (the state turns cancelled
// then; until that, CancelRequested is set). The table keeps the parts
// loaded; a resume goes on from there. Errors: ErrRestoreNotFound,
// ErrRestoreFinished.
func (m *RestoreManager) CancelRestore(ctx context.Context, id string) (RestoreJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.lookupLocked(id)
	if err != nil {
		return RestoreJob{}, err
	}
	switch j.State {
	case Running:
		if !j.CancelRequested {
			j.CancelRequested = true
			j.UpdatedAt = m.now().UTC()
			if err := m.persistLocked(j); err != nil {
				return RestoreJob{}, err
			}
			j.cancel(ErrCancelled)
			m.log.Info("restore job cancel requested", logJobID, id)
		}
	case Queued, Interrupted:
		now := m.now().UTC()
		j.State, j.UpdatedAt, j.FinishedAt = Cancelled, now, &now
		if err := m.persistLocked(j); err != nil {
			return RestoreJob{}, err
		}
	case Cancelled:
	default:
		return RestoreJob{}, fmt.Errorf("%w: restore %s is %s", ErrRestoreFinished, id, j.State)
	}
	return j.view(), nil
}

// ResumeRestore queues a stopped job again; the run skips the parts the
// store's ledger holds. Errors: ErrRestoreNotFound, ErrRestoreActive,
// ErrShuttingDown, *planner.FieldError (the spec no longer validates).
func (m *RestoreManager) ResumeRestore(ctx context.Context, id string) (RestoreJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.lookupLocked(id)
	if err != nil {
		return RestoreJob{}, err
	}
	if j.State.Active() {
		return RestoreJob{}, fmt.Errorf("%w: restore %s is %s", ErrRestoreActive, id, j.State)
	}
	if m.closing {
		return RestoreJob{}, ErrShuttingDown
	}
	if _, err := m.prepare(ctx, j.Spec); err != nil {
		return RestoreJob{}, err
	}
	if other := m.activeOnTableLocked(j.Spec, id); other != "" {
		return RestoreJob{}, fmt.Errorf("%w: restore %s writes table %s of that database", ErrRestoreActive, other, j.Spec.Table)
	}
	j.State, j.CancelRequested, j.LastError, j.FinishedAt = Queued, false, "", nil
	j.UpdatedAt = m.now().UTC()
	if err := m.persistLocked(j); err != nil {
		return RestoreJob{}, err
	}
	m.scheduleLocked()
	return j.view(), nil
}

// RestoreCounts returns how many restore jobs are in each state.
func (m *RestoreManager) RestoreCounts() map[State]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[State]int, len(States))
	for _, j := range m.jobs {
		c[j.State]++
	}
	return c
}

// Closing reports whether Shutdown has begun.
func (m *RestoreManager) Closing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

// WaitRestore blocks until cond holds for the job (checked at every change)
// or ctx ends. Errors: ErrRestoreNotFound, ctx's cause.
func (m *RestoreManager) WaitRestore(ctx context.Context, id string, cond func(RestoreJob) bool) (RestoreJob, error) {
	return m.waitUntil(ctx, id, cond)
}

// Shutdown stops every running restore (the part in flight is rolled back)
// and waits for them, or for ctx. Stopped jobs are interrupted and resumed by
// the next [OpenRestores].
func (m *RestoreManager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	for _, j := range m.jobs {
		if j.State == Running && j.cancel != nil {
			j.cancel(ErrServerShutdown)
		}
	}
	m.mu.Unlock()
	if err := waitCtx(ctx, &m.runs); err != nil {
		return fmt.Errorf("waiting for restore jobs to stop: %w", err)
	}
	m.writes.Wait()
	m.stopBase()
	m.lock.Close()
	return nil
}

// persistLocked writes restores/<id>/job.json now, and wakes waiters.
func (m *RestoreManager) persistLocked(j *restoreJob) error {
	w, err := m.encodeLocked(j)
	if err != nil {
		return err
	}
	return m.files.write(w)
}

// encodeLocked snapshots the job's file and wakes waiters on the job.
func (m *RestoreManager) encodeLocked(j *restoreJob) (fileWrite, error) {
	m.notifyLocked()
	w, err := m.files.encode(&j.fileSlot, j.ID, restoreFile{Version: jobFileVersion, Job: j.RestoreJob})
	j.lastWrite = m.now()
	return w, err
}

// ValidRestoreID reports whether id is shaped like a restore id ("rs_" and
// 20 hex digits).
func ValidRestoreID(id string) bool { return validID(restoreIDPrefix, id) }
