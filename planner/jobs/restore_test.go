package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/storetest"
)

// memStore is an in-memory restore target shared by the sinks opened on it.
type memStore struct {
	mu     sync.Mutex
	rows   map[checkpoint.Key]checkpoint.Row
	ledger map[string]bool
	loads  int
	block  chan struct{} // when set, LoadPart waits for it (or ctx)
}

type memSink struct{ s *memStore }

func (m memSink) Prepare(ctx context.Context, t store.Target) (map[string]bool, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	out := map[string]bool{}
	for k := range m.s.ledger {
		out[k] = true
	}
	return out, nil
}

func (m memSink) LoadPart(ctx context.Context, p store.Part) error {
	if b := m.s.block; b != nil {
		select {
		case <-b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.loads++
	for _, r := range p.Rows {
		m.s.rows[r.Key()] = r
	}
	m.s.ledger[p.ID] = true
	return nil
}

func (m memSink) BuildIndex(ctx context.Context, o store.IndexOptions, progress func(store.Progress)) error {
	progress(store.Progress{IndexPhase: "building index: loading tuples", TuplesDone: 1, TuplesTotal: 2})
	return nil
}
func (m memSink) Publish(ctx context.Context) error { return nil }
func (m memSink) Keys(ctx context.Context, fn func(checkpoint.Key, string) error) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for k, r := range m.s.rows {
		if err := fn(k, r.ChunkSHA256); err != nil {
			return err
		}
	}
	return nil
}
func (m memSink) Vectors(ctx context.Context, keys []checkpoint.Key) (map[checkpoint.Key][]float32, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	out := map[checkpoint.Key][]float32{}
	for _, k := range keys {
		if r, ok := m.s.rows[k]; ok {
			out[k] = r.Embedding
		}
	}
	return out, nil
}
func (m memSink) Nearest(ctx context.Context, v []float32) (checkpoint.Key, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for k, r := range m.s.rows {
		if len(r.Embedding) > 1 && r.Embedding[1] == v[1] && r.Embedding[0] == v[0] {
			return k, nil
		}
	}
	return checkpoint.Key{}, errors.New("not found")
}
func (m memSink) Attach(ctx context.Context, metric string) error { return nil }
func (m memSink) VerifyRound() func([]float32) []float32          { return nil }
func (m memSink) Close(ctx context.Context) error                 { return nil }

func openMem(t *testing.T, dir string, s *memStore, getenv func(string) string) *jobs.RestoreManager {
	t.Helper()
	var seen []jobs.RestoreTarget
	var mu sync.Mutex
	rm, err := jobs.OpenRestores(jobs.RestoreConfig{DataDir: dir, Getenv: getenv,
		OpenSink: func(ctx context.Context, tg jobs.RestoreTarget) (jobs.RestoreSink, error) {
			mu.Lock()
			seen = append(seen, tg)
			mu.Unlock()
			return memSink{s}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Shutdown(context.Background()) })
	return rm
}

func done(j jobs.RestoreJob) bool { return !j.State.Active() }

// TestRestoreManagerResumesAfterRestart: a job left "running" in job.json
// by a killed server is resumed by the next OpenRestores, skipping the
// parts the store's ledger holds.
func TestRestoreManagerResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	want := storetest.Checkpoint(t, filepath.Join(dir, "ck"), 100, 8, 10)
	s := &memStore{rows: map[checkpoint.Key]checkpoint.Row{}, ledger: map[string]bool{}, block: make(chan struct{})}
	getenv := func(k string) string { return map[string]string{"REEMBED_PGPASSWORD_X": "pw-123"}[k] }
	rm := openMem(t, dir, s, getenv)
	j, created, err := rm.SubmitRestore(t.Context(), jobs.RestoreSpec{Checkpoint: "ck", DSN: "postgres://u@h/db", PasswordEnv: "REEMBED_PGPASSWORD_X", Verify: true}, "")
	if err != nil || !created {
		t.Fatal(err)
	}
	if _, err := rm.WaitRestore(t.Context(), j.ID, func(j jobs.RestoreJob) bool { return j.State == jobs.Running }); err != nil {
		t.Fatal(err)
	}
	// Simulate the kill: let two parts load, then stop the run without a
	// graceful state, and put job.json back to "running".
	path := filepath.Join(dir, "restores", j.ID, "job.json")
	running, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s.block <- struct{}{}
	s.block <- struct{}{}
	rm.Shutdown(t.Context())
	if got, _ := rm.GetRestore(j.ID); got.State != jobs.Interrupted {
		t.Fatalf("after shutdown: %s", got.State)
	}
	if err := os.WriteFile(path, running, 0o644); err != nil {
		t.Fatal(err)
	}
	close(s.block)
	rm2 := openMem(t, dir, s, getenv)
	got, err := rm2.WaitRestore(t.Context(), j.ID, done)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.Succeeded || got.Report.PartsSkipped != 2 || got.VerifyPassed == nil || !*got.VerifyPassed {
		t.Fatalf("after restart: %s %q report %+v verify %+v", got.State, got.LastError, got.Report, got.Verify)
	}
	if len(s.rows) != len(want) || s.loads != got.Report.Parts {
		t.Errorf("store: %d rows (want %d), %d part loads (want %d, each part once)", len(s.rows), len(want), s.loads, got.Report.Parts)
	}
	if got.Progress.PartsDone != got.Progress.PartsTotal {
		t.Errorf("progress %+v", got.Progress)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "pw-123") {
		t.Error("job.json holds the password")
	}
	var f struct {
		Restore jobs.RestoreJob `json:"restore"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Restore.State != jobs.Succeeded {
		t.Errorf("job.json: %v %s", err, f.Restore.State)
	}
}

// TestRestoreSpecChecks checks the manager's own validation, by field.
func TestRestoreSpecChecks(t *testing.T) {
	dir := t.TempDir()
	storetest.Checkpoint(t, filepath.Join(dir, "ck"), 10, 8, 10)
	rm := openMem(t, dir, &memStore{rows: map[checkpoint.Key]checkpoint.Row{}, ledger: map[string]bool{}}, func(string) string { return "" })
	for _, tc := range []struct {
		name  string
		spec  jobs.RestoreSpec
		field string
	}{
		{"password in url", jobs.RestoreSpec{Checkpoint: "ck", DSN: "postgres://u:secret@h/db"}, "dsn"},
		{"password in key=value", jobs.RestoreSpec{Checkpoint: "ck", DSN: "host=h password=secret"}, "dsn"},
		{"password query", jobs.RestoreSpec{Checkpoint: "ck", DSN: "postgresql://u@h/db?password=secret"}, "dsn"},
		{"not a dsn", jobs.RestoreSpec{Checkpoint: "ck", DSN: "h:5432"}, "dsn"},
		{"env of another secret", jobs.RestoreSpec{Checkpoint: "ck", DSN: "postgres://u@h/db", PasswordEnv: "OPENAI_API_KEY"}, "password_env"},
		{"env unset", jobs.RestoreSpec{Checkpoint: "ck", DSN: "postgres://u@h/db", PasswordEnv: "REEMBED_PGPASSWORD"}, "password_env"},
		{"checkpoint job without rebuilds", jobs.RestoreSpec{CheckpointJob: "rb_00000000000000000000", DSN: "postgres://u@h/db"}, "checkpoint_job"},
		{"restores dir", jobs.RestoreSpec{Checkpoint: "restores", DSN: "postgres://u@h/db"}, "checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := rm.SubmitRestore(t.Context(), tc.spec, "")
			fe, ok := errors.AsType[*planner.FieldError](err)
			if !ok || fe.Field != tc.field {
				t.Fatalf("error %v, want a field error on %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
	if n := len(rm.ListRestores()); n != 0 {
		t.Errorf("%d jobs created", n)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "512MB": 512 << 20, "4GB": 4 << 30, "65536kB": 64 << 20, "1TB": 1 << 40} {
		if got, err := jobs.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1GB", "0MB", "99999999999TB", "1.5GB"} {
		if _, err := jobs.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

// TestRestoreOfActiveRebuildRefused: the checkpoint of a rebuild job that
// still runs is refused (ErrActive on checkpoint_job); a finished one's is
// taken, and a restore of the same table while one is active is refused.
func TestRestoreOfActiveRebuildRefused(t *testing.T) {
	dir := t.TempDir()
	storetest.Checkpoint(t, filepath.Join(dir, "jobs", "rb_00000000000000000001", "checkpoint"), 10, 8, 10)
	active := true
	s := &memStore{rows: map[checkpoint.Key]checkpoint.Row{}, ledger: map[string]bool{}, block: make(chan struct{})}
	defer close(s.block)
	rm, err := jobs.OpenRestores(jobs.RestoreConfig{DataDir: dir,
		OpenSink: func(context.Context, jobs.RestoreTarget) (jobs.RestoreSink, error) { return memSink{s}, nil },
		RebuildCheckpoint: func(id string) (string, bool, error) {
			if id != "rb_00000000000000000001" {
				return "", false, jobs.ErrNotFound
			}
			return "jobs/" + id + "/checkpoint", active, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Shutdown(context.Background())
	spec := jobs.RestoreSpec{CheckpointJob: "rb_00000000000000000001", DSN: "postgres://u@h/db"}
	_, _, err = rm.SubmitRestore(t.Context(), spec, "")
	if fe, ok := errors.AsType[*planner.FieldError](err); !ok || fe.Field != "checkpoint_job" || !errors.Is(err, jobs.ErrActive) {
		t.Fatalf("restore of a running rebuild: %v", err)
	}
	active = false
	j, _, err := rm.SubmitRestore(t.Context(), spec, "")
	if err != nil || j.CheckpointDir != "jobs/rb_00000000000000000001/checkpoint" {
		t.Fatalf("restore of a finished rebuild: %+v %v", j, err)
	}
	if _, _, err := rm.SubmitRestore(t.Context(), spec, ""); !errors.Is(err, jobs.ErrRestoreActive) {
		t.Errorf("second restore into the same table: %v, want ErrRestoreActive", err)
	}
	spec.Table = "other"
	if _, _, err := rm.SubmitRestore(t.Context(), spec, ""); err != nil {
		t.Errorf("restore into another table: %v", err)
	}
}
