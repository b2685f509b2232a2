package api_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/storetest"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestBenchRestoreJob measures a restore run as an API job against the same
// restore run directly (store.Restore, what `reembed restore` does), in the
// same run, alternating: the job's bookkeeping (job.json, progress) should
// cost nothing measurable. Then it builds an HNSW index through a job and
// reports the index phases and tuple counts GET /v1/restores/{id} showed.
// Run by scripts/bench-restore-api.sh.
func TestBenchRestoreJob(t *testing.T) {
	if os.Getenv("REEMBED_BENCH_RESTORE_API") != "1" {
		t.Skip("a benchmark: scripts/bench-restore-api.sh runs it")
	}
	rows, dims, runs := envInt("REEMBED_BENCH_ROWS", 20000), envInt("REEMBED_BENCH_DIMS", 1536), envInt("REEMBED_BENCH_RUNS", 3)
	re := newRestoreEnv(t, nil)
	c := loadContract(t)
	dir := filepath.Join(re.data, "ck")
	storetest.Checkpoint(t, dir, rows, dims, 2000)
	src := checkpoint.NewDir(dir)
	man, err := checkpoint.ReadManifest(t.Context(), src, checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	var direct, job []float64
	for i := range runs {
		start := time.Now()
		sink, err := pgvector.Open(t.Context(), pgvector.Config{DSN: re.full, Table: fmt.Sprintf("direct_%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Restore(t.Context(), src, man, sink, store.Options{Index: store.IndexOptions{Kind: "none"}}); err != nil {
			t.Fatal(err)
		}
		sink.Close(t.Context())
		direct = append(direct, float64(rows)/time.Since(start).Seconds())

		start = time.Now()
		body := fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q,"table":"job_%d","index":"none","verify":false}`, re.dsn, passwordEnv, i)
		res := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body})
		mustCode(t, res, http.StatusAccepted)
		if j := re.wait(t, c, res.job(t).ID); j.State != jobs.Succeeded {
			t.Fatalf("job: %s %s", j.State, j.LastError)
		}
		job = append(job, float64(rows)/time.Since(start).Seconds())
		t.Logf("run %d: direct %.0f rows/s, job %.0f rows/s", i+1, direct[i], job[i])
	}
	md, mj := median(direct), median(job)
	fmt.Printf("restore %d x %d-d, no index, %d runs: direct (store.Restore) median %.0f rows/s; API job median %.0f rows/s; ratio %.2f\n",
		rows, dims, runs, md, mj, mj/md)

	body := fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q,"table":"indexed","index":"hnsw","max_index_memory":"2GB","index_queries":20}`, re.dsn, passwordEnv)
	res := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body})
	mustCode(t, res, http.StatusAccepted)
	id := res.job(t).ID
	var phases []string
	var tuples int64
	// At every change of the job, GET it as a runbook would.
	_, err = re.rm.WaitRestore(t.Context(), id, func(jobs.RestoreJob) bool {
		j := re.do(t, c, request{method: http.MethodGet, path: "/v1/restores/" + id}).job(t)
		p := j.Progress.Phase + " " + j.Progress.IndexPhase
		if !slices.Contains(phases, p) {
			phases = append(phases, p)
		}
		tuples = max(tuples, j.Progress.TuplesDone)
		return !j.State.Active()
	})
	if err != nil {
		t.Fatal(err)
	}
	j := re.wait(t, c, id)
	if j.State != jobs.Succeeded || !*j.VerifyPassed {
		t.Fatalf("indexed job: %s %s", j.State, j.LastError)
	}
	fmt.Printf("hnsw job: load %.1f s, index %.1f s, verify recall@1 %.2f; GET showed phases %q, tuples_done up to %d\n",
		j.Report.LoadSeconds, j.Report.IndexSeconds, j.Verify.RecallAt1, phases, tuples)
	re.checkNoPassword(t)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
