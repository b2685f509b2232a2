package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
)

// TestServeBatchMode: a real `reembed serve` runs a rebuild with "mode":
// "batch" against the provider's Files and Batches API, through the
// server's own wiring: the job succeeds, the provider billed every token in
// batches and none sync, GET shows the batches completed, /metrics counts
// them, and the same with the server's in-process simulated provider.
func TestServeBatchMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server subprocess")
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{APIKey: testAPIKey, Batch: embedder.BatchSimConfig{
		CompletionP50: 50 * time.Millisecond, CompletionP90: 150 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(sim)
	defer ps.Close()
	data, root := t.TempDir(), writeServeCorpus(t)
	s := startServer(t, []string{"--addr", "127.0.0.1:0", "--data", data, "--corpus-root", root, "--provider-base-url", ps.URL + "/v1",
		"--api-key-env", "REEMBED_TEST_KEY", "--auth-token-env", "REEMBED_TEST_TOKEN"})
	for _, provider := range []string{"openai", "simulated"} {
		body := `{"paths":["."],"provider":"` + provider + `","mode":"batch","dimensions":8,"chunk_tokens":16,"chunk_overlap":0,` +
			`"batch_size":2,"batch_max_requests":3,"batch_poll_min":"10ms","batch_poll_max":"50ms","out_dir":"ck-` + provider + `"}`
		code, b := s.call(t, "POST", "/v1/rebuilds", body, nil)
		if code != 202 {
			t.Fatalf("%s: POST: %d %s", provider, code, b)
		}
		var j jobs.Job
		json.Unmarshal(b, &j)
		deadline := time.Now().Add(30 * time.Second)
		for j.State.Active() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			_, b = s.call(t, "GET", "/v1/rebuilds/"+j.ID, "", nil)
			json.Unmarshal(b, &j)
		}
		if j.State != jobs.Succeeded || j.Progress.Batch == nil || j.Progress.Batch.Batches["completed"] < 2 {
			t.Fatalf("%s: job %s %s %+v\n%s", provider, j.State, j.LastError, j.Progress.Batch, s.log())
		}
		if provider == "openai" {
			l := fetchLedger(t, ps.URL)
			if l.Batch.PromptTokens != j.BilledTokens || l.Totals.PromptTokens != 0 || l.Batch.BatchesCreated != j.Progress.Batch.Batches["completed"] {
				t.Errorf("ledger: %d batch tokens, %d sync, %d batches; job billed %d, %+v", l.Batch.PromptTokens, l.Totals.PromptTokens,
					l.Batch.BatchesCreated, j.BilledTokens, j.Progress.Batch.Batches)
			}
		}
	}
	_, b := s.call(t, "GET", "/metrics", "", nil)
	if !strings.Contains(string(b), `reembed_batches{state="completed"}`) || strings.Contains(string(b), `reembed_batches{state="completed"} 0`) {
		t.Errorf("/metrics batches:\n%s", grepMetric(string(b), "reembed_batches"))
	}
}

func grepMetric(s, name string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
