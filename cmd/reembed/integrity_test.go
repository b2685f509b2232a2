package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// fastRebuild are rebuild flags for a quick in-process run on the simulator.
var fastRebuild = []string{"--tpm", "100000000", "--rpm", "1000000", "--progress-interval", "1h", "--chunk-tokens", "64", "--chunk-overlap", "0"}

func ckRebuildArgs(out, corpusDir string, extra ...string) []string {
	args := append([]string{"rebuild", "--out", out}, fastRebuild...)
	return append(append(args, extra...), corpusDir)
}

// TestRebuildRefusesAnotherModelEvenForced: --force with another model on a
// checkpoint is refused with exit 2, before any request; the message names
// another --out and never suggests --force; the manifest is unchanged.
func TestRebuildRefusesAnotherModelEvenForced(t *testing.T) {
	t.Parallel()
	corpusDir, out := smallCorpus(t), t.TempDir()
	if code, _, stderr := runMain(t, ckRebuildArgs(out, corpusDir)...); code != 0 {
		t.Fatalf("first rebuild: exit %d\n%s", code, stderr)
	}
	before, _ := os.ReadFile(filepath.Join(out, checkpoint.ManifestName))
	for _, extra := range [][]string{
		{"--force", "--model", "text-embedding-3-large"},
		{"--force", "--dimensions", "256"},
	} {
		code, stdout, stderr := runMain(t, ckRebuildArgs(out, corpusDir, extra...)...)
		if code != 2 || !strings.Contains(stderr, "another --out") || strings.Contains(stderr, "force") {
			t.Errorf("%v: exit %d, stderr %q: want 2, naming another --out, never --force", extra, code, stderr)
		}
		if strings.Contains(stdout, "embedded") {
			t.Errorf("%v: a refused rebuild ran: %s", extra, stdout)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(out, checkpoint.ManifestName)); !bytes.Equal(before, after) {
		t.Errorf("manifest changed by a refused rebuild:\n%s\nwas\n%s", after, before)
	}
}

// TestTwoRebuildsOneCheckpoint: while a rebuild writes --out, a second one
// on the same --out exits 2 naming the holder (pid, host, start); the first
// is unaffected, and once it ends the directory opens again.
func TestTwoRebuildsOneCheckpoint(t *testing.T) {
	t.Parallel()
	corpusDir, out := smallCorpus(t), t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var firstOut, firstErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		args := ckRebuildArgs(out, corpusDir, "--sim-latency", "200ms", "--concurrency", "1", "--batch-size", "1")
		done <- run(ctx, args, &env{stdout: &firstOut, stderr: &firstErr, getenv: func(string) string { return "" }})
	}()
	lock := filepath.Join(out, checkpoint.LockName)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(lock); err == nil && bytes.Contains(b, []byte(`"pid"`)) {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("the first rebuild never took the lock")
		}
	}
	code, _, stderr := runMain(t, ckRebuildArgs(out, corpusDir)...)
	host, _ := os.Hostname()
	if code != 2 || !strings.Contains(stderr, "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(stderr, host) || !strings.Contains(stderr, "since ") {
		t.Errorf("second rebuild: exit %d, stderr %q: want 2 naming pid, host and start", code, stderr)
	}
	cancel()
	if code := <-done; code != exitInterrupted {
		t.Fatalf("first rebuild: exit %d, want %d\n%s", code, exitInterrupted, firstErr.String())
	}
	if code, _, stderr := runMain(t, ckRebuildArgs(out, corpusDir)...); code != 0 {
		t.Errorf("rebuild after the first ended: exit %d\n%s", code, stderr)
	}
}

// TestRebuildLeavesUserFiles: files of the user's in --out whose names
// contain ".tmp" survive a rebuild and a resume.
func TestRebuildLeavesUserFiles(t *testing.T) {
	t.Parallel()
	corpusDir, out := smallCorpus(t), t.TempDir()
	user := []string{"page.tmpl", "notes.tmp.txt"}
	for _, name := range user {
		if err := os.WriteFile(filepath.Join(out, name), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if code, _, stderr := runMain(t, ckRebuildArgs(out, corpusDir)...); code != 0 {
			t.Fatalf("rebuild: exit %d\n%s", code, stderr)
		}
	}
	for _, name := range user {
		if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(b) != "mine" {
			t.Errorf("user file %s after rebuild: %q, %v", name, b, err)
		}
	}
}

// TestVerifySaysHowDeep: plain verify says it checked keys only; --deep
// checks every row, and sees a part damaged outside its key columns that
// plain verify does not; rebuild --deep embeds exactly its rows again.
func TestVerifySaysHowDeep(t *testing.T) {
	t.Parallel()
	corpusDir, out := smallCorpus(t), t.TempDir()
	if code, _, stderr := runMain(t, ckRebuildArgs(out, corpusDir, "--part-rows", "20")...); code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", code, stderr)
	}
	code, stdout, _ := runMain(t, "verify", "--checkpoint", out, corpusDir)
	if code != 0 || !strings.Contains(stdout, "Keys checked") || !strings.Contains(stdout, "--deep checks every row") {
		t.Errorf("plain verify: exit %d, %q: want complete, saying it checked keys", code, stdout)
	}
	// Flip one bit in the middle of the data of part 2: its vector or text pages.
	part := filepath.Join(out, "part-000002.parquet")
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runMain(t, "verify", "--checkpoint", out, "--deep", "--format", "json", corpusDir)
	var rep struct {
		Complete        bool `json:"complete"`
		Deep            bool `json:"deep"`
		Missing         int  `json:"missing"`
		UnreadableParts int  `json:"unreadable_parts"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify --deep json %q: %v", stdout, err)
	}
	if code != exitIncomplete || rep.Complete || !rep.Deep || rep.Missing != 20 || rep.UnreadableParts != 1 {
		t.Fatalf("verify --deep after a flipped bit: exit %d, %+v: want 4, 20 missing, 1 unreadable part", code, rep)
	}
	code, stdout, stderr := runMain(t, ckRebuildArgs(out, corpusDir, "--deep", "--part-rows", "20", "--format", "json")...)
	var sum struct {
		EmbeddedChunks int `json:"embedded_chunks"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); code != 0 || err != nil || sum.EmbeddedChunks != 20 {
		t.Errorf("rebuild --deep: exit %d, %s (%v): want the 20 rows embedded again\n%s", code, stdout, err, stderr)
	}
	if code, stdout, _ := runMain(t, "verify", "--checkpoint", out, "--deep", corpusDir); code != 0 || !strings.Contains(stdout, "0 invalid rows") {
		t.Errorf("verify --deep after the resume: exit %d, %s", code, stdout)
	}
}
