package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// countingServer counts the requests it receives and answers 401.
func countingServer(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/v1", hits
}

func TestPreflightFailsBeforeSpending(t *testing.T) {
	dir := smallCorpus(t)
	t.Run("MissingKey", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o")
		code, _, errOut := runEnv(t, nil, "rebuild", dir, "--out", out, "--provider", "openai")
		if code != exitUsage || !strings.Contains(errOut, "OPENAI_API_KEY") {
			t.Errorf("no key: exit %d, stderr %q; want 2 naming OPENAI_API_KEY", code, errOut)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("--out was created before the key was checked")
		}
	})
	t.Run("BlankKeyNothingSent", func(t *testing.T) {
		url, hits := countingServer(t)
		code, _, errOut := runEnv(t, map[string]string{"MY_KEY": "   "}, "rebuild", dir, "--out", filepath.Join(t.TempDir(), "o"),
			"--provider", "openai", "--base-url", url, "--api-key-env", "MY_KEY")
		if code != exitUsage || !strings.Contains(errOut, "white space") || hits.Load() != 0 {
			t.Errorf("blank key: exit %d, %d requests sent, stderr %q; want 2 and none sent", code, hits.Load(), errOut)
		}
	})
	t.Run("OutputNotWritable", func(t *testing.T) {
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		if f, err := os.CreateTemp(ro, "probe"); err == nil { // root ignores permissions
			f.Close()
			os.Remove(f.Name())
			ro = "/proc/self" // read-only for everyone, root included
			if f, err := os.CreateTemp(ro, "probe"); err == nil {
				f.Close()
				t.Skip("no read-only directory to test with")
			}
		}
		url, hits := countingServer(t)
		code, _, errOut := runEnv(t, map[string]string{"K": "sk-test"}, "rebuild", dir, "--out", ro, "--provider", "openai", "--base-url", url, "--api-key-env", "K")
		if code != exitUsage || !strings.Contains(errOut, "not writable") || hits.Load() != 0 {
			t.Errorf("read-only --out: exit %d, %d requests, stderr %q; want 2 and none sent", code, hits.Load(), errOut)
		}
	})
	t.Run("ManifestMismatch", func(t *testing.T) {
		corpusDir, ckpt := tinyCheckpoint(t)
		url, hits := countingServer(t)
		for _, extra := range [][]string{{"--model", "text-embedding-3-large"}, {"--dimensions", "256"}, {"--chunk-tokens", "100"}} {
			args := append([]string{"rebuild", corpusDir, "--out", ckpt, "--provider", "openai", "--base-url", url, "--api-key-env", "K"}, extra...)
			code, _, errOut := runEnv(t, map[string]string{"K": "sk-test"}, args...)
			if code != exitUsage || !strings.Contains(errOut, "manifest") || hits.Load() != 0 {
				t.Errorf("%v on a text-embedding-3-small checkpoint: exit %d, %d requests, stderr %q", extra, code, hits.Load(), errOut)
			}
		}
	})
}

func TestDryRunSpendsNothing(t *testing.T) {
	dir := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "new")
	code, stdout, errOut := runMain(t, "rebuild", dir, "--out", out, "--dry-run")
	if code != exitOK || !strings.Contains(stdout, "Dry run") || !strings.Contains(stdout, "text-embedding-3-small") || !strings.Contains(stdout, "41 documents") {
		t.Errorf("dry run: exit %d, stderr %q\n%s", code, errOut, stdout)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("--dry-run created --out")
	}
	corpusDir, ckpt := tinyCheckpoint(t)
	before, _ := os.ReadDir(ckpt)
	code, stdout, errOut = runMain(t, "rebuild", corpusDir, "--out", ckpt, "--dry-run", "--format", "json")
	var est struct {
		Estimates []struct {
			ReusedChunks int64 `json:"reused_chunks"`
			Chunks       int64 `json:"chunks"`
		} `json:"estimates"`
	}
	if code != exitOK || json.Unmarshal([]byte(stdout), &est) != nil || est.Estimates[0].Chunks != 0 || est.Estimates[0].ReusedChunks == 0 {
		t.Errorf("dry run on a complete checkpoint: exit %d, stderr %q; want 0 chunks left, all reused:\n%s", code, errOut, stdout)
	}
	after, _ := os.ReadDir(ckpt)
	if len(after) != len(before) {
		t.Errorf("--dry-run changed the checkpoint: %d files before, %d after", len(before), len(after))
	}
	if code, _, errOut := runMain(t, "rebuild", corpusDir, "--out", ckpt, "--dry-run", "--model", "text-embedding-3-large"); code != exitUsage {
		t.Errorf("dry run with another model: exit %d, %s; want 2", code, errOut)
	}
}

func TestInspect(t *testing.T) {
	_, ckpt := tinyCheckpoint(t)
	code, out, errOut := runMain(t, "inspect", "--checkpoint", ckpt, "--format", "json")
	var in inspection
	if code != exitOK || json.Unmarshal([]byte(out), &in) != nil {
		t.Fatalf("inspect: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if in.Model != "text-embedding-3-small" || in.Dimensions != 1536 || in.Rows != 82 || in.Parts < 1 || in.Bytes == 0 ||
		in.CostUSD == nil || *in.CostUSD == 0 || in.LastCommitAt == nil || in.CreatedAt.IsZero() || len(in.CorpusRoots) != 1 ||
		in.Spend == nil || in.SpentUSD == nil || *in.SpentUSD == 0 || in.LastPart == "" {
		t.Errorf("inspect = %+v", in)
	}
	code, out, _ = runMain(t, "inspect", "--checkpoint", ckpt)
	for _, want := range []string{"text-embedding-3-small, 1536 dimensions", "82 rows", "last commit", "spend"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("inspect table lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runMain(t, "inspect", "--checkpoint", t.TempDir()); code != exitUsage {
		t.Errorf("inspect of an empty directory: exit %d, want 2", code)
	}
}

// TestVersionStampedInManifest runs the built binary: rebuild writes its
// version into the manifest.
func TestVersionStampedInManifest(t *testing.T) {
	bin := buildReembed(t)
	v, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.Fields(string(v))[1]
	out := filepath.Join(t.TempDir(), "c")
	if b, err := exec.Command(bin, "rebuild", smallCorpus(t), "--out", out, "--rpm", "0", "--tpm", "0", "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ReembedVersion string `json:"reembed_version"`
	}
	json.Unmarshal(b, &m)
	if m.ReembedVersion == "" || m.ReembedVersion != version {
		t.Errorf("manifest reembed_version %q, want %q (reembed --version)", m.ReembedVersion, version)
	}
}
