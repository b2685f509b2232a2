package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// Settings of the shard proof's children.
const (
	shardCount       = 4
	shardVictim      = 1 // the index that is SIGKILLed and rerun
	shardBatch       = 8
	shardConcurrency = 2
	shardKeyEnv      = "REEMBED_SHARD_TEST_KEY"
	shardKey         = "sk-shard-test-SECRET-0123456789"
)

// TestShardsProof is the proof on one machine of DESIGN §10: four
// `rebuild --shard i/4` processes run at once against one simulated provider
// whose limits they share (each gets --rpm and --tpm of a quarter), one is
// SIGKILLed after its first committed part and rerun. Then the whole output
// root, read as one checkpoint, covers the corpus exactly: coverage 100%, no
// (doc_id, chunk_index) twice across shards, every row in its shard's
// directory, and the provider billed every checkpointed token, with an excess
// no larger than what the killed process could have had embedded but not
// committed. It runs with --out a local directory, and an s3:// URL served
// by an in-process S3 (gofakes3).
func TestShardsProof(t *testing.T) {
	bin := buildReembed(t)
	root, tok, model := sampleSetup(t)
	// The sample's JSONL and CSV records: 233 documents of 551 chunks, which
	// the hash spreads evenly enough for every shard to commit many parts.
	paths := []string{filepath.Join(root, "jsonl"), filepath.Join(root, "csv")}
	spec := planner.RebuildSpec{Paths: paths, Model: model, ChunkTokens: planner.DefaultChunkTokens, ChunkOverlap: planner.DefaultChunkOverlap}
	est, err := planner.Run(t.Context(), tok, planner.EstimateRequest{Paths: spec.Paths, Models: []pricing.Model{model},
		ChunkTokens: spec.ChunkTokens, ChunkOverlap: spec.ChunkOverlap, Limits: planner.Limits{BatchSize: shardBatch}})
	if err != nil {
		t.Fatal(err)
	}
	plan := est.Estimates[0]

	t.Run("dir", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		testShardsProof(t, bin, out, nil, tok, spec, plan)
	})
	t.Run("s3", func(t *testing.T) {
		backend := s3mem.New()
		if err := backend.CreateBucket("reembed"); err != nil {
			t.Fatal(err)
		}
		s3srv := httptest.NewServer(gofakes3.New(backend).Server())
		defer s3srv.Close()
		// The AWS SDK's standard environment, as a pod would have it.
		awsEnv := []string{"AWS_ACCESS_KEY_ID=test-access-key", "AWS_SECRET_ACCESS_KEY=test-SECRET-key",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
		for _, kv := range awsEnv {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		out := "s3://reembed/runs/proof?region=us-east-1&use_path_style=true&disable_https=true" +
			"&request_checksum_calculation=when_required&response_checksum_validation=when_required&endpoint=" + s3srv.URL
		testShardsProof(t, bin, out, awsEnv, tok, spec, plan)
	})
}

func testShardsProof(t *testing.T, bin, out string, extraEnv []string, tok tokenizer.Tokenizer, spec planner.RebuildSpec, plan planner.ModelEstimate) {
	// The shared key: one simulator, limits such that each shard takes a few
	// seconds at a quarter of them (20,000 tokens/s), and the parts commit
	// along the way.
	const tpm, rpm = 4_800_000, 120_000
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{APIKey: shardKey, RPM: rpm, TPM: tpm})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()

	child := func(index int) *exec.Cmd {
		cmd := exec.Command(bin, "rebuild", "--provider", "openai", "--base-url", srv.URL+"/v1", "--api-key-env", shardKeyEnv,
			"--shard", fmt.Sprintf("%d/%d", index, shardCount),
			"--rpm", strconv.Itoa(rpm/shardCount), "--tpm", strconv.Itoa(tpm/shardCount),
			"--batch-size", strconv.Itoa(shardBatch), "--part-rows", strconv.Itoa(shardBatch),
			"--concurrency", strconv.Itoa(shardConcurrency), "--progress-interval", "1h", "--format", "json",
			"--out", out, spec.Paths[0], spec.Paths[1])
		cmd.Env = append(append(os.Environ(), shardKeyEnv+"="+shardKey), extraEnv...)
		return cmd
	}

	began := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, shardCount)
	logs := make([]bytes.Buffer, shardCount)
	killed := false
	for i := range shardCount {
		cmd := child(i)
		if i != shardVictim {
			cmd.Stdout, cmd.Stderr = io.Discard, &logs[i]
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { errs[i] = cmd.Wait() })
			continue
		}
		// The victim: SIGKILL it as soon as it logs its first committed part.
		cmd.Stdout = io.Discard
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				logs[i].WriteString(sc.Text() + "\n")
				if !killed && strings.Contains(sc.Text(), "committed checkpoint part") && strings.Contains(sc.Text(), "part-") &&
					!strings.Contains(sc.Text(), "manifest") {
					killed = cmd.Process.Signal(syscall.SIGKILL) == nil
				}
			}
			errs[i] = cmd.Wait()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == shardVictim {
			var ee *exec.ExitError
			if !killed || !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
				t.Fatalf("shard %d was not killed part way (killed %v, exit %v): the test proves nothing\n%s", i, killed, err, logs[i].String())
			}
			continue
		}
		if err != nil {
			t.Fatalf("shard %d/%d: %v\n%s", i, shardCount, err, logs[i].String())
		}
	}
	ranAt := time.Since(began)
	// Rerun the killed index: it resumes from its committed parts.
	rerun := child(shardVictim)
	var rerunLog bytes.Buffer
	rerun.Stdout, rerun.Stderr = io.Discard, &rerunLog
	if err := rerun.Run(); err != nil {
		t.Fatalf("rerun of shard %d: %v\n%s", shardVictim, err, rerunLog.String())
	}
	if strings.Contains(rerunLog.String()+logs[shardVictim].String(), shardKey) ||
		strings.Contains(rerunLog.String(), "SECRET") {
		t.Error("a secret appears in the rebuild's log")
	}
	rerunAt := time.Since(began)
	srv.Close() // waits for every request, the killed child's too, to be billed
	led := sim.Ledger()

	loc, err := parseStoreLocation("--out", out)
	if err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := loc.open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()

	// Coverage of the whole root, read as one checkpoint.
	rep, err := planner.Verify(t.Context(), tok, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || int64(rep.Present) != plan.Chunks || rep.Duplicates != 0 || rep.UnreadableParts != 0 {
		t.Errorf("coverage: %d of %d chunks present, %d missing, %d stale, %d duplicates, %d unreadable parts",
			rep.Present, plan.Chunks, rep.Missing, rep.Stale, rep.Duplicates, rep.UnreadableParts)
	}

	// Every row, read directly: once across shards, in its own shard.
	files, err := store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[checkpoint.Key]string{}
	docOf := map[string]string{} // chunk sha256 → doc_id
	var rowTokens int64
	shardsWithParts := map[int]bool{}
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".parquet") {
			continue
		}
		var s checkpoint.Shard
		if _, err := fmt.Sscanf(f.Name, "shard-%d-of-%d/", &s.Index, &s.Count); err != nil || s.Count != shardCount {
			t.Errorf("part %s is not in a shard-IIII-of-%04d directory", f.Name, shardCount)
			continue
		}
		shardsWithParts[s.Index] = true
		r, err := store.Open(t.Context(), f.Name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := checkpoint.ReadRows(r, r.Size())
		r.Close()
		if err != nil {
			t.Fatalf("part %s: %v", f.Name, err)
		}
		for _, row := range rows {
			k := row.Key()
			if prev, ok := seen[k]; ok {
				t.Errorf("%s is in %s and in %s", k, prev, f.Name)
			}
			seen[k] = f.Name
			rowTokens += int64(row.Tokens)
			docOf[row.ChunkSHA256] = row.DocID
			if got := checkpoint.ShardOf(row.DocID, shardCount); got != s.Index {
				t.Errorf("%s (shard %d) is in %s", k, got, f.Name)
			}
			if led.Inputs[row.ChunkSHA256] == 0 {
				t.Errorf("%s is checkpointed but was never billed", k)
			}
		}
	}
	if len(shardsWithParts) != shardCount {
		t.Errorf("parts in %d shard directories, want %d", len(shardsWithParts), shardCount)
	}
	if int64(len(seen)) != plan.Chunks || rowTokens != plan.Tokens {
		t.Errorf("checkpoint holds %d chunks of %d tokens, the estimate %d of %d", len(seen), rowTokens, plan.Chunks, plan.Tokens)
	}

	// Billing: everything checkpointed was paid once; what was paid twice
	// was embedded by the killed shard but not yet committed at the kill:
	// the writer's buffer (< part rows), the batches queued for it and the
	// requests in flight (planner.RowsQueue).
	if led.Totals.PromptTokens < rowTokens {
		t.Errorf("the provider billed %d tokens, fewer than the %d checkpointed", led.Totals.PromptTokens, rowTokens)
	}
	bound := int64(shardBatch-1+(planner.RowsQueue(shardConcurrency)+shardConcurrency)*shardBatch) * int64(spec.ChunkTokens)
	if excess := led.Totals.PromptTokens - rowTokens; excess > bound {
		t.Errorf("the provider billed %d tokens more than the checkpoint holds, above the %d that can be in flight or buffered at a kill", excess, bound)
	}
	for sha, n := range led.Inputs {
		if doc, ok := docOf[sha]; ok && n > 1 && checkpoint.ShardOf(doc, shardCount) != shardVictim {
			t.Errorf("a chunk of %s (shard %d, never killed) was billed %d times", doc, checkpoint.ShardOf(doc, shardCount), n)
		}
	}
	if led.Totals.OverLimit != 0 {
		t.Errorf("%d requests went over the shared key's limits: the divided limits do not add up", led.Totals.OverLimit)
	}
	t.Logf("%d chunks, %d tokens checkpointed; %d tokens billed in %d requests (excess %d, bound %d); shards ran %.1fs, rerun %.1fs, checks %.1fs",
		len(seen), rowTokens, led.Totals.PromptTokens, led.Totals.Billed, led.Totals.PromptTokens-rowTokens, bound,
		ranAt.Seconds(), (rerunAt - ranAt).Seconds(), (time.Since(began) - rerunAt).Seconds())
}

// TestParseStoreLocation checks which --out values are local directories,
// which are object storage, and that a URL is shown without its query or
// user information.
func TestParseStoreLocation(t *testing.T) {
	tests := []struct {
		in      string
		local   bool
		shown   string
		usage   bool
		comment string
	}{
		{in: "out/ckpt", local: true, shown: "out/ckpt"},
		{in: "/abs/dir", local: true, shown: "/abs/dir"},
		{in: "s3://bucket/runs/r1", shown: "s3://bucket/runs/r1"},
		{in: "s3://AKIA:secret@bucket/p?region=eu-west-1&endpoint=http://x", shown: "s3://bucket/p"},
		{in: "gs://bucket/p", shown: "gs://bucket/p"},
		{in: "azblob://container/p?sas=SECRET", shown: "azblob://container/p"},
		{in: "file:///tmp/x", shown: "file:///tmp/x"},
		{in: "ftp://host/p", usage: true},
		{in: "s3:///no-bucket", usage: true},
		{in: "ftp://user:secret@host/p?k=secret", usage: true},
		{in: "s3://AKIA:secret@/no-bucket?k=secret", usage: true},
		{in: "gs://user:secret@/no-bucket?k=secret", usage: true},
		{in: "s3://user:secret@bucket/p%zz?k=secret", usage: true},   // does not parse
		{in: "s3://user:secret@bucket:port/p?k=secret", usage: true}, // does not parse
		{in: "s3://user:secret%zz@bucket/p#secret", usage: true},     // does not parse
	}
	for _, tc := range tests {
		loc, err := parseStoreLocation("--out", tc.in)
		if tc.usage {
			var u *usageError
			if !errors.As(err, &u) {
				t.Errorf("%s: err = %v, want a usage error", tc.in, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error shows a secret: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if loc.isLocal() != tc.local || loc.String() != tc.shown {
			t.Errorf("%s: local %v, shown %q; want %v, %q", tc.in, loc.isLocal(), loc.String(), tc.local, tc.shown)
		}
	}
}

// TestStoreLocationOpenRedacts checks that a bucket that cannot be opened is
// reported without the URL's query.
func TestStoreLocationOpenRedacts(t *testing.T) {
	loc, err := parseStoreLocation("--out", "s3://bucket/p?region=us-east-1&use_path_style=SECRET-not-a-bool")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = loc.open(context.Background())
	if err == nil {
		t.Fatal("opening with an unknown option succeeded")
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows the URL's query: %v", err)
	}
}

// TestRebuildVerifyBlob runs rebuild then verify in process with --out and
// --checkpoint a file:// URL (fileblob), and estimate --checkpoint on it.
func TestRebuildVerifyBlob(t *testing.T) {
	root, err := sample.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(root, "html")
	out := "file://" + filepath.ToSlash(t.TempDir()) + "?metadata=skip"
	if code, stdout, stderr := runMain(t, "rebuild", "--out", out, "--progress-interval", "1h", "--rpm", "0", "--tpm", "0", corpus); code != 0 {
		t.Fatalf("rebuild exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runMain(t, "verify", "--checkpoint", out, corpus); code != 0 {
		t.Fatalf("verify exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := runMain(t, "estimate", "--checkpoint", out, "--format", "json", corpus)
	if code != 0 || !strings.Contains(stdout, `"chunks": 0`) {
		t.Errorf("estimate --checkpoint of a complete checkpoint: exit %d, want 0 chunks left\n%s\n%s", code, stdout, stderr)
	}
}

// TestEstimateShardsCLI checks estimate --shards N and --shard i/N as a user
// runs them: per-shard JSON figures that add up, one shard alone matching its
// entry, and the two flags refused together.
func TestEstimateShardsCLI(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--format", "json", "--shards", "3", "--rto", "10s")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	type shardFigures struct {
		Shard     int   `json:"shard"`
		Documents int64 `json:"documents"`
		Chunks    int64 `json:"chunks"`
		Tokens    int64 `json:"tokens"`
		Requests  int64 `json:"requests"`
		MeetsRTO  *bool `json:"meets_rto"`
	}
	var est struct {
		Corpus struct {
			Documents int64 `json:"documents"`
		} `json:"corpus"`
		Estimates []struct {
			Tokens          int64    `json:"tokens"`
			Recommendations []string `json:"recommendations"`
			Sharded         *struct {
				Count  int            `json:"count"`
				Shards []shardFigures `json:"shards"`
				Total  shardFigures   `json:"total"`
			} `json:"sharded"`
		} `json:"estimates"`
	}
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	sh := est.Estimates[0].Sharded
	if sh == nil || sh.Count != 3 || len(sh.Shards) != 3 {
		t.Fatalf("sharded = %+v, want 3 shards", sh)
	}
	var docs, tokens int64
	for _, s := range sh.Shards {
		docs += s.Documents
		tokens += s.Tokens
	}
	if docs != est.Corpus.Documents || tokens != est.Estimates[0].Tokens || sh.Total.Tokens != tokens || sh.Total.MeetsRTO == nil {
		t.Errorf("shards add up to %d documents, %d tokens (total %+v); corpus %d, %d", docs, tokens, sh.Total, est.Corpus.Documents, est.Estimates[0].Tokens)
	}
	if !strings.Contains(strings.Join(est.Estimates[0].Recommendations, "\n"), "--shards ") {
		t.Errorf("a missed RTO does not recommend --shards N: %q", est.Estimates[0].Recommendations)
	}

	code, out, errOut = runMain(t, "estimate", "--format", "json", "--shard", "2/3")
	if code != exitOK {
		t.Fatalf("--shard 2/3: exit %d: %s", code, errOut)
	}
	var one struct {
		Shard  struct{ Index, Count int } `json:"shard"`
		Corpus struct {
			Documents int64 `json:"documents"`
		} `json:"corpus"`
		Estimates []struct {
			Tokens int64 `json:"tokens"`
		} `json:"estimates"`
	}
	if err := json.Unmarshal([]byte(out), &one); err != nil {
		t.Fatal(err)
	}
	if one.Shard.Index != 2 || one.Shard.Count != 3 || one.Corpus.Documents != sh.Shards[2].Documents || one.Estimates[0].Tokens != sh.Shards[2].Tokens {
		t.Errorf("--shard 2/3: %+v, want shard 2 of --shards 3: %+v", one, sh.Shards[2])
	}
	if code, _, errOut := runMain(t, "estimate", "--shard", "0/2", "--shards", "2"); code != exitUsage {
		t.Errorf("--shard with --shards: exit %d, want %d (%s)", code, exitUsage, errOut)
	}
	if code, _, _ := runMain(t, "estimate", "--shard", "2/2"); code != exitUsage {
		t.Errorf("--shard 2/2: exit %d, want %d", code, exitUsage)
	}
}

// TestVerifyShard checks verify --shard i/N against a checkpoint rebuilt as
// two shards: each shard alone is complete, and when one shard's parts are
// lost, that shard and the whole root are incomplete while the other shard
// is still complete.
func TestVerifyShard(t *testing.T) {
	root, err := sample.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(root, "html")
	out := t.TempDir()
	for i := range 2 {
		if code, stdout, stderr := runMain(t, "rebuild", "--out", out, "--shard", fmt.Sprintf("%d/2", i), "--part-rows", "8",
			"--progress-interval", "1h", "--rpm", "0", "--tpm", "0", corpus); code != exitOK {
			t.Fatalf("rebuild --shard %d/2: exit %d\n%s\n%s", i, code, stdout, stderr)
		}
	}
	verify := func(args ...string) int {
		code, _, _ := runMain(t, append(append([]string{"verify", "--checkpoint", out}, args...), corpus)...)
		return code
	}
	for _, args := range [][]string{nil, {"--shard", "0/2"}, {"--shard", "1/2"}} {
		if code := verify(args...); code != exitOK {
			t.Errorf("verify %v of a complete checkpoint: exit %d, want 0", args, code)
		}
	}
	parts, err := filepath.Glob(filepath.Join(out, "shard-0001-of-0002", "part-*.parquet"))
	if err != nil || len(parts) == 0 {
		t.Fatalf("no parts in shard 1: %v", err)
	}
	if err := os.Remove(parts[0]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, exitIncomplete}, {[]string{"--shard", "1/2"}, exitIncomplete}, {[]string{"--shard", "0/2"}, exitOK}} {
		if code := verify(tc.args...); code != tc.want {
			t.Errorf("verify %v after losing a part of shard 1: exit %d, want %d", tc.args, code, tc.want)
		}
	}
	if code := verify("--shard", "2/2"); code != exitUsage {
		t.Errorf("verify --shard 2/2: exit %d, want %d", code, exitUsage)
	}
}
