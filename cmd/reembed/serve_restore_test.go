package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store/pgvector/pgtest"
)

// TestServeRestoreJob runs `reembed serve` as a subprocess: a rebuild on the
// simulated provider, then POST /v1/restores of its checkpoint into a
// throwaway PostgreSQL with the password in a REEMBED_PGPASSWORD_*
// variable, verified; an estimate calibrated on the same target; SIGTERM
// exits 0. The password appears in no answer and no log line.
func TestServeRestoreJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server subprocesses")
	}
	full := pgtest.New(t).DB(t)
	u, _ := url.Parse(full)
	u.User = url.User(u.User.Username())
	dsn := u.String()
	t.Setenv("REEMBED_PGPASSWORD_SERVE", pgtest.Password) // the server subprocess inherits it

	data, root := t.TempDir(), writeServeCorpus(t)
	s := startServer(t, []string{"--addr", "127.0.0.1:0", "--data", data, "--corpus-root", root, "--sim-latency", "1ms",
		"--auth-token-env", "REEMBED_TEST_TOKEN"})
	var answers strings.Builder
	call := func(method, path, body string) (int, []byte) {
		code, b := s.call(t, method, path, body, nil)
		answers.Write(b)
		return code, b
	}
	code, b := call("POST", "/v1/rebuilds", `{"paths":["."],"dimensions":8,"chunk_tokens":16,"chunk_overlap":0,"part_rows":2}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/rebuilds: %d %s", code, b)
	}
	var rb jobs.Job
	json.Unmarshal(b, &rb)
	s.waitFor(t, "rebuild job run ended", "state", "succeeded")

	code, b = call("POST", "/v1/restores", fmt.Sprintf(`{"checkpoint_job":%q,"dsn":%q,"password_env":"REEMBED_PGPASSWORD_SERVE"}`, rb.ID, dsn))
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/restores: %d %s", code, b)
	}
	var rj jobs.RestoreJob
	json.Unmarshal(b, &rj)
	s.waitFor(t, "restore job run ended", "job_id", rj.ID)
	code, b = call("GET", "/v1/restores/"+rj.ID, "")
	json.Unmarshal(b, &rj)
	if code != http.StatusOK || rj.State != jobs.Succeeded || rj.VerifyPassed == nil || !*rj.VerifyPassed || rj.Report.Keys == 0 ||
		rj.Verify.Rows != rj.Report.Keys {
		t.Fatalf("restore job: %d %s", code, b)
	}
	if code, b := call("POST", "/v1/restores", fmt.Sprintf(`{"checkpoint_job":%q,"dsn":%q}`, rb.ID, full)); code != http.StatusBadRequest ||
		!strings.Contains(string(b), `"field":"dsn"`) {
		t.Errorf("a DSN with its password: %d %s, want 400 on dsn", code, b)
	}

	code, b = call("POST", "/v1/estimates", fmt.Sprintf(`{"documents":10000,"tokens_per_document":300,"restore":{"calibrate":true,"dsn":%q,`+
		`"password_env":"REEMBED_PGPASSWORD_SERVE","dimensions":32,"calibrate_rows":[200,400]}}`, dsn))
	var est planner.Estimate
	json.Unmarshal(b, &est)
	if code != http.StatusOK || est.Estimates[0].Restore == nil || !est.Estimates[0].Restore.Calibrated {
		t.Fatalf("calibrated estimate: %d %s", code, b)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	for name, out := range map[string]string{"answers": answers.String(), "log": s.log()} {
		if strings.Contains(out, pgtest.Password) {
			t.Errorf("the %s hold the password", name)
		}
	}
	files := 0
	filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			files++
			if strings.Contains(string(b), pgtest.Password) {
				t.Errorf("%s holds the password", p)
			}
		}
		return err
	})
	if files < 3 {
		t.Errorf("only %d files in the data directory", files)
	}
}
