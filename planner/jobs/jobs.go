package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/reembed/reembed/planner"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// State is where a rebuild job is in its life. Queued and running jobs are
// active; the others wait for a resume (interrupted jobs are resumed by the
// next start of the server by themselves).
type State string

// The states of a job.
const (
	// Queued: accepted, waiting for a run slot.
	Queued State = "queued"
	// Running: embedding. A server killed while a job runs resumes it on
	// its next start.
	Running State = "running"
	// Succeeded: every chunk of the corpus is checkpointed.
	Succeeded State = "succeeded"
	// Failed: a request failed for good, or the job could not start; see
	// last_error. Resumable once the cause is fixed.
	Failed State = "failed"
	// Cancelled: stopped by a cancel; committed and resumable on request.
	Cancelled State = "cancelled"
	// BudgetExhausted: the next request would have spent past budget_usd;
	// committed, resumable with a higher budget.
	BudgetExhausted State = "budget_exhausted"
	// Interrupted: stopped by a server shutdown; committed, and resumed by
	// the next start of the server.
	Interrupted State = "interrupted"
)

// States lists every state, in lifecycle order.
var States = []State{Queued, Running, Succeeded, Failed, Cancelled, BudgetExhausted, Interrupted}

// Active reports whether the job is queued or running.
func (s State) Active() bool { return s == Queued || s == Running }

// Providers a [Spec] may name.
const (
	ProviderSimulated = "simulated"
	ProviderOpenAI    = "openai"
)

// Sentinel errors of [Manager]. Match them with errors.Is.
var (
	// ErrNotFound: no job has that id.
	ErrNotFound = errors.New("no such rebuild job")
	// ErrActive: the job is queued or running (resume), or another
	// active job writes the same checkpoint directory (submit).
	ErrActive = errors.New("rebuild job is active")
	// ErrFinished: the job has ended and cannot be cancelled.
	ErrFinished = errors.New("rebuild job has finished")
	// ErrIdempotencyKeyReused: the Idempotency-Key names a job with another spec.
	ErrIdempotencyKeyReused = errors.New("idempotency key already used for a different rebuild")
	// ErrShuttingDown: the manager is shutting down and starts nothing.
	ErrShuttingDown = errors.New("shutting down")
	// ErrCancelled is the cancel cause of a job stopped by [Manager.Cancel].
	ErrCancelled = errors.New("rebuild cancelled")
	// ErrServerShutdown is the cancel cause of jobs stopped by [Manager.Shutdown].
	ErrServerShutdown = errors.New("server shutting down")
)

// fieldErr returns a *planner.FieldError about field; format names fields
// as {snake_case}.
func fieldErr(field, format string, args ...any) *planner.FieldError {
	return &planner.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Spec is what a rebuild job does, as a client asked for it. Paths are
// relative to one of the manager's corpus roots (or absolute inside one) and
// are resolved again at every run, so a job never reads outside the roots the
// server runs with. It holds no secret: the API key of the "openai" provider
// stays in the server's environment.
type Spec struct {
	// Provider is "simulated" (the in-process simulated provider, the
	// default) or "openai" (the server's configured OpenAI-compatible API).
	Provider string `json:"provider"`
	// Model is a catalog model name.
	Model string `json:"model"`
	// Dimensions of the vectors; 0 means the model's default.
	Dimensions   int      `json:"dimensions"`
	Paths        []string `json:"paths"`
	ChunkTokens  int      `json:"chunk_tokens"`
	ChunkOverlap int      `json:"chunk_overlap"`
	PlainText    bool     `json:"plain_text"`
	TextField    string   `json:"text_field"`
	IDField      string   `json:"id_field"`
	Strict       bool     `json:"strict"`
	// Exclude and Include are the corpus filters (corpus.Filters).
	Exclude []string `json:"exclude,omitempty"`
	Include []string `json:"include,omitempty"`
	// RPM and TPM are the provider limits this job's embedder keeps under
	// (requests and tokens per minute); 0 means the server's.
	RPM int `json:"rpm"`
	TPM int `json:"tpm"`
	// Concurrency is the number of requests in flight; BatchSize caps the
	// inputs per request (0 = the model's maximum).
	Concurrency int `json:"concurrency"`
	BatchSize   int `json:"batch_size"`
	// BudgetUSD caps the job's spend over all its runs; 0 means none.
	BudgetUSD pricing.Micros `json:"budget_usd"`
	// OutDir is the checkpoint directory relative to the data directory;
	// empty means jobs/<id>/checkpoint.
	OutDir string `json:"out_dir,omitempty"`
	// PartRows and FlushIntervalMS bound what a crash can lose (the RPO):
	// rows per committed part and milliseconds between commits; 0 = defaults.
	PartRows        int   `json:"part_rows"`
	FlushIntervalMS int64 `json:"flush_interval_ms"`
	// Force resumes into a checkpoint whose manifest disagrees with the spec.
	Force bool `json:"force"`
	// Mode is "sync" (the default), "batch" (the Batch API at the batch
	// price, journaled in the checkpoint) or "auto" (the slice RTO needs
	// sync, the rest batch, with a deadline fallback to sync): the CLI's
	// rebuild --mode, run by the same planner entry points.
	Mode string `json:"mode"`
	// RTO is auto mode's recovery time objective from the start of a run.
	RTO Duration `json:"rto,omitempty"`
	// BatchP50 and BatchP90 are auto mode's assumed batch completion
	// times; 0 = planner.DefaultBatchP50 and DefaultBatchP90.
	BatchP50 Duration `json:"batch_p50,omitempty"`
	BatchP90 Duration `json:"batch_p90,omitempty"`
	// BatchTier (1-5) sets the default enqueued-token cap; BatchEnqueuedTokens
	// overrides it (0 = the tier's).
	BatchTier           int   `json:"batch_tier,omitempty"`
	BatchEnqueuedTokens int64 `json:"batch_enqueued_tokens,omitempty"`
	// BatchMaxRequests caps the requests of one batch file (0 = 50,000).
	BatchMaxRequests int `json:"batch_max_requests,omitempty"`
	// BatchPollMin and BatchPollMax bound the poll interval of a batch
	// (0 = 1s and 60s).
	BatchPollMin Duration `json:"batch_poll_min,omitempty"`
	BatchPollMax Duration `json:"batch_poll_max,omitempty"`
}

// withDefaults returns s with the defaults the server applies filled in.
func (s Spec) withDefaults() Spec {
	if s.Provider == "" {
		s.Provider = ProviderSimulated
	}
	if s.Model == "" {
		s.Model = pricing.DefaultModel
	}
	if s.TextField == "" {
		s.TextField = "text"
	}
	if s.IDField == "" {
		s.IDField = "id"
	}
	if s.Concurrency == 0 {
		s.Concurrency = planner.DefaultConcurrency
	}
	if s.Mode == "" {
		s.Mode = planner.ModeSync
	}
	s.OutDir = filepath.ToSlash(filepath.Clean(filepath.FromSlash(s.OutDir)))
	if s.OutDir == "." {
		s.OutDir = ""
	}
	return s
}

// Job is a rebuild job as clients see it. It is a value: the manager hands
// out copies.
type Job struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	Spec  Spec   `json:"spec"`
	// Progress is the latest snapshot of the current (or last) run; its
	// planned figures are what was left to embed when that run started.
	Progress planner.Progress `json:"progress"`
	// BilledTokens, Requests and CostUSD add up every run of the job.
	BilledTokens int64          `json:"billed_tokens"`
	Requests     int64          `json:"requests"`
	CostUSD      pricing.Micros `json:"cost_usd"`
	// Runs counts the runs started, including resumes after a restart.
	Runs int `json:"runs"`
	// CancelRequested is set once a cancel was asked while the job ran; the
	// state turns cancelled when its checkpoint is committed.
	CancelRequested bool   `json:"cancel_requested"`
	LastError       string `json:"last_error,omitempty"`
	// CheckpointDir is where the parts go, relative to the data directory.
	CheckpointDir  string     `json:"checkpoint_dir"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
}

// runTotals are the figures of a job's finished runs.
type runTotals struct {
	BilledTokens int64          `json:"billed_tokens"`
	Requests     int64          `json:"requests"`
	CostUSD      pricing.Micros `json:"cost_usd"`
}

// jobFile is what job.json holds: the job and its finished runs' totals.
type jobFile struct {
	Version int       `json:"version"`
	Job     Job       `json:"job"`
	Prior   runTotals `json:"prior_runs"`
}

const jobFileVersion = 1

// jobFileName is the name of a job's file in its directory jobs/<id>/.
const jobFileName = "job.json"

// job is the manager's record of one job; its fields are guarded by Manager.mu.
type job struct {
	Job
	prior  runTotals
	cancel context.CancelCauseFunc // set while running
	done   chan struct{}           // closed when the run ends; nil when not running
	// finalSeen is set once the run returned: progress snapshots after it
	// are dropped.
	finalSeen bool
	fileSlot  // orders the writes of its job file
}

// view returns the client's copy, with totals over every run.
func (j *job) view() Job {
	v := j.Job
	v.Spec.Paths = slices.Clone(v.Spec.Paths)
	t := j.totals()
	v.BilledTokens, v.Requests, v.CostUSD = t.BilledTokens, t.Requests, t.CostUSD
	return v
}

// EmbedderFactory builds the embedder stack (rate limits, retries, provider)
// a job's run uses. It is called once per run, from the run's goroutine.
type EmbedderFactory func(Spec) (embedder.Embedder, error)

// Config configures [Open].
type Config struct {
	// DataDir holds jobs/<id>/job.json and, by default, jobs/<id>/checkpoint.
	DataDir string
	// CorpusRoots are the directories job paths must resolve inside.
	CorpusRoots []string
	// NewEmbedder builds each run's embedder. Required.
	NewEmbedder EmbedderFactory
	// Tokenizer counts and chunks; nil means tokenizer.Default().
	Tokenizer tokenizer.Tokenizer
	// Catalog resolves model names; nil means pricing.Builtin().
	Catalog *pricing.Catalog
	// Providers lists the providers jobs may name; nil means simulated only.
	Providers []string
	// DefaultRPM and DefaultTPM fill a submitted spec's zero RPM and TPM:
	// the server's provider limits (requests and tokens per minute).
	DefaultRPM, DefaultTPM int
	// MaxRunning is how many jobs run at once (default 1); others queue.
	MaxRunning int
	// ProgressInterval is how often a running job's progress is refreshed
	// and written to its job file (default 1s).
	ProgressInterval time.Duration
	// GracePeriod bounds how long requests in flight may finish after a job
	// is cancelled or the server shuts down (default 30s).
	GracePeriod time.Duration
	// Logger receives job start and end records; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnRunEnd, when set, is called after each run ends, with the job.
	OnRunEnd func(Job)
	// NewBatchAPI builds the Files and Batches API of a job in mode batch
	// or auto (called once per run); nil refuses those modes.
	NewBatchAPI BatchAPIFactory
}

// BatchAPIFactory builds the provider's Files and Batches API for a job run.
type BatchAPIFactory func(Spec) (planner.BatchAPI, error)

// Manager runs rebuild jobs and keeps them durable: each job is a JSON file in
// the data directory, written atomically at every state change and progress
// refresh. Manager own their runs' contexts (never a request's), so a run
// outlives the request that started it; [Manager.Shutdown] stops them, and a
// server killed outright resumes its running jobs at the next [Open].
// It is safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	tok   tokenizer.Tokenizer
	cat   *pricing.Catalog
	roots []string  // absolute, symlinks resolved
	files *jobFiles // jobs/<id>/job.json

	base     context.Context
	stopBase context.CancelFunc
	lock     *os.File // holds the data directory's flock until Shutdown

	table[job, Job] // its mu guards the table and what follows
	running         int
	closing         bool
	runs            sync.WaitGroup
}

// Open loads the jobs of cfg.DataDir and starts the ones that were
// queued, running (the server was killed) or interrupted (the server was
// shut down): they resume from their checkpoints.
func Open(cfg Config) (*Manager, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("jobs: no data directory")
	}
	if cfg.NewEmbedder == nil {
		return nil, errors.New("jobs: no embedder factory")
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 1
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if len(cfg.Providers) == 0 {
		cfg.Providers = []string{ProviderSimulated}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, now: cfg.Now, tok: cfg.Tokenizer, cat: cfg.Catalog}
	m.setup((*job).view, ErrNotFound)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.tok == nil {
		t, err := tokenizer.Default()
		if err != nil {
			return nil, fmt.Errorf("jobs: loading the tokenizer: %w", err)
		}
		m.tok = t
	}
	if m.cat == nil {
		c, err := pricing.Builtin()
		if err != nil {
			return nil, fmt.Errorf("jobs: loading the pricing catalog: %w", err)
		}
		m.cat = c
	}
	for _, r := range cfg.CorpusRoots {
		abs, err := corpus.RealDir(r)
		if err != nil {
			return nil, fmt.Errorf("jobs: corpus root %q: %w", r, err)
		}
		m.roots = append(m.roots, abs)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: creating the data directory: %w", err)
	}
	data, err := corpus.RealDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("jobs: data directory: %w", err)
	}
	m.cfg.DataDir = data
	m.files = newJobFiles(filepath.Join(data, "jobs"), "job")
	if m.lock, err = lockDataDir(data); err != nil {
		return nil, err
	}
	if err := m.load(); err != nil {
		m.lock.Close()
		return nil, err
	}
	m.base, m.stopBase = context.WithCancel(context.Background())
	m.mu.Lock()
	for _, j := range m.jobs {
		switch j.State {
		case Running, Interrupted:
			m.log.Info("rebuild job resuming after restart", logJobID, j.ID, logState, string(j.State))
			j.State = Queued
			j.UpdatedAt = m.now().UTC()
			if err := m.persistLocked(j); err != nil {
				m.mu.Unlock()
				return nil, err
			}
		}
	}
	m.scheduleLocked()
	m.mu.Unlock()
	return m, nil
}

// load reads every jobs/<id>/job.json.
func (m *Manager) load() error {
	return loadJobFiles(m.files.dir, validJobID, func(f *jobFile) (int, string) { return f.Version, f.Job.ID }, func(f *jobFile) {
		// A job killed mid-run keeps its last snapshot, all we know of that
		// run; the next run start adds it to the prior runs' totals.
		if f.Job.Spec.Mode == "" {
			f.Job.Spec.Mode = planner.ModeSync // written before modes existed
		}
		m.addLocked(f.Job.ID, f.Job.IdempotencyKey, &job{Job: f.Job, prior: f.Prior})
	})
}

// totals returns the job's figures over every run, the current one included.
func (j *job) totals() runTotals {
	return runTotals{
		BilledTokens: j.prior.BilledTokens + j.Progress.BilledTokens,
		Requests:     j.prior.Requests + j.Progress.Requests,
		CostUSD:      j.prior.CostUSD + j.Progress.Cost,
	}
}

// Roots returns the corpus roots, absolute and with symlinks resolved.
func (m *Manager) Roots() []string { return slices.Clone(m.roots) }

// Catalog returns the pricing catalog jobs are priced with.
func (m *Manager) Catalog() *pricing.Catalog { return m.cat }

// Tokenizer returns the tokenizer jobs count with.
func (m *Manager) Tokenizer() tokenizer.Tokenizer { return m.tok }

// MaxConcurrency is the most requests in flight one job of the server may ask
// for: a server policy, on top of what [planner.RebuildSpec.Validate] checks.
const MaxConcurrency = 256

// prepare checks what only the server knows (provider, model name, corpus
// roots, data directory) and builds the run's [planner.RebuildSpec], with
// paths resolved, which it validates: a job spec is validated once, by the
// rebuild's own Validate. id names the job (for the checkpoint dir).
func (m *Manager) prepare(spec Spec, id string) (planner.RebuildSpec, string, error) {
	var zero planner.RebuildSpec
	if err := spec.Validate(); err != nil {
		return zero, "", err
	}
	if !slices.Contains(m.cfg.Providers, spec.Provider) {
		return zero, "", fieldErr("provider", "{provider} %q is not available on this server (have %s)", spec.Provider, strings.Join(m.cfg.Providers, ", "))
	}
	model, err := m.cat.Lookup(spec.Model)
	if err != nil {
		return zero, "", planner.NewFieldError("model", err)
	}
	if spec.Mode == planner.ModeBatch || spec.Mode == planner.ModeAuto {
		if m.cfg.NewBatchAPI == nil {
			return zero, "", fieldErr("mode", "{mode} %s: this server has no batch API configured", spec.Mode)
		}
		if model.BatchPricePer1M == nil {
			return zero, "", fieldErr("mode", "{mode} %s: %s has no batch price in the catalog", spec.Mode, model.Name)
		}
	}
	resolved := make([]string, len(spec.Paths))
	for i, p := range spec.Paths {
		r, err := corpus.ResolvePath(m.roots, p)
		if err != nil {
			return zero, "", planner.NewFieldError("paths", corpus.ClientPaths(err, m.roots, m.clientRoots()))
		}
		resolved[i] = r
	}
	if len(resolved) > 0 {
		// The corpus must open as given (e.g. no two roots of the same name).
		src, err := corpus.Open(resolved, corpus.Options{})
		if err != nil {
			return zero, "", planner.NewFieldError("paths", corpus.ClientPaths(err, resolved, spec.Paths))
		}
		src.Close()
	}
	if spec.Concurrency > MaxConcurrency {
		return zero, "", fieldErr("concurrency", "{concurrency} %d is more than %d", spec.Concurrency, MaxConcurrency)
	}
	ckdir, err := m.checkpointDir(spec, id)
	if err != nil {
		return zero, "", err
	}
	rs := spec.rebuildSpec(model, resolved)
	if err := rs.Validate(); err != nil {
		return zero, "", err
	}
	return rs, ckdir, nil
}

// clientRoots names the corpus roots for clients: "<corpus root 1>", ...
func (m *Manager) clientRoots() []string {
	out := make([]string, len(m.roots))
	for i := range m.roots {
		out[i] = fmt.Sprintf("<corpus root %d>", i+1)
	}
	return out
}

// rebuildSpec is the rebuild of the job spec, with model and paths resolved.
func (s Spec) rebuildSpec(model pricing.Model, paths []string) planner.RebuildSpec {
	return planner.RebuildSpec{
		Paths: paths,
		Corpus: corpus.Options{PlainText: s.PlainText, Strict: s.Strict, TextField: s.TextField, IDField: s.IDField,
			Filters: corpus.Filters{Exclude: s.Exclude, Include: s.Include}},
		Model: model, Dimensions: s.Dimensions, ChunkTokens: s.ChunkTokens, ChunkOverlap: s.ChunkOverlap,
		Limits:        planner.Limits{RPM: s.RPM, TPM: s.TPM, Concurrency: s.Concurrency, BatchSize: s.BatchSize, Latency: planner.DefaultLatency},
		PartRows:      s.PartRows,
		FlushInterval: time.Duration(s.FlushIntervalMS) * time.Millisecond,
		Budget:        s.BudgetUSD,
		Force:         s.Force,
	}
}

// checkpointDir returns the job's checkpoint directory relative to the data dir.
func (m *Manager) checkpointDir(spec Spec, id string) (string, error) {
	if spec.OutDir == "" {
		return filepath.ToSlash(filepath.Join("jobs", id, "checkpoint")), nil
	}
	out := filepath.FromSlash(spec.OutDir)
	if !filepath.IsLocal(out) {
		return "", fieldErr("out_dir", "{out_dir} %q must be a relative path inside the data directory", spec.OutDir)
	}
	first, _, _ := strings.Cut(filepath.ToSlash(out), "/")
	if first == "jobs" {
		if parts := strings.Split(filepath.ToSlash(out), "/"); len(parts) != 3 || parts[2] != "checkpoint" || !validJobID(parts[1]) {
			return "", fieldErr("out_dir", "{out_dir} %q: under jobs/ only a job's checkpoint directory (jobs/<id>/checkpoint) may be named", spec.OutDir)
		}
	}
	// Refuse symlinks that leave the data directory.
	r, err := os.OpenRoot(m.cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("opening the data directory: %w", err)
	}
	defer r.Close()
	if _, err := r.Stat(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", &planner.FieldError{Field: "out_dir", Message: fmt.Sprintf("{out_dir} %q: %v", spec.OutDir, corpus.ErrOutsideRoot), Err: corpus.ErrOutsideRoot}
	}
	return filepath.ToSlash(out), nil
}

// Submit validates spec and queues a new job, or, when key names an earlier
// job with the same spec, returns that job and created == false. Errors:
// *planner.FieldError (bad spec), ErrIdempotencyKeyReused, ErrActive (another
// active job writes the same checkpoint directory), ErrShuttingDown.
func (m *Manager) Submit(ctx context.Context, spec Spec, key string) (j Job, created bool, err error) {
	spec = spec.withDefaults()
	if spec.RPM == 0 {
		spec.RPM = m.cfg.DefaultRPM
	}
	if spec.TPM == 0 {
		spec.TPM = m.cfg.DefaultTPM
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, found, err := m.byKeyLocked(key, spec, func(j *job) any { return j.Spec }); found || err != nil {
		return old, false, err
	}
	if m.closing {
		return Job{}, false, ErrShuttingDown
	}
	id, err := newJobID()
	if err != nil {
		return Job{}, false, err
	}
	_, ckdir, err := m.prepare(spec, id)
	if err != nil {
		return Job{}, false, err
	}
	if other := m.activeOnDirLocked(ckdir, ""); other != "" {
		return Job{}, false, fmt.Errorf("%w: job %s writes %s", ErrActive, other, ckdir)
	}
	now := m.now().UTC()
	nj := &job{Job: Job{ID: id, State: Queued, Spec: spec, CheckpointDir: ckdir, IdempotencyKey: key, CreatedAt: now, UpdatedAt: now}}
	if err := m.persistLocked(nj); err != nil {
		return Job{}, false, err
	}
	m.addLocked(id, key, nj)
	m.log.Info("rebuild job queued", logJobID, id, logModel, spec.Model, logProvider, spec.Provider)
	m.scheduleLocked()
	return nj.view(), true, nil
}

// activeOnDirLocked returns the id of an active job (other than except)
// writing ckdir.
func (m *Manager) activeOnDirLocked(ckdir, except string) string {
	for _, o := range m.jobs {
		if o.ID != except && o.State.Active() && o.CheckpointDir == ckdir {
			return o.ID
		}
	}
	return ""
}

// Get returns the job, or ErrNotFound.
func (m *Manager) Get(id string) (Job, error) {
	return m.get(id)
}

// List returns every job, oldest first.
func (m *Manager) List() []Job {
	return m.list(func(j Job) (time.Time, string) { return j.CreatedAt, j.ID })
}

// Counts returns how many jobs are in each state.
func (m *Manager) Counts() map[State]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[State]int, len(States))
	for _, s := range States {
		c[s] = 0
	}
	for _, j := range m.jobs {
		c[j.State]++
	}
	return c
}

// Cancel stops a job: a queued or interrupted one at once, a running one
// after its checkpoint is committed (the state turns cancelled then; until
// that, CancelRequested is set). Cancelling a cancelled job returns it.
// Errors: ErrNotFound, ErrFinished.
func (m *Manager) Cancel(ctx context.Context, id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.lookupLocked(id)
	if err != nil {
		return Job{}, err
	}
	switch j.State {
	case Running:
		if !j.CancelRequested {
			j.CancelRequested = true
			j.UpdatedAt = m.now().UTC()
			if err := m.persistLocked(j); err != nil {
				return Job{}, err
			}
			j.cancel(ErrCancelled)
			m.log.Info("rebuild job cancel requested", logJobID, id)
		}
	case Queued, Interrupted:
		j.State = Cancelled
		now := m.now().UTC()
		j.UpdatedAt, j.FinishedAt = now, &now
		if err := m.persistLocked(j); err != nil {
			return Job{}, err
		}
		m.log.Info("rebuild job cancelled", logJobID, id)
	case Cancelled:
	default:
		return Job{}, fmt.Errorf("%w: job %s is %s", ErrFinished, id, j.State)
	}
	return j.view(), nil
}

// ResumeOptions change a job when it is resumed.
type ResumeOptions struct {
	// BudgetUSD, when not nil, replaces the job's budget (over all runs).
	BudgetUSD *pricing.Micros
}

// Resume queues a stopped job again; its run skips what is checkpointed.
// Errors: ErrNotFound, ErrActive (queued or running), ErrShuttingDown,
// *planner.FieldError (the spec no longer validates, e.g. a corpus root is gone).
func (m *Manager) Resume(ctx context.Context, id string, opts ResumeOptions) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.lookupLocked(id)
	if err != nil {
		return Job{}, err
	}
	if j.State.Active() {
		return Job{}, fmt.Errorf("%w: job %s is %s", ErrActive, id, j.State)
	}
	if m.closing {
		return Job{}, ErrShuttingDown
	}
	spec := j.Spec
	if opts.BudgetUSD != nil {
		if *opts.BudgetUSD < 0 {
			return Job{}, fieldErr("budget_usd", "{budget_usd} must not be negative")
		}
		spec.BudgetUSD = *opts.BudgetUSD
	}
	if _, _, err := m.prepare(spec, id); err != nil {
		return Job{}, err
	}
	if other := m.activeOnDirLocked(j.CheckpointDir, id); other != "" {
		return Job{}, fmt.Errorf("%w: job %s writes %s", ErrActive, other, j.CheckpointDir)
	}
	j.Spec = spec
	j.State = Queued
	j.CancelRequested = false
	j.LastError = ""
	j.FinishedAt = nil
	j.UpdatedAt = m.now().UTC()
	if err := m.persistLocked(j); err != nil {
		return Job{}, err
	}
	m.log.Info("rebuild job resumed", logJobID, id)
	m.scheduleLocked()
	return j.view(), nil
}

// scheduleLocked starts queued jobs, oldest first, while slots are free.
func (m *Manager) scheduleLocked() {
	if m.closing || m.base == nil {
		return
	}
	var queued []*job
	for _, j := range m.jobs {
		if j.State == Queued {
			queued = append(queued, j)
		}
	}
	sortOldestFirst(queued, func(j *job) (time.Time, string) { return j.CreatedAt, j.ID })
	for _, j := range queued {
		if m.running >= m.cfg.MaxRunning {
			return
		}
		busy := false
		for _, o := range m.jobs {
			busy = busy || o.State == Running && o.CheckpointDir == j.CheckpointDir
		}
		if busy {
			continue
		}
		m.startLocked(j)
	}
}

// startLocked runs j on its own goroutine, under a context the manager owns.
func (m *Manager) startLocked(j *job) {
	ctx, cancel := context.WithCancelCause(m.base)
	now := m.now().UTC()
	j.State = Running
	j.cancel = cancel
	j.done = make(chan struct{})
	j.Runs++
	j.StartedAt = &now
	j.UpdatedAt = now
	j.prior = j.totals()
	j.Progress = planner.Progress{State: "starting"}
	j.finalSeen = false
	if err := m.persistLocked(j); err != nil {
		m.log.Error("writing job file", logJobID, j.ID, logErr, err)
	}
	m.running++
	m.runs.Add(1)
	go m.run(ctx, j, j.Spec, j.prior, j.Runs, j.done)
}

// run executes one run of a job and records how it ended.
func (m *Manager) run(ctx context.Context, j *job, spec Spec, prior runTotals, run int, done chan struct{}) {
	defer m.runs.Done()
	defer close(done)
	log := m.log.With(logJobID, j.ID)
	outcome, lastErr := m.execute(ctx, log, j, spec, prior, run)
	cause := context.Cause(ctx)
	state := stateOf(outcome, cause)
	m.mu.Lock()
	m.running--
	now := m.now().UTC()
	j.State = state
	j.LastError = lastErr
	j.cancel = nil
	j.done = nil
	j.UpdatedAt = now
	if state != Interrupted {
		j.FinishedAt = &now
	}
	if err := m.persistLocked(j); err != nil {
		log.Error("writing job file", logErr, err)
	}
	v := j.view()
	m.scheduleLocked()
	m.mu.Unlock()
	log.Info("rebuild job run ended", logState, string(state), logCause, fmt.Sprint(cause), logBilledTokens, v.BilledTokens,
		logCostUSD, v.CostUSD.String(), logCommitted, v.Progress.CommittedChunks)
	if m.cfg.OnRunEnd != nil {
		m.cfg.OnRunEnd(v)
	}
}

// clientError returns err with server paths rewritten for last_error:
// the job's resolved paths become the client's, other paths inside a
// corpus root become relative to it, and paths in the data directory
// relative to that (as checkpoint_dir is). errors.Is still sees err.
func (m *Manager) clientError(err error, resolved, client []string) error {
	msg := corpus.ClientText(err.Error(), resolved, client, append(m.Roots(), m.cfg.DataDir))
	return &clientErr{msg: msg, err: err}
}

// clientErr is an error reworded for clients, with the same cause.
type clientErr struct {
	msg string
	err error
}

func (e *clientErr) Error() string { return e.msg }
func (e *clientErr) Unwrap() error { return e.err }

// Shutdown stops every running job (cause ErrServerShutdown) and waits until
// their checkpoints are committed or ctx ends. Stopped jobs are interrupted
// and queued ones stay queued: the next [Open] resumes both. After
// Shutdown, Submit and Resume return ErrShuttingDown.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	for _, j := range m.jobs {
		if j.State == Running && j.cancel != nil {
			j.cancel(ErrServerShutdown)
		}
	}
	m.mu.Unlock()
	if err := waitCtx(ctx, &m.runs); err != nil {
		return fmt.Errorf("waiting for rebuild jobs to commit: %w", err)
	}
	m.stopBase()
	m.lock.Close() // releases the flock: another server may take the directory
	return nil
}

// Closing reports whether Shutdown was called.
func (m *Manager) Closing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

// Wait blocks until the job is neither queued nor running (or ctx ends)
// and returns it.
func (m *Manager) Wait(ctx context.Context, id string) (Job, error) {
	return m.WaitUntil(ctx, id, func(j Job) bool { return !j.State.Active() })
}

// WaitUntil blocks until cond holds for the job (checked at every change of
// the job) or ctx ends, and returns the job. Errors: ErrNotFound, ctx's cause.
func (m *Manager) WaitUntil(ctx context.Context, id string, cond func(Job) bool) (Job, error) {
	return m.waitUntil(ctx, id, cond)
}

// persistLocked writes jobs/<id>/job.json atomically, and wakes waiters.
func (m *Manager) persistLocked(j *job) error {
	w, err := m.encodeLocked(j)
	if err != nil {
		return err
	}
	return m.files.write(w)
}

// encodeLocked snapshots the job's file and wakes waiters on the job.
func (m *Manager) encodeLocked(j *job) (fileWrite, error) {
	m.notifyLocked()
	return m.files.encode(&j.fileSlot, j.ID, jobFile{Version: jobFileVersion, Job: j.Job, Prior: j.prior})
}

// newJobID returns a random job id: "rb_" and 20 hex digits.
func newJobID() (string, error) { return newID(rebuildIDPrefix, "job") }

// validJobID reports whether id has the shape newJobID makes.
func validJobID(id string) bool { return validID(rebuildIDPrefix, id) }

// ValidID reports whether id is shaped like a job id ("rb_" and 20 hex digits).
func ValidID(id string) bool { return validJobID(id) }
