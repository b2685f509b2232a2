package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/planner/jobs"
)

// TestBadRequests sends bad requests and checks, for each, the status, the
// error code, the field named, that the body has the one error shape, and
// that nothing changed on disk and no job was created.
func TestBadRequests(t *testing.T) {
	te := newEnv(t, envOptions{maxBody: 4096})
	c := loadContract(t)
	// One finished job, started with an Idempotency-Key, for the rows that need one.
	done := te.submit(t, c, smallRebuild, map[string]string{"Idempotency-Key": "setup"})
	if j, _ := te.jobs.Wait(t.Context(), done.ID); j.State != jobs.Succeeded {
		t.Fatalf("setup job: %s %s", j.State, j.LastError)
	}
	est := func(body string) request { return request{method: "POST", path: "/v1/estimates", body: body} }
	rb := func(body string) request { return request{method: "POST", path: "/v1/rebuilds", body: body} }
	whatIf := `"documents":10,"tokens_per_document":10`
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
		field  string
	}{
		// Estimates: JSON shape.
		{"malformed JSON", est(`{"paths":`), 400, api.CodeInvalidJSON, ""},
		{"not an object", est(`["docs"]`), 400, api.CodeInvalidJSON, ""},
		{"two JSON values", est(`{}{}`), 400, api.CodeInvalidJSON, ""},
		{"empty body", est(``), 400, api.CodeMissing, ""},
		{"unknown field", est(`{"pathz":["docs"]}`), 400, api.CodeUnknownField, "pathz"},
		{"key in another casing", est(`{"Documents":10,"tokens_per_document":10}`), 400, api.CodeUnknownField, "Documents"},
		{"duplicate key", est(`{"documents":10,"documents":20,"tokens_per_document":10}`), 400, api.CodeInvalidJSON, "documents"},
		{"rebuild key in another casing", rb(`{"Paths":["docs"]}`), 400, api.CodeUnknownField, "Paths"},
		{"rebuild duplicate key", rb(`{"paths":["docs"],"paths":["nope"]}`), 400, api.CodeInvalidJSON, "paths"},
		{"resume duplicate key", request{method: "POST", path: "/v1/rebuilds/" + done.ID + "/resume", body: `{"budget_usd":1,"budget_usd":2}`}, 400, api.CodeInvalidJSON, "budget_usd"},
		{"wrong type", est(`{"rpm":"fast",` + whatIf + `}`), 400, api.CodeInvalidType, "rpm"},
		{"model of wrong type", est(`{"model":5,` + whatIf + `}`), 400, api.CodeInvalidType, "model"},
		{"form body", request{method: "POST", path: "/v1/estimates", body: `paths=docs`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, api.CodeUnsupportedMediaType, "Content-Type"},
		{"body too large", est(`{"paths":["` + strings.Repeat("a", 5000) + `"]}`), 413, api.CodeBodyTooLarge, ""},
		// Estimates: values.
		{"negative rpm", est(`{"rpm":-1,` + whatIf + `}`), 400, api.CodeInvalidValue, "rpm"},
		{"negative tpm", est(`{"tpm":-5,` + whatIf + `}`), 400, api.CodeInvalidValue, "tpm"},
		{"zero concurrency", est(`{"concurrency":0,` + whatIf + `}`), 400, api.CodeInvalidValue, "concurrency"},
		{"negative chunk tokens", est(`{"chunk_tokens":-1,` + whatIf + `}`), 400, api.CodeInvalidValue, "chunk_tokens"},
		{"overlap not below chunk", est(`{"chunk_tokens":64,"chunk_overlap":64,` + whatIf + `}`), 400, api.CodeInvalidValue, "chunk_overlap"},
		{"bad latency", est(`{"latency":"fast",` + whatIf + `}`), 400, api.CodeInvalidValue, "latency"},
		{"latency twice", est(`{"latency":"1s","latency_ms":5,` + whatIf + `}`), 400, api.CodeConflict, "latency_ms"},
		{"negative rto", est(`{"rto":"-1h",` + whatIf + `}`), 400, api.CodeInvalidValue, "rto"},
		{"sample above 1", est(`{"sample":2,"paths":["docs"]}`), 400, api.CodeInvalidValue, "sample"},
		{"bad include glob", est(`{"paths":["docs"],"include":["[a-"]}`), 400, api.CodeInvalidValue, "include"},
		{"bad exclude glob in a rebuild", rb(`{"paths":["docs"],"exclude":["{a"]}`), 400, api.CodeInvalidValue, "exclude"},
		{"sample too small to sample", est(`{"sample":1e-160,"paths":["docs"]}`), 400, api.CodeInvalidValue, "sample"},
		{"unknown model", est(`{"model":"text-embedding-9",` + whatIf + `}`), 400, api.CodeUnknownModel, "model"},
		{"no corpus", est(`{}`), 400, api.CodeMissing, "paths"},
		{"zero documents", est(`{"documents":0,"tokens_per_document":5}`), 400, api.CodeInvalidValue, "documents"},
		{"what-if half given", est(`{"documents":5}`), 400, api.CodeInvalidValue, "tokens_per_document"},
		{"what-if with paths", est(`{"paths":["docs"],` + whatIf + `}`), 400, api.CodeConflict, "paths"},
		// Corpus paths.
		{"dotdot", est(`{"paths":["../outside"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"dotdot inside", est(`{"paths":["docs/../../outside/secret.txt"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"absolute outside", est(`{"paths":["/etc"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"symlink escape", est(`{"paths":["escape/secret.txt"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"missing path", est(`{"paths":["nope"]}`), 400, api.CodePathNotFound, "paths"},
		{"paths with clashing names", est(`{"paths":["docs","other/docs"]}`), 400, api.CodeInvalidValue, "paths"},
		{"rebuild paths with clashing names", rb(`{"paths":["docs","other/docs"]}`), 400, api.CodeInvalidValue, "paths"},
		// Rebuilds.
		{"rebuild without paths", rb(`{}`), 400, api.CodeMissing, "paths"},
		{"rebuild with two models", rb(`{"paths":["docs"],"model":["a","b"]}`), 400, api.CodeInvalidType, "model"},
		{"rebuild unknown model", rb(`{"paths":["docs"],"model":"nope"}`), 400, api.CodeUnknownModel, "model"},
		{"rebuild bogus provider", rb(`{"paths":["docs"],"provider":"bogus"}`), 400, api.CodeInvalidValue, "provider"},
		{"rebuild provider not configured", rb(`{"paths":["docs"],"provider":"openai"}`), 400, api.CodeInvalidValue, "provider"},
		{"negative budget", rb(`{"paths":["docs"],"budget_usd":-1}`), 400, api.CodeInvalidValue, "budget_usd"},
		{"budget not money", rb(`{"paths":["docs"],"budget_usd":"lots"}`), 400, api.CodeInvalidValue, "budget_usd"},
		{"budget of wrong type", rb(`{"paths":["docs"],"budget_usd":true}`), 400, api.CodeInvalidType, "budget_usd"},
		{"out dir escapes data", rb(`{"paths":["docs"],"out_dir":"../elsewhere"}`), 400, api.CodeInvalidValue, "out_dir"},
		{"rebuild outside root", rb(`{"paths":["/etc"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"rebuild symlink escape", rb(`{"paths":["escape"]}`), 400, api.CodeOutsideRoot, "paths"},
		{"bad flush interval", rb(`{"paths":["docs"],"flush_interval":"soon"}`), 400, api.CodeInvalidValue, "flush_interval"},
		{"too many dimensions", rb(`{"paths":["docs"],"dimensions":99999}`), 400, api.CodeInvalidValue, "dimensions"},
		{"batch above model max", rb(`{"paths":["docs"],"batch_size":5000}`), 400, api.CodeInvalidValue, "batch_size"},
		{"negative part rows", rb(`{"paths":["docs"],"part_rows":-2}`), 400, api.CodeInvalidValue, "part_rows"},
		{"rebuild zero concurrency", rb(`{"paths":["docs"],"concurrency":0}`), 400, api.CodeInvalidValue, "concurrency"},
		{"rebuild flush interval twice", rb(`{"paths":["docs"],"flush_interval":"1s","flush_interval_ms":5}`), 400, api.CodeConflict, "flush_interval_ms"},
		{"rebuild rpm of wrong type", rb(`{"paths":["docs"],"rpm":"fast"}`), 400, api.CodeInvalidType, "rpm"},
		{"rebuild unknown field", rb(`{"paths":["docs"],"mood":"batch"}`), 400, api.CodeUnknownField, "mood"},
		{"rebuild bogus mode", rb(`{"paths":["docs"],"mode":"turbo"}`), 400, api.CodeInvalidValue, "mode"},
		{"rebuild auto without rto", rb(`{"paths":["docs"],"mode":"auto"}`), 400, api.CodeMissing, "rto"},
		{"rebuild bad rto", rb(`{"paths":["docs"],"mode":"auto","rto":"soon"}`), 400, api.CodeInvalidValue, "rto"},
		{"rebuild batch p90 below p50", rb(`{"paths":["docs"],"mode":"auto","rto":"4h","batch_p50":"1h","batch_p90":"1m"}`), 400, api.CodeInvalidValue, "batch_p90"},
		{"rebuild bad batch tier", rb(`{"paths":["docs"],"mode":"batch","batch_tier":9}`), 400, api.CodeInvalidValue, "batch_tier"},
		{"bad idempotency key", request{method: "POST", path: "/v1/rebuilds", body: smallRebuild, header: map[string]string{"Idempotency-Key": "has space"}}, 400, api.CodeInvalidValue, "Idempotency-Key"},
		{"idempotency key reused", request{method: "POST", path: "/v1/rebuilds", body: `{"paths":["docs"]}`, header: map[string]string{"Idempotency-Key": "setup"}}, 422, api.CodeIdempotencyKeyReused, "Idempotency-Key"},
		{"list with bad state", request{method: "GET", path: "/v1/rebuilds?state=exploded"}, 400, api.CodeInvalidValue, "state"},
		{"malformed job id", request{method: "GET", path: "/v1/rebuilds/nope"}, 404, api.CodeNotFound, "id"},
		{"unknown job", request{method: "GET", path: "/v1/rebuilds/rb_00000000000000000000"}, 404, api.CodeNotFound, "id"},
		{"cancel unknown job", request{method: "POST", path: "/v1/rebuilds/rb_00000000000000000000/cancel"}, 404, api.CodeNotFound, "id"},
		{"cancel a finished job", request{method: "POST", path: "/v1/rebuilds/" + done.ID + "/cancel"}, 409, api.CodeJobFinished, "id"},
		{"resume with negative budget", request{method: "POST", path: "/v1/rebuilds/" + done.ID + "/resume", body: `{"budget_usd":-3}`}, 400, api.CodeInvalidValue, "budget_usd"},
		{"resume with unknown field", request{method: "POST", path: "/v1/rebuilds/" + done.ID + "/resume", body: `{"budget":3}`}, 400, api.CodeUnknownField, "budget"},
		{"cancel with a body", request{method: "POST", path: "/v1/rebuilds/" + done.ID + "/cancel", body: `{"now":true}`}, 400, api.CodeUnknownField, "now"},
		// Routing.
		{"unknown route", request{method: "GET", path: "/v1/nope"}, 404, api.CodeNotFound, ""},
		{"unknown version", request{method: "POST", path: "/v2/estimates", body: `{}`}, 404, api.CodeNotFound, ""},
		{"delete the list", request{method: "DELETE", path: "/v1/rebuilds"}, 405, api.CodeMethodNotAllowed, ""},
		{"get estimates", request{method: "GET", path: "/v1/estimates"}, 405, api.CodeMethodNotAllowed, ""},
		{"put healthz", request{method: "PUT", path: "/healthz"}, 405, api.CodeMethodNotAllowed, ""},
		{"get cancel", request{method: "GET", path: "/v1/rebuilds/" + done.ID + "/cancel"}, 405, api.CodeMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := listing(t, te.data)
			jobsBefore := len(te.jobs.List())
			rec := te.serve(t, tc.req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, trim(rec.Body.String()))
			}
			e := decode[errorBody](t, rec)
			if e.Error.Code != tc.code || e.Error.Field == nil || *e.Error.Field != tc.field || e.Error.Message == "" {
				t.Errorf("error %+v (field %v), want code %q field %q", e.Error, deref(e.Error.Field), tc.code, tc.field)
			}
			if strings.Contains(e.Error.Message, te.root) {
				t.Errorf("the message reveals the server's corpus root: %s", e.Error.Message)
			}
			if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
				t.Errorf("Content-Type %q", got)
			}
			if tc.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if after := listing(t, te.data); !slices.Equal(before, after) {
				t.Errorf("the data directory changed:\n before %v\n after  %v", before, after)
			}
			if n := len(te.jobs.List()); n != jobsBefore {
				t.Errorf("%d jobs, want %d", n, jobsBefore)
			}
		})
	}
}

func deref(p *string) string {
	if p == nil {
		return "<absent>"
	}
	return *p
}
