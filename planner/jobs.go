package planner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// JobState is where a rebuild job is in its life. Queued and running jobs are
// active; the others wait for a resume (interrupted jobs are resumed by the
// next start of the server by themselves).
type JobState string

// The states of a job.
const (
	// JobQueued: accepted, waiting for a run slot.
	JobQueued JobState = "queued"
	// JobRunning: embedding. A server killed while a job runs resumes it on
	// its next start.
	JobRunning JobState = "running"
	// JobSucceeded: every chunk of the corpus is checkpointed.
	JobSucceeded JobState = "succeeded"
	// JobFailed: a request failed for good, or the job could not start; see
	// last_error. Resumable once the cause is fixed.
	JobFailed JobState = "failed"
	// JobCancelled: stopped by a cancel; committed and resumable on request.
	JobCancelled JobState = "cancelled"
	// JobBudgetExhausted: the next request would have spent past budget_usd;
	// committed, resumable with a higher budget.
	JobBudgetExhausted JobState = "budget_exhausted"
	// JobInterrupted: stopped by a server shutdown; committed, and resumed by
	// the next start of the server.
	JobInterrupted JobState = "interrupted"
)

// JobStates lists every state, in lifecycle order.
var JobStates = []JobState{JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled, JobBudgetExhausted, JobInterrupted}

// Active reports whether the job is queued or running.
func (s JobState) Active() bool { return s == JobQueued || s == JobRunning }

// Providers a [JobSpec] may name.
const (
	ProviderSimulated = "simulated"
	ProviderOpenAI    = "openai"
)

// Sentinel errors of [Jobs]. Match them with errors.Is.
var (
	// ErrJobNotFound: no job has that id.
	ErrJobNotFound = errors.New("no such rebuild job")
	// ErrJobActive: the job is queued or running (resume), or another
	// active job writes the same checkpoint directory (submit).
	ErrJobActive = errors.New("rebuild job is active")
	// ErrJobFinished: the job has ended and cannot be cancelled.
	ErrJobFinished = errors.New("rebuild job has finished")
	// ErrIdempotencyKeyReused: the Idempotency-Key names a job with another spec.
	ErrIdempotencyKeyReused = errors.New("idempotency key already used for a different rebuild")
	// ErrShuttingDown: the manager is shutting down and starts nothing.
	ErrShuttingDown = errors.New("shutting down")
	// ErrJobCancelled is the cancel cause of a job stopped by [Jobs.Cancel].
	ErrJobCancelled = errors.New("rebuild cancelled")
	// ErrServerShutdown is the cancel cause of jobs stopped by [Jobs.Shutdown].
	ErrServerShutdown = errors.New("server shutting down")
)

// FieldError is an invalid field of a job spec or estimate request. Field is
// the API's snake_case name of the field.
type FieldError struct {
	Field string
	Err   error
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// JobSpec is what a rebuild job does, as a client asked for it. Paths are
// relative to one of the manager's corpus roots (or absolute inside one) and
// are resolved again at every run, so a job never reads outside the roots the
// server runs with. It holds no secret: the API key of the "openai" provider
// stays in the server's environment.
type JobSpec struct {
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
}

// withDefaults returns s with the defaults the server applies filled in.
func (s JobSpec) withDefaults() JobSpec {
	if s.Provider == "" {
		s.Provider = ProviderSimulated
	}
	if s.Model == "" {
		s.Model = "text-embedding-3-small"
	}
	if s.TextField == "" {
		s.TextField = "text"
	}
	if s.IDField == "" {
		s.IDField = "id"
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
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
	ID    string   `json:"id"`
	State JobState `json:"state"`
	Spec  JobSpec  `json:"spec"`
	// Progress is the latest snapshot of the current (or last) run; its
	// planned figures are what was left to embed when that run started.
	Progress Progress `json:"progress"`
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

// job is the manager's record of one job; its fields are guarded by Jobs.mu.
type job struct {
	Job
	prior  runTotals
	cancel context.CancelCauseFunc // set while running
	done   chan struct{}           // closed when the run ends; nil when not running
	seq    uint64                  // of the latest encoded job file

	wmu     sync.Mutex // serialises job file writes; never held while taking Jobs.mu
	written uint64     // seq of the job file on disk; guarded by wmu
}

// jobWrite is an encoded job file, to be written in seq order.
type jobWrite struct {
	j    *job
	seq  uint64
	data []byte
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
type EmbedderFactory func(JobSpec) (embedder.Embedder, error)

// JobsConfig configures [OpenJobs].
type JobsConfig struct {
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
}

// Jobs runs rebuild jobs and keeps them durable: each job is a JSON file in
// the data directory, written atomically at every state change and progress
// refresh. Jobs own their runs' contexts (never a request's), so a run
// outlives the request that started it; [Jobs.Shutdown] stops them, and a
// server killed outright resumes its running jobs at the next [OpenJobs].
// It is safe for concurrent use.
type Jobs struct {
	cfg    JobsConfig
	log    *slog.Logger
	now    func() time.Time
	tok    tokenizer.Tokenizer
	cat    *pricing.Catalog
	roots  []string // absolute, symlinks resolved
	jobDir string

	base     context.Context
	stopBase context.CancelFunc
	lock     *os.File // holds the data directory's flock until Shutdown

	mu      sync.Mutex
	jobs    map[string]*job
	idem    map[string]string // idempotency key -> job id
	running int
	closing bool
	runs    sync.WaitGroup
	changed chan struct{} // closed and replaced at every job change
}

// OpenJobs loads the jobs of cfg.DataDir and starts the ones that were
// queued, running (the server was killed) or interrupted (the server was
// shut down): they resume from their checkpoints.
func OpenJobs(cfg JobsConfig) (*Jobs, error) {
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
	m := &Jobs{cfg: cfg, log: cfg.Logger, now: cfg.Now, tok: cfg.Tokenizer, cat: cfg.Catalog,
		jobs: map[string]*job{}, idem: map[string]string{}, changed: make(chan struct{})}
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
		abs, err := realDir(r)
		if err != nil {
			return nil, fmt.Errorf("jobs: corpus root %q: %w", r, err)
		}
		m.roots = append(m.roots, abs)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: creating the data directory: %w", err)
	}
	data, err := realDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("jobs: data directory: %w", err)
	}
	m.cfg.DataDir = data
	m.jobDir = filepath.Join(data, "jobs")
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
		case JobRunning, JobInterrupted:
			m.log.Info("rebuild job resuming after restart", "job_id", j.ID, "state", string(j.State))
			j.State = JobQueued
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

// realDir returns dir as an absolute path with symlinks resolved; it must be
// a directory.
func realDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return real, nil
}

// load reads every jobs/<id>/job.json.
func (m *Jobs) load() error {
	ents, err := os.ReadDir(m.jobDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobs: listing %s: %w", m.jobDir, err)
	}
	for _, e := range ents {
		if !e.IsDir() || !validJobID(e.Name()) {
			continue
		}
		// Temp files of job file writes a crash interrupted.
		if tmps, _ := filepath.Glob(filepath.Join(m.jobDir, e.Name(), "job.json.tmp-*")); len(tmps) > 0 {
			for _, tmp := range tmps {
				os.Remove(tmp)
			}
		}
		path := filepath.Join(m.jobDir, e.Name(), "job.json")
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // created but never committed
		}
		if err != nil {
			return fmt.Errorf("jobs: reading %s: %w", path, err)
		}
		var f jobFile
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("jobs: decoding %s: %w", path, err)
		}
		if f.Version != jobFileVersion || f.Job.ID != e.Name() {
			return fmt.Errorf("jobs: %s: unsupported version %d or id %q", path, f.Version, f.Job.ID)
		}
		// A job killed mid-run keeps its last snapshot, all we know of that
		// run; the next run start adds it to the prior runs' totals.
		j := &job{Job: f.Job, prior: f.Prior}
		m.jobs[j.ID] = j
		if j.IdempotencyKey != "" {
			m.idem[j.IdempotencyKey] = j.ID
		}
	}
	return nil
}

// totals returns the job's figures over every run, the current one included.
func (j *job) totals() runTotals {
	return runTotals{
		BilledTokens: j.prior.BilledTokens + j.Progress.BilledTokens,
		Requests:     j.prior.Requests + j.Progress.Requests,
		CostUSD:      j.prior.CostUSD + j.Progress.Cost,
	}
}

// ResolvePath resolves a corpus path of a request against roots (absolute
// directories without symlinks): a relative path is taken inside the first
// root where it exists, an absolute one must lie inside a root. `..`,
// absolute paths elsewhere and symlinks that leave the root give an error
// wrapping corpus.ErrOutsideRoot; a path that exists in no root wraps
// fs.ErrNotExist. The result is the real path (symlinks resolved).
func ResolvePath(roots []string, p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%q: %w", p, corpus.ErrOutsideRoot)
	}
	var candidates [][2]string // root, rel
	if filepath.IsAbs(p) {
		clean := filepath.Clean(p)
		for _, r := range roots {
			rel, err := filepath.Rel(r, clean)
			if err == nil && filepath.IsLocal(rel) || rel == "." {
				candidates = append(candidates, [2]string{r, rel})
			}
		}
		if len(candidates) == 0 {
			// Maybe the path reaches a root through a symlink.
			if real, err := filepath.EvalSymlinks(clean); err == nil {
				for _, r := range roots {
					if rel, err := filepath.Rel(r, real); err == nil && (filepath.IsLocal(rel) || rel == ".") {
						candidates = append(candidates, [2]string{r, rel})
					}
				}
			}
		}
		if len(candidates) == 0 {
			return "", fmt.Errorf("%q: %w", p, corpus.ErrOutsideRoot)
		}
	} else {
		if !filepath.IsLocal(p) && filepath.Clean(p) != "." {
			return "", fmt.Errorf("%q: %w", p, corpus.ErrOutsideRoot)
		}
		for _, r := range roots {
			candidates = append(candidates, [2]string{r, filepath.Clean(p)})
		}
	}
	var firstErr error
	for _, c := range candidates {
		root, rel := c[0], c[1]
		r, err := os.OpenRoot(root)
		if err != nil {
			return "", fmt.Errorf("opening corpus root: %w", err)
		}
		_, err = r.Stat(rel)
		r.Close()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				firstErr = cmpErr(firstErr, fmt.Errorf("%q: %w", p, fs.ErrNotExist))
				continue
			}
			// os.Root refuses ".." and symlinks that leave the root.
			return "", fmt.Errorf("%q: %w", p, corpus.ErrOutsideRoot)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", p, err)
		}
		if rel2, err := filepath.Rel(root, real); err != nil || !(filepath.IsLocal(rel2) || rel2 == ".") {
			return "", fmt.Errorf("%q: %w", p, corpus.ErrOutsideRoot)
		}
		return real, nil
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%q: no corpus root is configured: %w", p, fs.ErrNotExist)
	}
	return "", firstErr
}

func cmpErr(have, next error) error {
	if have != nil {
		return have
	}
	return next
}

// Roots returns the corpus roots, absolute and with symlinks resolved.
func (m *Jobs) Roots() []string { return slices.Clone(m.roots) }

// Catalog returns the pricing catalog jobs are priced with.
func (m *Jobs) Catalog() *pricing.Catalog { return m.cat }

// Tokenizer returns the tokenizer jobs count with.
func (m *Jobs) Tokenizer() tokenizer.Tokenizer { return m.tok }

// prepare validates spec (with defaults applied) and builds the RebuildSpec
// of a run, with paths resolved; id names the job (for the checkpoint dir).
func (m *Jobs) prepare(spec JobSpec, id string) (RebuildSpec, string, error) {
	var zero RebuildSpec
	if !slices.Contains(m.cfg.Providers, spec.Provider) {
		return zero, "", fieldErr("provider", "provider %q is not available on this server (have %s)", spec.Provider, strings.Join(m.cfg.Providers, ", "))
	}
	model, err := m.cat.Lookup(spec.Model)
	if err != nil {
		return zero, "", &FieldError{Field: "model", Err: err}
	}
	if len(spec.Paths) == 0 {
		return zero, "", fieldErr("paths", "no corpus path given")
	}
	resolved := make([]string, len(spec.Paths))
	for i, p := range spec.Paths {
		r, err := ResolvePath(m.roots, p)
		if err != nil {
			return zero, "", &FieldError{Field: "paths", Err: err}
		}
		resolved[i] = r
	}
	// The corpus must open as given (e.g. no two roots of the same name).
	src, err := corpus.Open(resolved, corpus.Options{})
	if err != nil {
		return zero, "", &FieldError{Field: "paths", Err: clientPaths(err, resolved, spec.Paths)}
	}
	src.Close()
	for _, c := range []struct {
		name string
		v    int64
	}{{"dimensions", int64(spec.Dimensions)}, {"chunk_tokens", int64(spec.ChunkTokens)}, {"chunk_overlap", int64(spec.ChunkOverlap)},
		{"rpm", int64(spec.RPM)}, {"tpm", int64(spec.TPM)}, {"concurrency", int64(spec.Concurrency)}, {"batch_size", int64(spec.BatchSize)},
		{"budget_usd", int64(spec.BudgetUSD)}, {"part_rows", int64(spec.PartRows)}, {"flush_interval_ms", spec.FlushIntervalMS}} {
		if c.v < 0 {
			return zero, "", fieldErr(c.name, "must not be negative")
		}
	}
	switch {
	case spec.ChunkTokens == 0 && spec.ChunkOverlap > 0:
		return zero, "", fieldErr("chunk_overlap", "needs chunk_tokens > 0")
	case spec.ChunkTokens > 0 && spec.ChunkOverlap >= spec.ChunkTokens:
		return zero, "", fieldErr("chunk_overlap", "%d must be less than chunk_tokens %d", spec.ChunkOverlap, spec.ChunkTokens)
	case spec.Concurrency > 256:
		return zero, "", fieldErr("concurrency", "%d is more than 256", spec.Concurrency)
	case spec.BatchSize > model.MaxInputsPerRequest && model.MaxInputsPerRequest > 0:
		return zero, "", fieldErr("batch_size", "%d is more than %s's %d inputs per request", spec.BatchSize, model.Name, model.MaxInputsPerRequest)
	case spec.Dimensions > 0 && model.MaxDimensions > 0 && spec.Dimensions > model.MaxDimensions:
		return zero, "", fieldErr("dimensions", "%d exceeds %s's %d", spec.Dimensions, model.Name, model.MaxDimensions)
	case spec.Dimensions > 0 && model.FixedDimensions && spec.Dimensions != model.DefaultDimensions:
		return zero, "", fieldErr("dimensions", "%s only returns %d dimensions", model.Name, model.DefaultDimensions)
	}
	ckdir, err := m.checkpointDir(spec, id)
	if err != nil {
		return zero, "", err
	}
	rs := RebuildSpec{
		Paths: resolved,
		Corpus: corpus.Options{PlainText: spec.PlainText, Strict: spec.Strict, TextField: spec.TextField, IDField: spec.IDField,
			Filters: corpus.Filters{Exclude: spec.Exclude, Include: spec.Include}},
		Model: model, Dimensions: spec.Dimensions, ChunkTokens: spec.ChunkTokens, ChunkOverlap: spec.ChunkOverlap,
		Limits:        Limits{RPM: spec.RPM, TPM: spec.TPM, Concurrency: spec.Concurrency, BatchSize: spec.BatchSize, Latency: DefaultLatency},
		PartRows:      spec.PartRows,
		FlushInterval: time.Duration(spec.FlushIntervalMS) * time.Millisecond,
		Budget:        spec.BudgetUSD,
		Force:         spec.Force,
	}
	if err := rs.Validate(); err != nil {
		return zero, "", &FieldError{Field: flagField(err.Error()), Err: err}
	}
	return rs, ckdir, nil
}

// clientPaths returns err with the server's paths replaced by the client's.
func clientPaths(err error, server, client []string) error {
	msg := err.Error()
	for i := range server {
		msg = strings.ReplaceAll(msg, server[i], client[i])
	}
	return errors.New(msg)
}

// ClientPaths returns err with the server's (resolved) paths replaced by
// the paths the client gave, so that answers do not reveal the server's
// directory layout.
func ClientPaths(err error, server, client []string) error { return clientPaths(err, server, client) }

// flagField guesses the API field an error about a CLI flag names: the first
// "--flag" in msg, in snake_case.
func flagField(msg string) string {
	i := strings.Index(msg, "--")
	if i < 0 {
		return ""
	}
	f := msg[i+2:]
	if j := strings.IndexFunc(f, func(r rune) bool { return !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }); j >= 0 {
		f = f[:j]
	}
	return strings.ReplaceAll(f, "-", "_")
}

// FieldOfFlagError returns the snake_case field an error of
// [EstimateRequest.Validate] or [RebuildSpec.Validate] names ("" if none).
func FieldOfFlagError(err error) string { return flagField(err.Error()) }

// checkpointDir returns the job's checkpoint directory relative to the data dir.
func (m *Jobs) checkpointDir(spec JobSpec, id string) (string, error) {
	if spec.OutDir == "" {
		return filepath.ToSlash(filepath.Join("jobs", id, "checkpoint")), nil
	}
	out := filepath.FromSlash(spec.OutDir)
	if !filepath.IsLocal(out) {
		return "", fieldErr("out_dir", "%q must be a relative path inside the data directory", spec.OutDir)
	}
	first, _, _ := strings.Cut(filepath.ToSlash(out), "/")
	if first == "jobs" {
		if parts := strings.Split(filepath.ToSlash(out), "/"); len(parts) != 3 || parts[2] != "checkpoint" || !validJobID(parts[1]) {
			return "", fieldErr("out_dir", "%q: under jobs/ only a job's checkpoint directory (jobs/<id>/checkpoint) may be named", spec.OutDir)
		}
	}
	// Refuse symlinks that leave the data directory.
	r, err := os.OpenRoot(m.cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("opening the data directory: %w", err)
	}
	defer r.Close()
	if _, err := r.Stat(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", &FieldError{Field: "out_dir", Err: fmt.Errorf("%q: %w", spec.OutDir, corpus.ErrOutsideRoot)}
	}
	return filepath.ToSlash(out), nil
}

// Submit validates spec and queues a new job, or, when key names an earlier
// job with the same spec, returns that job and created == false. Errors:
// *FieldError (bad spec), ErrIdempotencyKeyReused, ErrJobActive (another
// active job writes the same checkpoint directory), ErrShuttingDown.
func (m *Jobs) Submit(ctx context.Context, spec JobSpec, key string) (j Job, created bool, err error) {
	spec = spec.withDefaults()
	if spec.RPM == 0 {
		spec.RPM = m.cfg.DefaultRPM
	}
	if spec.TPM == 0 {
		spec.TPM = m.cfg.DefaultTPM
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if key != "" {
		if id, ok := m.idem[key]; ok {
			old := m.jobs[id]
			if !sameSpec(old.Spec, spec) {
				return Job{}, false, ErrIdempotencyKeyReused
			}
			return old.view(), false, nil
		}
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
		return Job{}, false, fmt.Errorf("%w: job %s writes %s", ErrJobActive, other, ckdir)
	}
	now := m.now().UTC()
	nj := &job{Job: Job{ID: id, State: JobQueued, Spec: spec, CheckpointDir: ckdir, IdempotencyKey: key, CreatedAt: now, UpdatedAt: now}}
	if err := m.persistLocked(nj); err != nil {
		return Job{}, false, err
	}
	m.jobs[id] = nj
	if key != "" {
		m.idem[key] = id
	}
	m.log.Info("rebuild job queued", "job_id", id, "model", spec.Model, "provider", spec.Provider)
	m.scheduleLocked()
	return nj.view(), true, nil
}

func sameSpec(a, b JobSpec) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// activeOnDirLocked returns the id of an active job (other than except)
// writing ckdir.
func (m *Jobs) activeOnDirLocked(ckdir, except string) string {
	for _, o := range m.jobs {
		if o.ID != except && o.State.Active() && o.CheckpointDir == ckdir {
			return o.ID
		}
	}
	return ""
}

// Get returns the job, or ErrJobNotFound.
func (m *Jobs) Get(id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	}
	return j.view(), nil
}

// List returns every job, oldest first.
func (m *Jobs) List() []Job {
	m.mu.Lock()
	out := make([]Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		out = append(out, j.view())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Job) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Counts returns how many jobs are in each state.
func (m *Jobs) Counts() map[JobState]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[JobState]int, len(JobStates))
	for _, s := range JobStates {
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
// Errors: ErrJobNotFound, ErrJobFinished.
func (m *Jobs) Cancel(ctx context.Context, id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	}
	switch j.State {
	case JobRunning:
		if !j.CancelRequested {
			j.CancelRequested = true
			j.UpdatedAt = m.now().UTC()
			if err := m.persistLocked(j); err != nil {
				return Job{}, err
			}
			j.cancel(ErrJobCancelled)
			m.log.Info("rebuild job cancel requested", "job_id", id)
		}
	case JobQueued, JobInterrupted:
		j.State = JobCancelled
		now := m.now().UTC()
		j.UpdatedAt, j.FinishedAt = now, &now
		if err := m.persistLocked(j); err != nil {
			return Job{}, err
		}
		m.log.Info("rebuild job cancelled", "job_id", id)
	case JobCancelled:
	default:
		return Job{}, fmt.Errorf("%w: job %s is %s", ErrJobFinished, id, j.State)
	}
	return j.view(), nil
}

// ResumeOptions change a job when it is resumed.
type ResumeOptions struct {
	// BudgetUSD, when not nil, replaces the job's budget (over all runs).
	BudgetUSD *pricing.Micros
}

// Resume queues a stopped job again; its run skips what is checkpointed.
// Errors: ErrJobNotFound, ErrJobActive (queued or running), ErrShuttingDown,
// *FieldError (the spec no longer validates, e.g. a corpus root is gone).
func (m *Jobs) Resume(ctx context.Context, id string, opts ResumeOptions) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	}
	if j.State.Active() {
		return Job{}, fmt.Errorf("%w: job %s is %s", ErrJobActive, id, j.State)
	}
	if m.closing {
		return Job{}, ErrShuttingDown
	}
	spec := j.Spec
	if opts.BudgetUSD != nil {
		if *opts.BudgetUSD < 0 {
			return Job{}, fieldErr("budget_usd", "must not be negative")
		}
		spec.BudgetUSD = *opts.BudgetUSD
	}
	if _, _, err := m.prepare(spec, id); err != nil {
		return Job{}, err
	}
	if other := m.activeOnDirLocked(j.CheckpointDir, id); other != "" {
		return Job{}, fmt.Errorf("%w: job %s writes %s", ErrJobActive, other, j.CheckpointDir)
	}
	j.Spec = spec
	j.State = JobQueued
	j.CancelRequested = false
	j.LastError = ""
	j.FinishedAt = nil
	j.UpdatedAt = m.now().UTC()
	if err := m.persistLocked(j); err != nil {
		return Job{}, err
	}
	m.log.Info("rebuild job resumed", "job_id", id)
	m.scheduleLocked()
	return j.view(), nil
}

// scheduleLocked starts queued jobs, oldest first, while slots are free.
func (m *Jobs) scheduleLocked() {
	if m.closing || m.base == nil {
		return
	}
	var queued []*job
	for _, j := range m.jobs {
		if j.State == JobQueued {
			queued = append(queued, j)
		}
	}
	slices.SortFunc(queued, func(a, b *job) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, j := range queued {
		if m.running >= m.cfg.MaxRunning {
			return
		}
		busy := false
		for _, o := range m.jobs {
			busy = busy || o.State == JobRunning && o.CheckpointDir == j.CheckpointDir
		}
		if busy {
			continue
		}
		m.startLocked(j)
	}
}

// startLocked runs j on its own goroutine, under a context the manager owns.
func (m *Jobs) startLocked(j *job) {
	ctx, cancel := context.WithCancelCause(m.base)
	now := m.now().UTC()
	j.State = JobRunning
	j.cancel = cancel
	j.done = make(chan struct{})
	j.Runs++
	j.StartedAt = &now
	j.UpdatedAt = now
	j.prior = j.totals()
	j.Progress = Progress{State: "starting"}
	if err := m.persistLocked(j); err != nil {
		m.log.Error("writing job file", "job_id", j.ID, "err", err)
	}
	m.running++
	m.runs.Add(1)
	go m.run(ctx, j, j.Spec, j.prior, j.Runs, j.done)
}

// run executes one run of a job and records how it ended.
func (m *Jobs) run(ctx context.Context, j *job, spec JobSpec, prior runTotals, run int, done chan struct{}) {
	defer m.runs.Done()
	defer close(done)
	log := m.log.With("job_id", j.ID)
	state, lastErr := m.execute(ctx, log, j, spec, prior, run)
	cause := context.Cause(ctx)
	m.mu.Lock()
	m.running--
	now := m.now().UTC()
	j.State = state
	j.LastError = lastErr
	j.cancel = nil
	j.done = nil
	j.UpdatedAt = now
	if state != JobInterrupted {
		j.FinishedAt = &now
	}
	if err := m.persistLocked(j); err != nil {
		log.Error("writing job file", "err", err)
	}
	v := j.view()
	m.scheduleLocked()
	m.mu.Unlock()
	log.Info("rebuild job run ended", "state", string(state), "cause", fmt.Sprint(cause), "billed_tokens", v.BilledTokens,
		"cost_usd", v.CostUSD.String(), "committed_chunks", v.Progress.CommittedChunks)
	if m.cfg.OnRunEnd != nil {
		m.cfg.OnRunEnd(v)
	}
}

// execute runs the rebuild and maps its outcome to a state.
func (m *Jobs) execute(ctx context.Context, log *slog.Logger, j *job, spec JobSpec, prior runTotals, run int) (state JobState, lastErr string) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("rebuild job panicked", "panic", fmt.Sprint(p))
			state, lastErr = JobFailed, "internal error (see the server log)"
		}
	}()
	rspec, ckdir, err := m.prepare(spec, j.ID)
	if err != nil {
		return JobFailed, err.Error()
	}
	if spec.BudgetUSD > 0 {
		left := spec.BudgetUSD - prior.CostUSD
		if left <= 0 {
			return JobBudgetExhausted, fmt.Sprintf("%v: $%s of the $%s budget is spent; resume with a higher budget_usd", ErrBudgetExceeded, prior.CostUSD, spec.BudgetUSD)
		}
		rspec.Budget = spec.BudgetUSD // the checkpoint's spend ledger counts every run
	}
	var final bool // guarded by m.mu
	emb, err := m.cfg.NewEmbedder(spec)
	if err != nil {
		return JobFailed, fmt.Sprintf("building the embedder: %v", err)
	}
	rb := &Rebuilder{
		Embedder:  emb,
		Tokenizer: m.tok,
		Store:     checkpoint.NewDir(filepath.Join(m.cfg.DataDir, filepath.FromSlash(ckdir))),
		Logger:    log,
		OnProgress: func(p Progress) {
			m.mu.Lock()
			if p.State == "running" && (final || j.State != JobRunning) {
				m.mu.Unlock()
				return // a tick that lost the race with the final snapshot
			}
			final = final || p.State != "running"
			j.Progress = p
			j.UpdatedAt = m.now().UTC()
			w, err := m.encodeLocked(j)
			m.mu.Unlock()
			if err == nil {
				err = m.write(w)
			}
			if err != nil {
				log.Error("writing job file", "err", err)
			}
		},
		ProgressInterval: m.cfg.ProgressInterval,
		GracePeriod:      m.cfg.GracePeriod,
		Now:              m.cfg.Now,
	}
	log.Info("rebuild job run started", "run", run, "checkpoint_dir", ckdir)
	_, err = rb.Run(ctx, rspec)
	if ctx.Err() != nil && err != nil {
		if errors.Is(context.Cause(ctx), ErrJobCancelled) {
			return JobCancelled, ""
		}
		return JobInterrupted, ""
	}
	switch {
	case err == nil:
		return JobSucceeded, ""
	case errors.Is(err, ErrBudgetExceeded):
		return JobBudgetExhausted, err.Error()
	}
	return JobFailed, err.Error()
}

// Shutdown stops every running job (cause ErrServerShutdown) and waits until
// their checkpoints are committed or ctx ends. Stopped jobs are interrupted
// and queued ones stay queued: the next [OpenJobs] resumes both. After
// Shutdown, Submit and Resume return ErrShuttingDown.
func (m *Jobs) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	for _, j := range m.jobs {
		if j.State == JobRunning && j.cancel != nil {
			j.cancel(ErrServerShutdown)
		}
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
		m.stopBase()
		m.lock.Close() // releases the flock: another server may take the directory
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for rebuild jobs to commit: %w", context.Cause(ctx))
	}
}

// ErrDataDirInUse is returned by [OpenJobs] when another process (or another
// Jobs in this one) has the data directory open: two servers would run the
// same jobs twice.
var ErrDataDirInUse = errors.New("data directory is in use by another reembed serve")

// lockDataDir takes an exclusive flock on DIR/lock, held while the returned
// file is open. The kernel drops it when the process dies, so a SIGKILLed
// server never leaves a stale lock.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobs: opening the data directory lock: %w", err)
	}
	if err := checkpoint.TryLockFile(f); err != nil { // flock, or LockFileEx on Windows
		f.Close()
		if errors.Is(err, checkpoint.ErrLockBusy) {
			return nil, fmt.Errorf("jobs: %w: %s", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("jobs: locking the data directory: %w", err)
	}
	return f, nil
}

// Closing reports whether Shutdown was called.
func (m *Jobs) Closing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

// Wait blocks until the job is neither queued nor running (or ctx ends)
// and returns it.
func (m *Jobs) Wait(ctx context.Context, id string) (Job, error) {
	return m.WaitUntil(ctx, id, func(j Job) bool { return !j.State.Active() })
}

// WaitUntil blocks until cond holds for the job (checked at every change of
// the job) or ctx ends, and returns the job. Errors: ErrJobNotFound, ctx's cause.
func (m *Jobs) WaitUntil(ctx context.Context, id string, cond func(Job) bool) (Job, error) {
	for {
		m.mu.Lock()
		j, ok := m.jobs[id]
		if !ok {
			m.mu.Unlock()
			return Job{}, fmt.Errorf("%w: %q", ErrJobNotFound, id)
		}
		v := j.view()
		ch := m.changed
		m.mu.Unlock()
		if cond(v) {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v, context.Cause(ctx)
		}
	}
}

// persistLocked writes jobs/<id>/job.json atomically, and wakes waiters.
func (m *Jobs) persistLocked(j *job) error {
	w, err := m.encodeLocked(j)
	if err != nil {
		return err
	}
	return m.write(w)
}

// encodeLocked snapshots the job's file and wakes waiters on the job.
func (m *Jobs) encodeLocked(j *job) (jobWrite, error) {
	close(m.changed)
	m.changed = make(chan struct{})
	b, err := json.MarshalIndent(jobFile{Version: jobFileVersion, Job: j.Job, Prior: j.prior}, "", "  ")
	if err != nil {
		return jobWrite{}, fmt.Errorf("encoding job %s: %w", j.ID, err)
	}
	j.seq++
	return jobWrite{j: j, seq: j.seq, data: append(b, '\n')}, nil
}

// write puts an encoded job file on disk unless a newer one is there
// already. Progress refreshes call it without holding Jobs.mu, so that
// readers of the job never wait for an fsync.
func (m *Jobs) write(w jobWrite) error {
	w.j.wmu.Lock()
	defer w.j.wmu.Unlock()
	if w.seq <= w.j.written {
		return nil
	}
	dir := filepath.Join(m.jobDir, w.j.ID)
	if err := mkdirSynced(dir); err != nil {
		return fmt.Errorf("creating job directory %s: %w", w.j.ID, err)
	}
	if err := writeFileAtomic(dir, "job.json", w.data); err != nil {
		return fmt.Errorf("writing job %s: %w", w.j.ID, err)
	}
	w.j.written = w.seq
	return nil
}

// mkdirSynced creates dir (and jobs/) and fsyncs the parents it changed.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := mkdirSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// writeFileAtomic writes name in dir: a temp file, fsync, close, rename, and
// an fsync of dir. A crash leaves the old file or the new one, never a torn one.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, tolerating filesystems that refuse it.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// newJobID returns a random job id: "rb_" and 20 hex digits.
func newJobID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("drawing a job id: %w", err)
	}
	return "rb_" + hex.EncodeToString(b[:]), nil
}

// validJobID reports whether id has the shape newJobID makes.
func validJobID(id string) bool {
	if len(id) != 23 || !strings.HasPrefix(id, "rb_") {
		return false
	}
	for _, c := range id[3:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidJobID reports whether id is shaped like a job id ("rb_" and 20 hex digits).
func ValidJobID(id string) bool { return validJobID(id) }
