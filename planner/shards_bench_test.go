package planner

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// Settings of BenchmarkShards; scripts/bench-shards.sh documents them.
// BENCH_SHARDS_TPM and BENCH_SHARDS_DOCS override the key's limit and the
// corpus size.
const (
	benchShardsTPM  = 1_200_000 // tokens per minute of one key: 20,000 tokens/s
	benchShardsRPM  = 10_000    // requests per minute of one key (not binding)
	benchShardsDocs = 400       // documents of about 400 tokens: ~8 s on one key
)

// BenchmarkShards measures rebuild throughput (billed tokens per second of
// wall time) with 1, 2 and 4 shards running at once in this process, each a
// planner.Rebuilder of its --shard i/N with its own rate limiter:
//
//   - own-keys: each shard has its own simulated key (one Simulator per
//     shard, each with the same RPM/TPM, and the shard's limiter set to
//     them): throughput should grow with the shards;
//   - shared-key: one Simulator holds the limits and each shard's limiter
//     gets 1/N of them (rebuild --rpm/--tpm = limit/N): throughput should
//     stay at one key's.
//
// The corpus is synthetic and balanced (documents of equal size, spread by
// the doc_id hash), one chunk each, 16 inputs per request, 4 in flight per
// shard; parts go to a local checkpoint.Dir. A fresh limiter lets one second
// of tokens go at once; that burst is spent before the clock starts, so the
// figures are the steady rate (x-one-key: tokens/s over one key's TPM/60).
func BenchmarkShards(b *testing.B) {
	tpm := benchEnvInt(b, "BENCH_SHARDS_TPM", benchShardsTPM)
	docs := benchEnvInt(b, "BENCH_SHARDS_DOCS", benchShardsDocs)
	tok, err := tokenizer.Default()
	if err != nil {
		b.Fatal(err)
	}
	cat, err := pricing.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	model, err := cat.Lookup("text-embedding-3-small")
	if err != nil {
		b.Fatal(err)
	}
	root := writeBenchCorpus(b, docs)
	for _, mode := range []string{"own-keys", "shared-key"} {
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/shards=%d", mode, n), func(b *testing.B) {
				var tokens int64
				var wall time.Duration
				for b.Loop() {
					sims := make([]*embedder.Simulator, n)
					for i := range sims {
						if mode == "shared-key" && i > 0 {
							sims[i] = sims[0]
							continue
						}
						sims[i], err = embedder.NewSimulator(embedder.SimulatorConfig{RPM: benchShardsRPM, TPM: tpm, Tokenizer: tok})
						if err != nil {
							b.Fatal(err)
						}
						defer sims[i].Close()
					}
					keyTPM, keyRPM := tpm, benchShardsRPM
					if mode == "shared-key" {
						keyTPM, keyRPM = tpm/n, benchShardsRPM/n
					}
					out, err := os.MkdirTemp(b.TempDir(), "out-")
					if err != nil {
						b.Fatal(err)
					}
					var (
						wg     sync.WaitGroup
						mu     sync.Mutex
						billed int64
						errs   []error
					)
					lims := make([]*embedder.RateLimited, n)
					for i := range lims {
						if lims[i], err = embedder.NewRateLimited(sims[i], embedder.RateLimitConfig{RPM: keyRPM, TPM: keyTPM}); err != nil {
							b.Fatal(err)
						}
						drainBurst(b, lims[i], tok, keyTPM)
					}
					start := time.Now()
					for i := range n {
						wg.Go(func() {
							lim := lims[i]
							spec := RebuildSpec{Paths: []string{root}, Model: model, ChunkTokens: 512, ChunkOverlap: 64,
								Limits: Limits{RPM: keyRPM, TPM: keyTPM, Concurrency: 4, BatchSize: 16},
								Shard:  checkpoint.Shard{Index: i, Count: n}}
							if n == 1 {
								spec.Shard = checkpoint.Shard{}
							}
							rb := &Rebuilder{Embedder: lim, Tokenizer: tok, Store: checkpoint.NewDir(out), ProgressInterval: time.Hour}
							sum, err := rb.Run(b.Context(), spec)
							mu.Lock()
							defer mu.Unlock()
							if err != nil {
								errs = append(errs, fmt.Errorf("shard %d/%d: %w", i, n, err))
								return
							}
							billed += sum.BilledTokens
						})
					}
					wg.Wait()
					wall += time.Since(start)
					if len(errs) > 0 {
						b.Fatal(errs)
					}
					for _, s := range sims {
						if over := s.Ledger().Totals.OverLimit; over > 0 {
							b.Fatalf("%d requests over the key's limits", over)
						}
					}
					tokens += billed
				}
				b.ReportMetric(float64(tokens)/wall.Seconds(), "tokens/s")
				b.ReportMetric(float64(tokens)/wall.Seconds()/(float64(tpm)/60), "x-one-key")
			})
		}
	}
}

// drainBurst spends the second of tokens a fresh limiter lets go at once,
// so that the timed rebuild runs at the steady rate of the key.
func drainBurst(b *testing.B, lim *embedder.RateLimited, tok tokenizer.Tokenizer, tpm int) {
	b.Helper()
	text := strings.Repeat(" x", 4000)
	per := tok.Count([]byte(text))
	var req embedder.Request
	for left := tpm / 60; left > 0; left -= per {
		req.Inputs = append(req.Inputs, embedder.Input{Text: text, Tokens: per})
	}
	if _, err := lim.Embed(b.Context(), &req); err != nil {
		b.Fatalf("draining the limiter's burst: %v", err)
	}
}

func benchEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// writeBenchCorpus writes docs text files of about 400 tokens each.
func writeBenchCorpus(b *testing.B, docs int) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "corpus")
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	words := strings.Fields("the rate limit of one key bounds a rebuild so several keys run several shards each " +
		"embedding its own documents into parquet parts under one output root while the planner prices and times it")
	rng := rand.New(rand.NewPCG(1, 2))
	for d := range docs {
		var sb strings.Builder
		fmt.Fprintf(&sb, "Document %d.", d)
		for range 380 {
			sb.WriteString(" " + words[rng.IntN(len(words))])
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("doc-%05d.txt", d)), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}
