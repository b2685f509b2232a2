package embedder_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

// TestOpenAINodeSDKBatchInterop: the official openai npm SDK's files.create,
// batches.create, batches.retrieve and files.content work against the
// simulator's Files and Batches API: the batch completes, keeps its metadata,
// and its output answers every custom_id with the simulator's vectors.
// Skipped like TestOpenAINodeSDKInterop without node or interop/node_modules.
func TestOpenAINodeSDKBatchInterop(t *testing.T) {
	t.Parallel()
	skip := t.Skip
	if os.Getenv("REEMBED_REQUIRE_INTEROP") != "" {
		skip = t.Fatal
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("skipping the openai npm SDK batch interop test: node is not on PATH")
	}
	script, err := filepath.Abs(filepath.Join("..", "interop", "openai-batch.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "openai", "package.json")); err != nil {
		skip("skipping the openai npm SDK batch interop test: interop/node_modules/openai is missing (cd interop && npm ci)")
	}
	const key = "sk-interop-batch-key"
	sim, srv := serveSim(t, embedder.SimulatorConfig{APIKey: key,
		Batch: embedder.BatchSimConfig{CompletionP50: 100 * time.Millisecond, CompletionP90: 200 * time.Millisecond}})
	data, texts := requestFile(4, 2)
	in, _ := json.Marshal(map[string]any{"baseURL": srv.URL + "/v1", "jsonl": string(data),
		"metadata": map[string]string{"reembed_checkpoint": "ck-1"}})
	cmd := exec.CommandContext(t.Context(), node, script)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "OPENAI_API_KEY="+key)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var got struct {
		File    embedder.FileObject  `json:"file"`
		Created embedder.BatchObject `json:"created"`
		Final   embedder.BatchObject `json:"final"`
		Output  string               `json:"output"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decoding the script's output: %v\n%s", err, stdout.String())
	}
	if got.File.Purpose != "batch" || got.File.Bytes != int64(len(data)) {
		t.Errorf("file object %+v", got.File)
	}
	if got.Created.InputFileID != got.File.ID || got.Created.Metadata["reembed_checkpoint"] != "ck-1" {
		t.Errorf("created batch %+v", got.Created)
	}
	if got.Final.Status != embedder.BatchCompleted || got.Final.RequestCounts.Completed != 4 {
		t.Fatalf("final batch %+v", got.Final)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(got.Output))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var l embedder.BatchOutputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		var body struct {
			Data []struct {
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal(l.Response.Body, &body); err != nil {
			t.Fatal(err)
		}
		for i, s := range texts[l.CustomID] {
			if !sameVector(body.Data[i].Embedding, embedder.SimulatedVector("text-embedding-3-small", 8, s)) {
				t.Errorf("%s input %d: wrong vector", l.CustomID, i)
			}
		}
		seen[l.CustomID] = true
	}
	if len(seen) != len(texts) {
		t.Errorf("output answers %d custom_ids, want %d", len(seen), len(texts))
	}
	if l := sim.Ledger(); l.Batch.BatchesCreated != 1 || l.Batch.BilledRequests != 4 {
		t.Errorf("ledger %+v", l.Batch)
	}
}
