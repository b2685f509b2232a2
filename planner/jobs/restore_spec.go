package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
)

// PasswordEnvPrefix starts the name of every environment variable a restore
// may read its password from (password_env): REEMBED_PGPASSWORD,
// REEMBED_PGPASSWORD_PROD, ... Other names are refused, so that a client
// cannot have the server send another secret of its environment (an API
// key) to a host the client chose.
const PasswordEnvPrefix = "REEMBED_PGPASSWORD"

// RestoreSpec is what a restore job does, as a client asked for it. It
// holds no password: DSN must not carry one; the server connects with the
// password of the environment variable PasswordEnv names, or else with what
// the PostgreSQL driver reads itself (PGPASSWORD, ~/.pgpass).
type RestoreSpec struct {
	// CheckpointJob is a rebuild job whose checkpoint is restored; or
	// Checkpoint is a checkpoint directory relative to the data directory.
	// Exactly one is set.
	CheckpointJob string `json:"checkpoint_job,omitempty"`
	Checkpoint    string `json:"checkpoint,omitempty"`
	// DSN is the target: postgres://USER@HOST:PORT/DB or key=value, without a password.
	DSN string `json:"dsn"`
	// PasswordEnv names the server's environment variable holding the
	// password; it must start with [PasswordEnvPrefix].
	PasswordEnv string `json:"password_env,omitempty"`
	// Table is TABLE or SCHEMA.TABLE (default reembed_chunks, at most 45 bytes).
	Table string `json:"table"`
	// Mode is "auto" (default: swap a new table in, or resume/top up a table
	// this checkpoint was restored into), "swap" or "append".
	Mode string `json:"mode"`
	// Index is "hnsw" (default), "ivfflat" or "none"; Metric "cosine"
	// (default), "l2" or "ip".
	Index  string `json:"index"`
	Metric string `json:"metric"`
	// HNSWM, HNSWEfConstruction and IVFFlatLists tune the index (0: defaults).
	HNSWM              int `json:"hnsw_m"`
	HNSWEfConstruction int `json:"hnsw_ef_construction"`
	IVFFlatLists       int `json:"ivfflat_lists"`
	// MaintenanceWorkMem and MaxIndexMemory are bytes (0: the server's; only warn).
	MaintenanceWorkMem int64 `json:"maintenance_work_mem_bytes"`
	MaxIndexMemory     int64 `json:"max_index_memory_bytes"`
	// ParallelWorkers is max_parallel_maintenance_workers; -1 keeps the server's.
	ParallelWorkers int `json:"parallel_workers"`
	// Verify compares the live table with the checkpoint after the restore:
	// VerifySample vectors exactly, IndexQueries ANN queries (recall@1 at
	// least MinRecall); zeros mean 100, 20 and 0.9.
	Verify       bool    `json:"verify"`
	VerifySample int     `json:"verify_sample"`
	IndexQueries int     `json:"index_queries"`
	MinRecall    float64 `json:"min_recall"`
}

// withDefaults fills the defaults the server applies.
func (s RestoreSpec) withDefaults() RestoreSpec {
	if s.Table == "" {
		s.Table = "reembed_chunks"
	}
	if s.Mode == "" {
		s.Mode = "auto"
	}
	if s.Index == "" {
		s.Index = "hnsw"
	}
	if s.Metric == "" {
		s.Metric = "cosine"
	}
	if s.Verify {
		if s.VerifySample == 0 {
			s.VerifySample = 100
		}
		if s.IndexQueries == 0 {
			s.IndexQueries = 20
		}
		if s.MinRecall == 0 {
			s.MinRecall = 0.9
		}
	}
	s.Checkpoint = filepath.ToSlash(filepath.Clean(filepath.FromSlash(s.Checkpoint)))
	if s.Checkpoint == "." {
		s.Checkpoint = ""
	}
	return s
}

// validate checks the spec's own fields, naming the field at fault. Fields
// only the API has (dsn, password_env, checkpoint_job, min_recall) are
// written plainly, not as {placeholders}: no CLI flag renders them.
func (s RestoreSpec) validate(getenv func(string) string) error {
	if err := checkDSN(s.DSN); err != nil {
		return err
	}
	if s.PasswordEnv != "" {
		if !strings.HasPrefix(s.PasswordEnv, PasswordEnvPrefix) {
			return fieldErr("password_env", "password_env %q: the server reads passwords only from variables whose name starts with %s", s.PasswordEnv, PasswordEnvPrefix)
		}
		if getenv(s.PasswordEnv) == "" {
			return fieldErr("password_env", "password_env %q is not set in the server's environment", s.PasswordEnv)
		}
	}
	if err := checkTable(s.Table); err != nil {
		return err
	}
	enums := []struct {
		field, value string
		allowed      []string
	}{
		{"mode", s.Mode, []string{"auto", "swap", "append"}},
		{"index", s.Index, []string{"hnsw", "ivfflat", "none"}},
		{"metric", s.Metric, []string{"cosine", "l2", "ip"}},
	}
	for _, e := range enums {
		if !slices.Contains(e.allowed, e.value) {
			return fieldErr(e.field, "{%s} %q: want %s", e.field, e.value, strings.Join(e.allowed, ", "))
		}
	}
	for _, n := range []struct {
		field string
		v     int64
	}{{"hnsw_m", int64(s.HNSWM)}, {"hnsw_ef_construction", int64(s.HNSWEfConstruction)}, {"ivfflat_lists", int64(s.IVFFlatLists)},
		{"maintenance_work_mem", s.MaintenanceWorkMem}, {"max_index_memory", s.MaxIndexMemory},
		{"verify_sample", int64(s.VerifySample)}, {"index_queries", int64(s.IndexQueries)}} {
		if n.v < 0 {
			return fieldErr(n.field, "{%s} must not be negative", n.field)
		}
	}
	if s.ParallelWorkers < -1 || s.ParallelWorkers > 64 {
		return fieldErr("parallel_workers", "{parallel_workers} %d: want 0 to 64, or -1 for the server's setting", s.ParallelWorkers)
	}
	if s.MinRecall < 0 || s.MinRecall > 1 {
		return fieldErr("min_recall", "min_recall %v: want a fraction in [0, 1]", s.MinRecall)
	}
	return nil
}

// checkDSN refuses a DSN that is not PostgreSQL's, or that holds a
// password (which would end up in job.json and every answer). Its messages
// never quote the DSN.
func checkDSN(dsn string) error {
	if dsn == "" {
		return fieldErr("dsn", "dsn is required: postgres://USER@HOST:PORT/DB")
	}
	const noPassword = "dsn must not hold a password (it would be stored and shown): give password_env naming a %s* variable of the server, or use the server's PGPASSWORD or ~/.pgpass"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return fieldErr("dsn", "dsn is not a valid URL")
		}
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return fieldErr("dsn", noPassword, PasswordEnvPrefix)
		}
		return nil
	}
	if !strings.Contains(dsn, "=") {
		return fieldErr("dsn", "dsn: want a postgres:// URL or a key=value DSN")
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, _ := strings.Cut(f, "="); strings.TrimSpace(k) == "password" {
			return fieldErr("dsn", noPassword, PasswordEnvPrefix)
		}
	}
	return nil
}

// checkTable checks a TABLE or SCHEMA.TABLE name as the pgvector sink takes it.
func checkTable(t string) error {
	parts := strings.Split(t, ".")
	if len(parts) > 2 || parts[len(parts)-1] == "" || parts[0] == "" {
		return fieldErr("table", "{table} %q: want TABLE or SCHEMA.TABLE", t)
	}
	if len(parts[len(parts)-1]) > 45 {
		return fieldErr("table", "{table} %q: the table name is longer than 45 bytes", t)
	}
	return nil
}

// prepare validates the spec and resolves its checkpoint to a directory
// relative to the data directory, which it checks holds a checkpoint.
func (m *RestoreManager) prepare(ctx context.Context, s RestoreSpec) (string, error) {
	if err := s.validate(m.cfg.Getenv); err != nil {
		return "", err
	}
	var rel, field string
	switch {
	case s.CheckpointJob != "" && s.Checkpoint != "":
		return "", fieldErr("checkpoint", "give {checkpoint} or checkpoint_job, not both")
	case s.CheckpointJob != "":
		field = "checkpoint_job"
		if m.cfg.RebuildCheckpoint == nil || !ValidID(s.CheckpointJob) {
			return "", fieldErr(field, "checkpoint_job %q: no rebuild job has this id", s.CheckpointJob)
		}
		dir, active, err := m.cfg.RebuildCheckpoint(s.CheckpointJob)
		if err != nil {
			return "", fieldErr(field, "checkpoint_job %q: no rebuild job has this id", s.CheckpointJob)
		}
		if active {
			return "", &planner.FieldError{Field: field, Err: ErrActive,
				Message: fmt.Sprintf("checkpoint_job %s is still running: restore its checkpoint when it has ended", s.CheckpointJob)}
		}
		rel = dir
	case s.Checkpoint != "":
		field, rel = "checkpoint", s.Checkpoint
	default:
		return "", fieldErr("checkpoint", "{checkpoint} (a directory inside the data directory) or checkpoint_job (a rebuild job id) is required")
	}
	if _, err := m.checkpointStore(ctx, rel, field); err != nil {
		return "", err
	}
	return rel, nil
}

// checkpointStore opens the checkpoint at rel (relative to the data
// directory, symlinks not leaving it) and checks it has a manifest.
func (m *RestoreManager) checkpointStore(ctx context.Context, rel, field string) (*checkpoint.Dir, error) {
	p := filepath.FromSlash(rel)
	if !filepath.IsLocal(p) {
		return nil, fieldErr(field, "{%s} %q must be a relative path inside the data directory", field, rel)
	}
	if first, _, _ := strings.Cut(filepath.ToSlash(p), "/"); first == "restores" {
		return nil, fieldErr(field, "{%s} %q: restores/ holds no checkpoint", field, rel)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(m.cfg.DataDir, p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &planner.FieldError{Field: field, Err: fs.ErrNotExist, Message: fmt.Sprintf("{%s} %q does not exist in the data directory", field, rel)}
	}
	if err != nil {
		return nil, fieldErr(field, "{%s} %q: %v", field, rel, corpus.ClientText(err.Error(), nil, nil, []string{m.cfg.DataDir}))
	}
	if r, err := filepath.Rel(m.cfg.DataDir, real); err != nil || !filepath.IsLocal(r) {
		return nil, fieldErr(field, "{%s} %q leaves the data directory (through a symlink)", field, rel)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return nil, fieldErr(field, "{%s} %q is not a directory", field, rel)
	}
	src := checkpoint.NewDir(real)
	if _, err := anyManifest(ctx, src); err != nil {
		return nil, fieldErr(field, "{%s} %q: %v", field, rel, err)
	}
	return src, nil
}

// anyManifest reads the checkpoint's manifest, or a shard's.
func anyManifest(ctx context.Context, src checkpoint.Store) (checkpoint.Manifest, error) {
	m, err := checkpoint.ReadManifest(ctx, src, checkpoint.Shard{})
	if err == nil {
		return m, nil
	}
	files, lerr := src.List(ctx)
	if lerr == nil {
		for _, f := range files {
			var s checkpoint.Shard
			if _, e := fmt.Sscanf(f.Name, "shard-%d-of-%d/", &s.Index, &s.Count); e == nil && s.Count > 0 && checkpoint.ManifestPath(s) == f.Name {
				return checkpoint.ReadManifest(ctx, src, s)
			}
		}
	}
	return m, errors.New("no manifest.json: not a reembed checkpoint")
}

// CheckpointOf returns a rebuild job's checkpoint directory (relative to the
// data directory) and whether the job is active: what
// [RestoreConfig.RebuildCheckpoint] asks. Errors: ErrNotFound.
func (m *Manager) CheckpointOf(id string) (dir string, active bool, err error) {
	j, err := m.Get(id)
	if err != nil {
		return "", false, err
	}
	return j.CheckpointDir, j.State.Active(), nil
}

// ParseSize parses a size such as 512MB, 4GB or 65536kB into bytes ("" is 0).
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"KB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n <= 0 || n > math.MaxInt64/u.mult {
				break
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q: want a size such as 512MB or 4GB", s)
}

// CheckTarget checks a DSN and password_env as a restore job's are checked
// (no password in the DSN; password_env named with [PasswordEnvPrefix] and
// set in the server's environment), for other users of a restore target
// (the estimate's calibration). Errors are *planner.FieldError naming dsn
// or password_env.
func (m *RestoreManager) CheckTarget(dsn, passwordEnv string) error {
	s := RestoreSpec{DSN: dsn, PasswordEnv: passwordEnv}.withDefaults()
	return s.validate(m.cfg.Getenv)
}
