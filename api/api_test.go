package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

func TestOpenAPICopyAtRepoRootIsIdentical(t *testing.T) {
	root, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, api.OpenAPI) {
		t.Fatal("openapi.yaml differs from api/openapi.yaml (the canonical file): run `cp api/openapi.yaml openapi.yaml`")
	}
}

func TestRoutesMatchSpec(t *testing.T) {
	c := loadContract(t)
	te := newEnv(t, envOptions{})
	var got, want []string
	for _, r := range te.srv.Echo().Routes() {
		p := r.Path
		if i := strings.Index(p, ":id"); i >= 0 {
			p = p[:i] + "{id}" + p[i+3:]
		}
		got = append(got, r.Method+" "+p)
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			want = append(want, method+" "+path)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("routes and openapi.yaml differ:\n routes: %v\n spec:   %v", got, want)
	}
}

// TestContract drives every route, and validates each request and response
// against openapi.yaml.
func TestContract(t *testing.T) {
	c := loadContract(t)
	te := newEnv(t, envOptions{gated: true})

	rec := c.check(t, te, request{method: "GET", path: "/healthz"})
	mustStatus(t, rec, 200)
	rec = c.check(t, te, request{method: "GET", path: "/openapi.yaml"})
	mustStatus(t, rec, 200)
	if !bytes.Equal(rec.Body.Bytes(), api.OpenAPI) {
		t.Error("/openapi.yaml is not the embedded spec")
	}
	rec = c.check(t, te, request{method: "GET", path: "/v1/models"})
	mustStatus(t, rec, 200)
	if m := decode[map[string]any](t, rec); len(m["models"].([]any)) < 3 {
		t.Errorf("models: %v", m)
	}

	// Estimates: a what-if and a corpus, as the CLI's JSON.
	rec = c.check(t, te, request{method: "POST", path: "/v1/estimates",
		body: `{"model":["text-embedding-3-small","text-embedding-3-large"],"documents":10000000,"tokens_per_document":500,"rto":"4h"}`})
	mustStatus(t, rec, 200)
	est := decode[planner.Estimate](t, rec)
	if !est.Corpus.WhatIf || est.Corpus.Tokens != 5_000_000_000 || len(est.Estimates) != 2 || est.Estimates[0].MeetsRTO == nil {
		t.Errorf("what-if estimate: %+v", est)
	}
	if got := est.Estimates[0].CostUSD.String(); got != "100" {
		t.Errorf("5e9 tokens of text-embedding-3-small cost $%s, want $100", got)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{"paths":["docs"],"chunk_tokens":8,"chunk_overlap":0,"latency":"200ms","sample":1}`})
	mustStatus(t, rec, 200)
	est = decode[planner.Estimate](t, rec)
	if est.Corpus.Documents != 3 || est.Corpus.Tokens == 0 || !slices.Equal(est.Corpus.Roots, []string{"docs"}) || est.Limits.LatencyMS != 200 {
		t.Errorf("corpus estimate: %+v", est.Corpus)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{"paths":["docs/a.txt"],"latency_ms":50,"model":"all"}`})
	mustStatus(t, rec, 200)

	// A rebuild: start, list, watch, resume while running (409), cancel, resume, finish.
	job := te.submit(t, c, smallRebuild, map[string]string{"Idempotency-Key": "contract-1"})
	if job.ID == "" || !job.State.Active() || job.Spec.Provider != "simulated" {
		t.Fatalf("submitted job: %+v", job)
	}
	<-te.gate.calls // the first request is in flight: the job runs
	rec = c.check(t, te, request{method: "GET", path: "/v1/rebuilds"})
	mustStatus(t, rec, 200)
	if l := decode[struct{ Rebuilds []jobs.Job }](t, rec); len(l.Rebuilds) != 1 || l.Rebuilds[0].ID != job.ID {
		t.Errorf("list: %+v", l)
	}
	rec = c.check(t, te, request{method: "GET", path: "/v1/rebuilds?state=running"})
	mustStatus(t, rec, 200)
	rec = c.check(t, te, request{method: "GET", path: "/v1/rebuilds/" + job.ID})
	mustStatus(t, rec, 200)
	if j := decode[jobs.Job](t, rec); j.State != jobs.Running {
		t.Errorf("state %s, want running", j.State)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/resume"})
	mustStatus(t, rec, http.StatusConflict)
	if e := decode[errorBody](t, rec); e.Error.Code != api.CodeJobActive || *e.Error.Field != "id" {
		t.Errorf("resume while running: %+v", e)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/cancel"})
	mustStatus(t, rec, http.StatusAccepted)
	if j := decode[jobs.Job](t, rec); !j.CancelRequested {
		t.Errorf("cancel: %+v", j)
	}
	te.gate.release()
	j, err := te.jobs.Wait(t.Context(), job.ID)
	if err != nil || j.State != jobs.Cancelled {
		t.Fatalf("after cancel: %s, %v", j.State, err)
	}
	rec = c.check(t, te, request{method: "GET", path: "/v1/rebuilds/" + job.ID})
	mustStatus(t, rec, 200)
	rec = c.check(t, te, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/resume", body: `{"budget_usd":5}`})
	mustStatus(t, rec, http.StatusAccepted)
	j, _ = te.jobs.Wait(t.Context(), job.ID)
	if j.State != jobs.Succeeded || j.Spec.BudgetUSD != 5_000_000 || j.Runs != 2 {
		t.Fatalf("after resume: %+v", j)
	}
	rec = c.check(t, te, request{method: "GET", path: "/v1/rebuilds/" + job.ID})
	mustStatus(t, rec, 200)
	done := decode[jobs.Job](t, rec)
	if done.Progress.CommittedChunks+done.Progress.ReusedChunks == 0 || done.BilledTokens == 0 || done.FinishedAt == nil {
		t.Errorf("finished job: %+v", done)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/rebuilds/" + job.ID + "/cancel"})
	mustStatus(t, rec, http.StatusConflict)

	// Metrics.
	rec = c.check(t, te, request{method: "GET", path: "/metrics"})
	mustStatus(t, rec, 200)
	for _, want := range []string{`reembed_jobs{state="succeeded"} 1`, "reembed_embed_billed_tokens_total", "reembed_http_request_duration_seconds_bucket",
		`reembed_rate_limit_utilization{limit="tpm"}`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(rec.Body.String(), "reembed_restores") {
		t.Errorf("/metrics of a server without restore jobs reports reembed_restores")
	}

	// Error answers are in the spec too.
	c.check(t, te, request{method: "GET", path: "/v1/rebuilds/rb_00000000000000000000"})
	c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{"rpm":-1}`})
	c.check(t, te, request{method: "POST", path: "/v1/rebuilds", body: `{"paths":["../x"]}`})
}

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	c := loadContract(t)
	te := newEnv(t, envOptions{})
	h := map[string]string{"Idempotency-Key": "incident-42-rebuild"}
	a := te.submit(t, c, smallRebuild, h)
	rec := c.check(t, te, request{method: "POST", path: "/v1/rebuilds", body: smallRebuild, header: h})
	mustStatus(t, rec, http.StatusAccepted)
	b := decode[jobs.Job](t, rec)
	if b.ID != a.ID || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: id %s (first %s), replayed %q", b.ID, a.ID, rec.Header().Get("Idempotent-Replayed"))
	}
	if n := len(te.jobs.List()); n != 1 {
		t.Errorf("%d jobs after a retried POST, want 1", n)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/rebuilds", body: `{"paths":["docs"],"chunk_tokens":16,"chunk_overlap":0}`, header: h})
	mustStatus(t, rec, http.StatusUnprocessableEntity)
	if e := decode[errorBody](t, rec); e.Error.Code != api.CodeIdempotencyKeyReused || *e.Error.Field != "Idempotency-Key" {
		t.Errorf("reused key: %+v", e)
	}
}

func TestAuth(t *testing.T) {
	te := newEnv(t, envOptions{token: "s3cret-token"})
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"no token", "/v1/models", "", 401},
		{"wrong token", "/v1/models", "Bearer nope", 401},
		{"other scheme", "/v1/models", "Basic s3cret-token", 401},
		{"token", "/v1/models", "Bearer s3cret-token", 200},
		{"scheme is case-insensitive", "/v1/models", "bearer s3cret-token", 200},
		{"metrics need it", "/metrics", "", 401},
		{"unknown route without token", "/v1/nope", "", 401},
		{"healthz is open", "/healthz", "", 200},
		{"the contract is open", "/openapi.yaml", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := te.serve(t, request{method: "GET", path: tc.path, header: map[string]string{"Authorization": tc.auth}})
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == 401 {
				e := decode[errorBody](t, rec)
				if e.Error.Code != api.CodeUnauthorized || *e.Error.Field != "Authorization" || rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 body %+v, WWW-Authenticate %q", e, rec.Header().Get("WWW-Authenticate"))
				}
			}
		})
	}
	if strings.Contains(te.logs.String(), "s3cret-token") {
		t.Error("the token is in the log")
	}
}

// failingJobs is a JobManager whose every call fails with an internal error.
type failingJobs struct{}

var errDisk = errors.New("disk on fire: /var/lib/reembed/secret-detail")

func (failingJobs) Submit(context.Context, jobs.Spec, string) (jobs.Job, bool, error) {
	return jobs.Job{}, false, errDisk
}
func (failingJobs) Get(string) (jobs.Job, error) { return jobs.Job{}, errDisk }
func (failingJobs) List() []jobs.Job             { panic("list exploded") }
func (failingJobs) Cancel(context.Context, string) (jobs.Job, error) {
	return jobs.Job{}, errDisk
}
func (failingJobs) Resume(context.Context, string, jobs.ResumeOptions) (jobs.Job, error) {
	return jobs.Job{}, errDisk
}
func (failingJobs) Counts() map[jobs.State]int { return nil }
func (failingJobs) Closing() bool              { return false }

func TestInternalErrorsAnswer500WithoutDetail(t *testing.T) {
	var logs bytes.Buffer
	srv, err := api.New(api.Config{Jobs: failingJobs{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	te := &testEnv{srv: srv}
	for _, r := range []request{
		{method: "GET", path: "/v1/rebuilds/rb_00000000000000000000"},
		{method: "GET", path: "/v1/rebuilds"}, // a panic
	} {
		rec := te.serve(t, r)
		if rec.Code != 500 {
			t.Fatalf("%s: status %d", r.path, rec.Code)
		}
		e := decode[errorBody](t, rec)
		rid := rec.Header().Get("X-Request-Id")
		if e.Error.Code != api.CodeInternal || rid == "" || !strings.Contains(e.Error.Message, rid) {
			t.Errorf("500 body %+v, request id %q", e, rid)
		}
		if strings.Contains(rec.Body.String(), "secret-detail") || strings.Contains(rec.Body.String(), "exploded") {
			t.Errorf("500 body leaks the detail: %s", rec.Body.String())
		}
		if !strings.Contains(logs.String(), rid) {
			t.Errorf("the log lacks request id %s", rid)
		}
	}
	if !strings.Contains(logs.String(), "secret-detail") || !strings.Contains(logs.String(), "list exploded") {
		t.Errorf("the log lacks the details: %s", logs.String())
	}
}

func TestHealthzWhileShuttingDown(t *testing.T) {
	te := newEnv(t, envOptions{})
	te.jobs.Shutdown(t.Context())
	rec := te.serve(t, request{method: "GET", path: "/healthz"})
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "shutting_down") {
		t.Errorf("healthz while shutting down: %d %s", rec.Code, rec.Body.String())
	}
	rec = te.serve(t, request{method: "POST", path: "/v1/rebuilds", body: smallRebuild})
	if e := decode[errorBody](t, rec); rec.Code != 503 || e.Error.Code != api.CodeShuttingDown {
		t.Errorf("submit while shutting down: %d %+v", rec.Code, e)
	}
}

// TestEstimateMatchesCLIJSON checks that the API answers the planner's
// estimate field for field (the CLI prints the same value with json.Encoder).
func TestEstimateMatchesPlanner(t *testing.T) {
	te := newEnv(t, envOptions{})
	rec := te.serve(t, request{method: "POST", path: "/v1/estimates", body: `{"documents":1000,"tokens_per_document":300,"rpm":100,"tpm":50000,"concurrency":2,"latency":"2s","batch_size":16}`})
	mustStatus(t, rec, 200)
	tok := te.jobs.Tokenizer()
	want, err := planner.Run(t.Context(), tok, planner.EstimateRequest{Models: mustModels(t, te), ChunkTokens: 512, ChunkOverlap: 64,
		Limits: planner.Limits{RPM: 100, TPM: 50000, Concurrency: 2, Latency: 2e9, BatchSize: 16},
		WhatIf: &planner.WhatIf{Documents: 1000, TokensPerDocument: 300}})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	var got, exp any
	json.Unmarshal(rec.Body.Bytes(), &got)
	json.Unmarshal(wantJSON, &exp)
	g, _ := json.Marshal(got)
	e, _ := json.Marshal(exp)
	if !bytes.Equal(g, e) {
		t.Errorf("API estimate differs from the planner's:\n got  %s\n want %s", g, e)
	}
}

func mustModels(t *testing.T, te *testEnv) []pricing.Model {
	t.Helper()
	m, err := te.jobs.Catalog().Resolve([]string{"text-embedding-3-small"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSpecExamplesAreAccepted sends every request example of openapi.yaml
// to its operation: each must be accepted and its answer match the spec.
func TestSpecExamplesAreAccepted(t *testing.T) {
	c := loadContract(t)
	te := newEnv(t, envOptions{})
	n := 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			mt := op.RequestBody.Value.Content.Get("application/json")
			if mt == nil {
				continue
			}
			for name, ex := range mt.Examples {
				body, err := json.Marshal(ex.Value.Value)
				if err != nil {
					t.Fatal(err)
				}
				rec := c.check(t, te, request{method: method, path: path, body: string(body)})
				if rec.Code >= 300 {
					t.Errorf("%s %s example %q: %d %s", method, path, name, rec.Code, trim(rec.Body.String()))
				}
				n++
			}
		}
	}
	if n < 3 {
		t.Errorf("%d examples in openapi.yaml, want at least 3", n)
	}
}

// TestBodyLimitWithoutContentLength sends a body of unknown length (chunked)
// past the limit: it is cut off and answered 413.
func TestBodyLimitWithoutContentLength(t *testing.T) {
	te := newEnv(t, envOptions{maxBody: 1024})
	before := listing(t, te.data)
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/v1/rebuilds",
		io.MultiReader(strings.NewReader(`{"paths":["`), strings.NewReader(strings.Repeat("x", 4096)), strings.NewReader(`"]}`)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	te.srv.ServeHTTP(rec, req)
	if e := decode[errorBody](t, rec); rec.Code != 413 || e.Error.Code != api.CodeBodyTooLarge {
		t.Errorf("status %d, %+v", rec.Code, e)
	}
	if after := listing(t, te.data); !slices.Equal(before, after) || len(te.jobs.List()) != 0 {
		t.Error("a refused body changed the data directory")
	}
}
