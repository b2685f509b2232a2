package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(restoreChild())
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// passwordEnv is the variable restore tests name in password_env.
const passwordEnv = "REEMBED_PGPASSWORD_TEST"

// hookSink runs a hook before each part load (n counts from 1) and before
// the index build (n = 0): tests block or count there.
type hookSink struct {
	jobs.RestoreSink
	hook func(ctx context.Context, n int) error
	n    int
}

func (h *hookSink) BuildIndex(ctx context.Context, o store.IndexOptions, progress func(store.Progress)) error {
	if h.hook != nil {
		if err := h.hook(ctx, 0); err != nil {
			return err
		}
	}
	return h.RestoreSink.BuildIndex(ctx, o, progress)
}

func (h *hookSink) LoadPart(ctx context.Context, p store.Part) error {
	h.n++
	if h.hook != nil {
		if err := h.hook(ctx, h.n); err != nil {
			return err
		}
	}
	return h.RestoreSink.LoadPart(ctx, p)
}

// sinkOpener opens pgvector sinks, with hook (may be nil) before each part.
func sinkOpener(hook func(ctx context.Context, n int) error) jobs.RestoreSinkOpener {
	return func(ctx context.Context, t jobs.RestoreTarget) (jobs.RestoreSink, error) {
		s, err := pgvector.OpenMode(ctx, t.DSN, t.Password, t.Table, t.Mode, t.Notice)
		if err != nil {
			return nil, err
		}
		return &hookSink{RestoreSink: s, hook: hook}, nil
	}
}

// calibrator is serve's restore calibrator, for tests.
func calibrator(getenv func(string) string) api.RestoreCalibrator {
	return func(ctx context.Context, dsn, penv string, dims int, sizes []int) (planner.RestoreModel, error) {
		c, err := pgvector.CalibrateConfig(ctx, pgvector.Config{DSN: dsn, Password: getenv(penv)}, dims, sizes,
			func(d int) float64 { return planner.RestoreRowBytes(d, d > pgvector.MaxVectorDims) })
		if err != nil {
			return planner.RestoreModel{}, err
		}
		return planner.RestoreModel{LoadBytesPerSecond: c.LoadBytesPerSecond, IndexA: c.IndexA, IndexB: c.IndexB, Calibrated: true,
			Basis: "calibrated on the target"}, nil
	}
}

// restoreEnv is an API with rebuild and restore jobs and a fresh database.
type restoreEnv struct {
	*testEnv
	rm     *jobs.RestoreManager
	dsn    string // without the password
	full   string // with it, for the test's own queries
	rlogs  *bytes.Buffer
	bodies []string // every response body, for the password grep
	getenv func(string) string
}

// stripPassword returns the URL without its password.
func stripPassword(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

func newRestoreEnv(t *testing.T, hook func(ctx context.Context, n int) error) *restoreEnv {
	t.Helper()
	return newRestoreEnvOn(t, pgtest.DSN(t), hook)
}

// newRestoreEnvOn is newRestoreEnv on a given database URL (with password).
func newRestoreEnvOn(t *testing.T, full string, hook func(ctx context.Context, n int) error) *restoreEnv {
	t.Helper()
	re := &restoreEnv{testEnv: newEnv(t, envOptions{}), full: full, dsn: stripPassword(t, full), rlogs: &bytes.Buffer{}}
	re.getenv = func(k string) string {
		if k == passwordEnv {
			return pgtest.Password
		}
		return ""
	}
	re.openRestores(t, hook)
	return re
}

// openRestores (re)opens the restore manager on the env's data directory
// and serves it.
func (re *restoreEnv) openRestores(t *testing.T, hook func(ctx context.Context, n int) error) {
	t.Helper()
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, re.rlogs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rm, err := jobs.OpenRestores(jobs.RestoreConfig{DataDir: re.data, OpenSink: sinkOpener(hook), RebuildCheckpoint: re.jobs.CheckpointOf,
		Getenv: re.getenv, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Shutdown(context.Background()) })
	srv, err := api.New(api.Config{Jobs: re.jobs, CorpusRoots: re.jobs.Roots(), Logger: logger, Restores: rm, CalibrateRestore: calibrator(re.getenv)})
	if err != nil {
		t.Fatal(err)
	}
	re.rm, re.srv = rm, srv
}

// do sends r through the contract check and keeps the body.
func (re *restoreEnv) do(t *testing.T, c *contract, r request) *httpResult {
	t.Helper()
	rec := c.check(t, re.testEnv, r)
	re.bodies = append(re.bodies, rec.Body.String())
	return &httpResult{code: rec.Code, body: rec.Body.Bytes()}
}

type httpResult struct {
	code int
	body []byte
}

func (h *httpResult) job(t *testing.T) jobs.RestoreJob {
	t.Helper()
	var j jobs.RestoreJob
	if err := json.Unmarshal(h.body, &j); err != nil {
		t.Fatalf("decoding %s: %v", h.body, err)
	}
	return j
}

// wait waits until the restore is no longer active and GETs it.
func (re *restoreEnv) wait(t *testing.T, c *contract, id string) jobs.RestoreJob {
	t.Helper()
	if _, err := re.rm.WaitRestore(t.Context(), id, func(j jobs.RestoreJob) bool { return !j.State.Active() }); err != nil {
		t.Fatal(err)
	}
	res := re.do(t, c, request{method: http.MethodGet, path: "/v1/restores/" + id})
	mustCode(t, res, http.StatusOK)
	return res.job(t)
}

func mustCode(t *testing.T, h *httpResult, want int) {
	t.Helper()
	if h.code != want {
		t.Fatalf("status %d, want %d: %s", h.code, want, trim(string(h.body)))
	}
}

// checkNoPassword greps every answer, log and file of the data directory for the password.
func (re *restoreEnv) checkNoPassword(t *testing.T, extra ...string) {
	t.Helper()
	for i, b := range append(re.bodies, extra...) {
		if strings.Contains(b, pgtest.Password) {
			t.Errorf("output %d holds the password: %s", i, trim(b))
		}
	}
	for name, b := range map[string]string{"api log": re.logs.String(), "restore log": re.rlogs.String()} {
		if strings.Contains(b, pgtest.Password) {
			t.Errorf("the %s holds the password", name)
		}
	}
	files := 0
	filepath.WalkDir(re.data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(pgtest.Password)) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	if files == 0 {
		t.Error("no file in the data directory was checked")
	}
}

// checkTable fails unless the table holds exactly the checkpoint's winning
// rows, once each, and the ledger accounts for every row once.
func checkTable(t *testing.T, dsn, table string, want map[checkpoint.Key]checkpoint.Row) {
	t.Helper()
	got := pgtest.Rows(t, dsn, table)
	if len(got) != len(want) {
		t.Errorf("table has %d keys, checkpoint %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("key %s missing", k)
		case g.ChunkSHA256 != w.ChunkSHA256 || fmt.Sprint(g.Embedding) != fmt.Sprint(w.Embedding):
			t.Errorf("key %s: stored row differs from the checkpoint's", k)
		}
	}
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var rows, keys, ledger int64
	q := fmt.Sprintf("SELECT count(*), count(DISTINCT (doc_id, chunk_index)) FROM %s", pgx.Identifier{table}.Sanitize())
	if err := c.QueryRow(t.Context(), q).Scan(&rows, &keys); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(t.Context(), "SELECT coalesce(sum(rows), 0) FROM "+pgvector.LedgerTable+" WHERE target = $1",
		pgx.Identifier{table}.Sanitize()).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if rows != int64(len(want)) || keys != rows || ledger != rows {
		t.Errorf("table: %d rows, %d distinct keys, ledger %d rows; want %d of each", rows, keys, ledger, len(want))
	}
}

// TestRestoreJobEndToEnd restores a rebuild job's checkpoint, then a
// checkpoint directory, through the API: rows equal to the checkpoint's,
// verify passed, progress complete, and the password nowhere.
func TestRestoreJobEndToEnd(t *testing.T) {
	re := newRestoreEnv(t, nil)
	c := loadContract(t)
	rb := re.submit(t, c, smallRebuild, nil)
	if j, _ := re.jobs.Wait(t.Context(), rb.ID); j.State != jobs.Succeeded {
		t.Fatalf("rebuild: %s %s", j.State, j.LastError)
	}
	body := fmt.Sprintf(`{"checkpoint_job":%q,"dsn":%q,"password_env":%q,"table":"from_job","index":"hnsw","parallel_workers":0,"maintenance_work_mem":"64MB"}`,
		rb.ID, re.dsn, passwordEnv)
	res := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body})
	mustCode(t, res, http.StatusAccepted)
	j := re.wait(t, c, res.job(t).ID)
	if j.State != jobs.Succeeded || j.VerifyPassed == nil || !*j.VerifyPassed || j.Verify == nil || !j.Verify.Complete() {
		t.Fatalf("restore of the rebuild's checkpoint: %s %q verify %+v", j.State, j.LastError, j.Verify)
	}
	ck := filepath.Join(re.data, filepath.FromSlash(rb.CheckpointDir))
	want := checkpointRows(t, ck)
	checkTable(t, re.full, "from_job", want)
	if j.Report == nil || j.Report.Keys != len(want) || j.Report.Rows != int64(len(want)) {
		t.Errorf("report %+v, want %d keys and rows", j.Report, len(want))
	}

	// A checkpoint directory inside the data directory, several parts, halfvec-free 16-d vectors.
	want = storetest.Checkpoint(t, filepath.Join(re.data, "ckpts", "a"), 240, 16, 20)
	body = fmt.Sprintf(`{"checkpoint":"ckpts/a","dsn":%q,"password_env":%q,"table":"from_dir","mode":"swap","index":"ivfflat","ivfflat_lists":4,"metric":"l2","index_queries":10,"min_recall":0.5}`,
		re.dsn, passwordEnv)
	res = re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body, header: map[string]string{"Idempotency-Key": "dir-a"}})
	mustCode(t, res, http.StatusAccepted)
	id := res.job(t).ID
	again := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body, header: map[string]string{"Idempotency-Key": "dir-a"}})
	if again.code != http.StatusAccepted || again.job(t).ID != id {
		t.Errorf("replayed POST: %d %s, want 202 and job %s", again.code, trim(string(again.body)), id)
	}
	j = re.wait(t, c, id)
	if j.State != jobs.Succeeded || j.VerifyPassed == nil || !*j.VerifyPassed {
		t.Fatalf("restore of a checkpoint dir: %s %q verify %+v", j.State, j.LastError, j.Verify)
	}
	checkTable(t, re.full, "from_dir", want)
	p := j.Progress
	if p.PartsDone != p.PartsTotal || p.PartsTotal < 12 || j.Report.Parts != p.PartsTotal || j.Report.PartsLoaded != p.PartsTotal {
		t.Errorf("progress %+v report %+v: want every part loaded", p, j.Report)
	}
	list := re.do(t, c, request{method: http.MethodGet, path: "/v1/restores?state=succeeded"})
	mustCode(t, list, http.StatusOK)
	var l struct{ Restores []jobs.RestoreJob }
	json.Unmarshal(list.body, &l)
	if len(l.Restores) != 2 {
		t.Errorf("list: %d succeeded restores, want 2", len(l.Restores))
	}
	metrics := re.do(t, c, request{method: http.MethodGet, path: "/metrics"})
	if want := `reembed_restores{state="succeeded"} 2`; !strings.Contains(string(metrics.body), want) {
		t.Errorf("/metrics lacks %q", want)
	}
	re.checkNoPassword(t)
}

// TestHealthzAndMetricsSeeRestores: /metrics reports restore jobs by state
// (zeros before any), and /healthz says 503 once the restore jobs shut
// down, even while the rebuild jobs have not. No database needed: no
// restore runs.
func TestHealthzAndMetricsSeeRestores(t *testing.T) {
	re := &restoreEnv{testEnv: newEnv(t, envOptions{}), rlogs: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	re.openRestores(t, nil)
	c := loadContract(t)
	metrics := re.do(t, c, request{method: http.MethodGet, path: "/metrics"})
	for _, state := range jobs.States {
		if want := fmt.Sprintf("reembed_restores{state=%q} 0", state); !strings.Contains(string(metrics.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	mustCode(t, re.do(t, c, request{method: http.MethodGet, path: "/healthz"}), http.StatusOK)
	if err := re.rm.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if re.jobs.Closing() {
		t.Fatal("the rebuild jobs are closing too: the test proves nothing")
	}
	res := re.do(t, c, request{method: http.MethodGet, path: "/healthz"})
	if res.code != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "shutting_down") {
		t.Errorf("/healthz while the restore jobs shut down: %d %s, want 503 shutting_down", res.code, res.body)
	}
}

// checkpointRows reads the winning row of every key of a checkpoint.
func checkpointRows(t *testing.T, dir string) map[checkpoint.Key]checkpoint.Row {
	t.Helper()
	src := checkpoint.NewDir(dir)
	ix, err := checkpoint.Scan(t.Context(), src, checkpoint.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[checkpoint.Key]checkpoint.Row{}
	for _, p := range ix.Parts() {
		f, err := src.Open(t.Context(), p.Name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := checkpoint.ReadRows(f, f.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if e, ok := ix.Lookup(r.Key()); ok && e.Part == p.Name && e.SHA256 == r.ChunkSHA256 {
				out[r.Key()] = r
			}
		}
	}
	if len(out) != ix.Len() {
		t.Fatalf("read %d winning rows of %d keys", len(out), ix.Len())
	}
	return out
}

// TestRestoreJobWarnsIndexMemory: an HNSW graph that will not fit in
// maintenance_work_mem is said before the build, in the job's warnings.
func TestRestoreJobWarnsIndexMemory(t *testing.T) {
	re := newRestoreEnv(t, nil)
	c := loadContract(t)
	want := storetest.Checkpoint(t, filepath.Join(re.data, "ck"), 2000, 32, 1000)
	body := fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q,"table":"tight","maintenance_work_mem":"1MB","parallel_workers":0}`, re.dsn, passwordEnv)
	res := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body})
	mustCode(t, res, http.StatusAccepted)
	j := re.wait(t, c, res.job(t).ID)
	if j.State != jobs.Succeeded {
		t.Fatalf("restore: %s %q", j.State, j.LastError)
	}
	if !strings.Contains(strings.Join(j.Warnings, "\n"), "maintenance_work_mem") {
		t.Errorf("warnings %q: want the graph-does-not-fit warning", j.Warnings)
	}
	checkTable(t, re.full, "tight", want)
	re.checkNoPassword(t)
}
