package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
)

// TestAnswersShowNoServerPaths: the paths in corpus.skipped[].path, in an
// unreadable-corpus error and in a job's last_error are the client's, or
// relative to a corpus root, never the server's absolute paths.
func TestAnswersShowNoServerPaths(t *testing.T) {
	te := newEnv(t, envOptions{})
	dir := filepath.Join(te.root, "skips")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := `{"text":"a fine record"}` + "\n" + `[1,2]` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.jsonl"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	rec := te.serve(t, request{method: "POST", path: "/v1/estimates", body: `{"paths":["skips"]}`})
	if rec.Code != 200 {
		t.Fatalf("estimate: %d %s", rec.Code, rec.Body)
	}
	est := decode[planner.Estimate](t, rec)
	if len(est.Corpus.Skipped) != 1 || est.Corpus.Skipped[0].Path != "skips/bad.jsonl:2" {
		t.Errorf("skipped %+v, want one at skips/bad.jsonl:2", est.Corpus.Skipped)
	}

	rec = te.serve(t, request{method: "POST", path: "/v1/estimates", body: `{"paths":["skips"],"strict":true}`})
	if rec.Code != 422 || strings.Contains(rec.Body.String(), te.root) || !strings.Contains(rec.Body.String(), "skips/bad.jsonl:2") {
		t.Errorf("strict estimate: %d %s; want 422 naming skips/bad.jsonl:2 and not the server's root %s", rec.Code, rec.Body, te.root)
	}

	j, _, err := te.jobs.Submit(t.Context(), jobs.Spec{Paths: []string{"skips"}, Strict: true, Dimensions: 8, ChunkTokens: 8}, "")
	if err != nil {
		t.Fatal(err)
	}
	j, err = te.jobs.Wait(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobs.Failed || strings.Contains(j.LastError, te.root) || !strings.Contains(j.LastError, "skips/bad.jsonl:2") {
		t.Errorf("strict job: %s, last_error %q; want failed naming skips/bad.jsonl:2 and not %s", j.State, j.LastError, te.root)
	}
}
