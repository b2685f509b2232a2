package main

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
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

// TestServeBatchModeSIGKILL: `reembed serve` is SIGKILLed three times while
// a batch job (with a budget) waits for its batches; each restart resumes
// the job, which re-attaches to its journaled batches. At the end: no batch
// created twice (by the checkpoint's metadata tag), no input billed twice,
// the job billed what the provider's ledger billed, and the spend ledger
// holds nothing open or abandoned (each re-attached batch's reservation was
// adopted, not reserved again).
func TestServeBatchModeSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server subprocesses")
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{APIKey: testAPIKey, Batch: embedder.BatchSimConfig{
		CompletionP50: 1500 * time.Millisecond, CompletionP90: 2500 * time.Millisecond, Seed: 8}})
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(sim)
	defer ps.Close()
	data, root := t.TempDir(), writeServeCorpus(t)
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--corpus-root", root, "--provider-base-url", ps.URL + "/v1",
		"--api-key-env", "REEMBED_TEST_KEY", "--auth-token-env", "REEMBED_TEST_TOKEN"}
	s := startServer(t, args)
	body := `{"paths":["."],"provider":"openai","mode":"batch","dimensions":8,"chunk_tokens":16,"chunk_overlap":0,"budget_usd":1,` +
		`"batch_size":2,"batch_max_requests":2,"batch_enqueued_tokens":400,"batch_poll_min":"10ms","batch_poll_max":"50ms"}`
	code, b := s.call(t, "POST", "/v1/rebuilds", body, nil)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, b)
	}
	var j jobs.Job
	json.Unmarshal(b, &j)
	get := func(s *server) jobs.Job {
		var v jobs.Job
		_, b := s.call(t, "GET", "/v1/rebuilds/"+j.ID, "", nil)
		json.Unmarshal(b, &v)
		return v
	}
	for kill := range 3 {
		// Wait until the provider has more batches than before, then kill.
		before := sim.Ledger().Batch.BatchesCreated
		deadline := time.Now().Add(20 * time.Second)
		for sim.Ledger().Batch.BatchesCreated == before && get(s).State.Active() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !get(s).State.Active() {
			t.Logf("the job ended before kill %d", kill+1)
			break
		}
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s = startServer(t, args)
	}
	deadline := time.Now().Add(60 * time.Second)
	for j = get(s); j.State.Active() && time.Now().Before(deadline); j = get(s) {
		time.Sleep(50 * time.Millisecond)
	}
	if j.State != jobs.Succeeded {
		t.Fatalf("job %s: %s\n%s", j.State, j.LastError, s.log())
	}
	l := sim.Ledger()
	tags := map[string]int{}
	for _, bt := range l.Batch.Batches {
		tags[bt.Metadata["reembed_batch"]]++
	}
	for tag, n := range tags {
		if n > 1 {
			t.Errorf("batch %s created %d times", tag, n)
		}
	}
	for h, n := range l.Inputs {
		if n > 1 {
			t.Errorf("input %s billed %d times", h[:12], n)
		}
	}
	sp, err := checkpoint.OpenSpendLedger(t.Context(), checkpoint.NewDir(filepath.Join(data, j.CheckpointDir)), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if s := sp.Prior(); s.OpenPico != 0 || s.AbandonedPico != 0 || s.SettledToken != l.Batch.PromptTokens || l.Totals.PromptTokens != 0 {
		t.Errorf("spend ledger %+v; provider billed %d batch tokens, %d sync", s, l.Batch.PromptTokens, l.Totals.PromptTokens)
	}
	t.Logf("%d runs, %d batches created once each, %d tokens billed once", j.Runs, l.Batch.BatchesCreated, l.Batch.PromptTokens)
}
