package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

// TestRestoreBadRequests sends bad restore requests: each gets its status,
// code and field, creates no job, changes nothing in the data directory,
// and never echoes a password. It needs no PostgreSQL: nothing connects.
func TestRestoreBadRequests(t *testing.T) {
	// No request here connects: no PostgreSQL needed.
	re := newRestoreEnvOn(t, "postgres://"+pgtest.User+":"+pgtest.Password+"@127.0.0.1:1/none?sslmode=disable", nil)
	c := loadContract(t)
	storetest.Checkpoint(t, filepath.Join(re.data, "ck"), 20, 8, 10)
	os.MkdirAll(filepath.Join(re.data, "empty"), 0o755)
	outside := t.TempDir()
	storetest.Checkpoint(t, outside, 20, 8, 10)
	if err := os.Symlink(outside, filepath.Join(re.data, "escape")); err != nil {
		t.Fatal(err)
	}
	running := re.submit(t, c, smallRebuild, nil) // may still run: only its id matters below
	if j, _ := re.jobs.Wait(t.Context(), running.ID); j.State != jobs.Succeeded {
		t.Fatalf("setup rebuild: %s", j.State)
	}
	dsn := re.dsn
	// One restore that fails (nothing listens on port 1), started with an Idempotency-Key.
	setup := re.do(t, c, request{method: "POST", path: "/v1/restores", header: map[string]string{"Idempotency-Key": "setup-r"},
		body: fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q}`, dsn, passwordEnv)})
	mustCode(t, setup, http.StatusAccepted)
	failed := re.wait(t, c, setup.job(t).ID)
	if failed.State != jobs.Failed || failed.LastError == "" || strings.Contains(failed.LastError, pgtest.Password) {
		t.Fatalf("setup restore: %s %q, want failed with a reason and no password", failed.State, failed.LastError)
	}
	ok := func(extra string) request {
		return request{method: "POST", path: "/v1/restores", body: fmt.Sprintf(`{"checkpoint":"ck","dsn":%q%s}`, dsn, extra)}
	}
	raw := func(body string) request { return request{method: "POST", path: "/v1/restores", body: body} }
	withPass := strings.Replace(dsn, "@", ":"+pgtest.Password+"@", 1)
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
		field  string
	}{
		{"no dsn", raw(`{"checkpoint":"ck"}`), 400, api.CodeInvalidValue, "dsn"},
		{"dsn with a password", raw(fmt.Sprintf(`{"checkpoint":"ck","dsn":%q}`, withPass)), 400, api.CodeInvalidValue, "dsn"},
		{"dsn with a password parameter", raw(fmt.Sprintf(`{"checkpoint":"ck","dsn":%q}`, dsn+"&password="+pgtest.Password)), 400, api.CodeInvalidValue, "dsn"},
		{"key=value dsn with a password", raw(`{"checkpoint":"ck","dsn":"host=db user=app password=` + pgtest.Password + `"}`), 400, api.CodeInvalidValue, "dsn"},
		{"dsn not postgres", raw(`{"checkpoint":"ck","dsn":"mysql://db"}`), 400, api.CodeInvalidValue, "dsn"},
		{"password field", raw(fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password":%q}`, dsn, pgtest.Password)), 400, api.CodeUnknownField, "password"},
		{"password_env of another secret", ok(`,"password_env":"OPENAI_API_KEY"`), 400, api.CodeInvalidValue, "password_env"},
		{"password_env unset", ok(`,"password_env":"REEMBED_PGPASSWORD_NOPE"`), 400, api.CodeInvalidValue, "password_env"},
		{"no checkpoint", raw(fmt.Sprintf(`{"dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint"},
		{"both checkpoints", ok(`,"checkpoint_job":"` + running.ID + `"`), 400, api.CodeInvalidValue, "checkpoint"},
		{"unknown rebuild job", raw(fmt.Sprintf(`{"checkpoint_job":"rb_00000000000000000000","dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint_job"},
		{"malformed rebuild job", raw(fmt.Sprintf(`{"checkpoint_job":"../x","dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint_job"},
		{"checkpoint dotdot", raw(fmt.Sprintf(`{"checkpoint":"../x","dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint"},
		{"checkpoint absolute", raw(fmt.Sprintf(`{"checkpoint":%q,"dsn":%q}`, outside, dsn)), 400, api.CodeInvalidValue, "checkpoint"},
		{"checkpoint symlink escape", raw(fmt.Sprintf(`{"checkpoint":"escape","dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint"},
		{"checkpoint missing", raw(fmt.Sprintf(`{"checkpoint":"nope","dsn":%q}`, dsn)), 400, api.CodePathNotFound, "checkpoint"},
		{"checkpoint without manifest", raw(fmt.Sprintf(`{"checkpoint":"empty","dsn":%q}`, dsn)), 400, api.CodeInvalidValue, "checkpoint"},
		{"bad table", ok(`,"table":"a.b.c"`), 400, api.CodeInvalidValue, "table"},
		{"long table", ok(`,"table":"` + strings.Repeat("t", 46) + `"`), 400, api.CodeInvalidValue, "table"},
		{"bad mode", ok(`,"mode":"merge"`), 400, api.CodeInvalidValue, "mode"},
		{"bad index", ok(`,"index":"diskann"`), 400, api.CodeInvalidValue, "index"},
		{"bad metric", ok(`,"metric":"hamming"`), 400, api.CodeInvalidValue, "metric"},
		{"negative hnsw m", ok(`,"hnsw_m":-1`), 400, api.CodeInvalidValue, "hnsw_m"},
		{"bad memory size", ok(`,"maintenance_work_mem":"lots"`), 400, api.CodeInvalidValue, "maintenance_work_mem"},
		{"bad max index memory", ok(`,"max_index_memory":"-4GB"`), 400, api.CodeInvalidValue, "max_index_memory"},
		{"workers below -1", ok(`,"parallel_workers":-2`), 400, api.CodeInvalidValue, "parallel_workers"},
		{"recall above 1", ok(`,"min_recall":1.5`), 400, api.CodeInvalidValue, "min_recall"},
		{"verify of wrong type", ok(`,"verify":"yes"`), 400, api.CodeInvalidType, "verify"},
		{"idempotency key reused", request{method: "POST", path: "/v1/restores", header: map[string]string{"Idempotency-Key": "setup-r"},
			body: fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"table":"other"}`, dsn)}, 422, api.CodeIdempotencyKeyReused, "Idempotency-Key"},
		{"cancel a finished restore", request{method: "POST", path: "/v1/restores/" + failed.ID + "/cancel"}, 409, api.CodeJobFinished, "id"},
		{"cancel with a body", request{method: "POST", path: "/v1/restores/" + failed.ID + "/cancel", body: `{"now":true}`}, 400, api.CodeUnknownField, "now"},
		{"unknown restore", request{method: "GET", path: "/v1/restores/rs_00000000000000000000"}, 404, api.CodeNotFound, "id"},
		{"rebuild id as restore id", request{method: "GET", path: "/v1/restores/" + running.ID}, 404, api.CodeNotFound, "id"},
		{"cancel unknown restore", request{method: "POST", path: "/v1/restores/rs_00000000000000000000/cancel"}, 404, api.CodeNotFound, "id"},
		{"list with bad state", request{method: "GET", path: "/v1/restores?state=exploded"}, 400, api.CodeInvalidValue, "state"},
		// Estimates with a restore target.
		{"estimate restore of another store", raw2(`{"store":"qdrant"}`), 400, api.CodeInvalidValue, "restore.store"},
		{"estimate restore bad index", raw2(`{"index":"flat"}`), 400, api.CodeInvalidValue, "restore.index"},
		{"estimate restore negative dims", raw2(`{"dimensions":-1}`), 400, api.CodeInvalidValue, "restore.dimensions"},
		{"estimate restore dsn without calibrate", raw2(`{"dsn":"postgres://a@b/c"}`), 400, api.CodeConflict, "restore.calibrate"},
		{"estimate calibrate with a password", raw2(fmt.Sprintf(`{"calibrate":true,"dsn":%q}`, withPass)), 400, api.CodeInvalidValue, "restore.dsn"},
		{"estimate calibrate other secret", raw2(fmt.Sprintf(`{"calibrate":true,"dsn":%q,"password_env":"HOME"}`, dsn)), 400, api.CodeInvalidValue, "restore.password_env"},
		{"estimate calibrate tiny sample", raw2(fmt.Sprintf(`{"calibrate":true,"dsn":%q,"calibrate_rows":[5]}`, dsn)), 400, api.CodeInvalidValue, "restore.calibrate_rows"},
		{"estimate restore unknown field", raw2(`{"stor":"pgvector"}`), 400, api.CodeUnknownField, "stor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listing(t, re.data)
			n := len(re.rm.ListRestores())
			rec := re.serve(t, tc.req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, trim(rec.Body.String()))
			}
			e := decode[errorBody](t, rec)
			if e.Error.Code != tc.code || e.Error.Field == nil || *e.Error.Field != tc.field || e.Error.Message == "" {
				t.Errorf("error %+v (field %v), want code %q field %q", e.Error, deref(e.Error.Field), tc.code, tc.field)
			}
			leak := strings.Contains(rec.Body.String(), outside) && !strings.Contains(tc.req.body, outside)
			if strings.Contains(rec.Body.String(), pgtest.Password) || leak {
				t.Errorf("the answer reveals the password or a server path: %s", rec.Body.String())
			}
			if after := listing(t, re.data); !slices.Equal(before, after) {
				t.Errorf("the data directory changed:\n before %v\n after  %v", before, after)
			}
			if len(re.rm.ListRestores()) != n {
				t.Error("a restore job was created")
			}
		})
	}
	re.checkNoPassword(t)
}

// raw2 is an estimate (a what-if) with the given restore object.
func raw2(restore string) request {
	return request{method: "POST", path: "/v1/estimates", body: `{"documents":1000,"tokens_per_document":500,"restore":` + restore + `}`}
}

// TestEstimateWithRestoreTarget checks that the restore's terms join the
// duration and the RTO verdict: an RTO the embedding alone meets is missed
// once load, index and verify are counted, with restore recommendations;
// and that a calibrated target is measured on the live server.
func TestEstimateWithRestoreTarget(t *testing.T) {
	te := newEnv(t, envOptions{})
	c := loadContract(t)
	whatIf := `"model":"text-embedding-3-small","documents":1000000,"tokens_per_document":500,"rpm":100000,"tpm":100000000,"concurrency":64`
	plain := c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{` + whatIf + `}`})
	mustStatus(t, plain, http.StatusOK)
	embed := decode[planner.Estimate](t, plain).Estimates[0]
	rto := embed.DurationSeconds + 60 // met by the embedding alone
	body := fmt.Sprintf(`{%s,"rto":"%ds","restore":{"store":"pgvector","index":"hnsw"}}`, whatIf, int(rto))
	rec := c.check(t, te, request{method: "POST", path: "/v1/estimates", body: body})
	mustStatus(t, rec, http.StatusOK)
	me := decode[planner.Estimate](t, rec).Estimates[0]
	r := me.Restore
	if r == nil || r.Calibrated || r.LoadSeconds <= 0 || r.IndexSeconds <= 0 || r.VerifySeconds <= 0 || r.Rows != me.Chunks {
		t.Fatalf("restore terms %+v", r)
	}
	if got, want := me.DurationSeconds, embed.DurationSeconds+r.Seconds(); got < want-1e-6 || got > want+1e-6 {
		t.Errorf("duration %v s, want embed %v + restore %v", got, embed.DurationSeconds, r.Seconds())
	}
	if me.MeetsRTO == nil || *me.MeetsRTO {
		t.Errorf("meets_rto %v: embed %v s meets the %v s RTO, embed + load + index + verify (%v s) must not", me.MeetsRTO, embed.DurationSeconds, rto, me.DurationSeconds)
	}
	if !strings.Contains(strings.Join(me.Recommendations, "\n"), "IVFFlat") {
		t.Errorf("recommendations name no restore remedy: %q", me.Recommendations)
	}
	ivf := c.check(t, te, request{method: "POST", path: "/v1/estimates", body: fmt.Sprintf(`{%s,"restore":{"index":"ivfflat"}}`, whatIf)})
	if ri := decode[planner.Estimate](t, ivf).Estimates[0].Restore; ri == nil || ri.IndexSeconds >= r.IndexSeconds {
		t.Errorf("IVFFlat index term %+v, want below HNSW's %v s", ri, r.IndexSeconds)
	}
	t.Run("calibrated", func(t *testing.T) {
		re := newRestoreEnv(t, nil)
		body := fmt.Sprintf(`{%s,"restore":{"calibrate":true,"dsn":%q,"password_env":%q,"dimensions":64,"calibrate_rows":[300,600]}}`,
			whatIf, re.dsn, passwordEnv)
		res := re.do(t, c, request{method: "POST", path: "/v1/estimates", body: body})
		mustCode(t, res, http.StatusOK)
		var est planner.Estimate
		json.Unmarshal(res.body, &est)
		rc := est.Estimates[0].Restore
		if rc == nil || !rc.Calibrated || rc.Dimensions != 64 || rc.LoadSeconds <= 0 || rc.IndexSeconds <= 0 {
			t.Fatalf("calibrated restore terms %+v", rc)
		}
		re.checkNoPassword(t)
	})
}
