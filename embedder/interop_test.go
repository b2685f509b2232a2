package embedder_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/reembed/reembed/embedder"
)

// TestOpenAINodeSDKInterop: a client no one on this project wrote, the
// official openai npm SDK (embeddings.create), talks to the simulator over
// loopback in float, base64 and its default mode, and gets exactly the
// simulator's vectors and usage. Skipped without node or
// interop/node_modules (run `cd interop && npm ci`), unless
// REEMBED_REQUIRE_INTEROP is set (.ci/run), which makes that a failure.
func TestOpenAINodeSDKInterop(t *testing.T) {
	t.Parallel()
	skip := t.Skip
	if os.Getenv("REEMBED_REQUIRE_INTEROP") != "" {
		skip = t.Fatal
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("skipping the openai npm SDK interop test: node is not on PATH")
	}
	script, err := filepath.Abs(filepath.Join("..", "interop", "openai-sdk.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "openai", "package.json")); err != nil {
		skip("skipping the openai npm SDK interop test: interop/node_modules/openai is missing (cd interop && npm ci)")
	}
	const key = "sk-interop-test-key"
	_, srv := serveSim(t, embedder.SimulatorConfig{APIKey: key})
	texts := []string{"hello world", "naïve café — ünïcödé", "<|endoftext|>", "a longer sentence about disaster recovery and embeddings"}
	in, _ := json.Marshal(map[string]any{"baseURL": srv.URL + "/v1", "model": "text-embedding-3-small", "dimensions": 64, "texts": texts})
	cmd := exec.CommandContext(t.Context(), node, script)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "OPENAI_API_KEY="+key)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var got map[string]struct {
		Vectors [][]float64 `json:"vectors"`
		Usage   struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decoding the script's output: %v\n%s", err, stdout.String())
	}
	want := 0
	for _, s := range texts {
		want += countTokens(t, s)
	}
	for _, mode := range []string{"float", "base64", "default"} {
		r, ok := got[mode]
		if !ok {
			t.Errorf("%s: missing", mode)
			continue
		}
		if r.Usage.PromptTokens != want {
			t.Errorf("%s: usage.prompt_tokens = %d, want %d", mode, r.Usage.PromptTokens, want)
		}
		if len(r.Vectors) != len(texts) {
			t.Fatalf("%s: %d vectors for %d texts", mode, len(r.Vectors), len(texts))
		}
		for i, v := range r.Vectors {
			w := embedder.SimulatedVector("text-embedding-3-small", 64, texts[i])
			g := make([]float32, len(v))
			for j, x := range v {
				g[j] = float32(x)
			}
			if !sameVector(g, w) {
				t.Errorf("%s: vector %d differs from the simulator's own", mode, i)
			}
		}
	}
}
