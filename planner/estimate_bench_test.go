package planner_test

import (
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// BenchmarkEstimate estimates the bundled sample corpus (512-token chunks,
// one model) with 1 and 2 workers: MB/s of source bytes, documents/s, and the
// peak live heap while it runs (sampled every 5 ms), which must not grow with
// the corpus (scripts/bench-estimate.sh checks peak RSS on a directory).
func BenchmarkEstimate(b *testing.B) {
	root, err := sample.Extract(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.Default()
	if err != nil {
		b.Fatal(err)
	}
	cat, _ := pricing.Builtin()
	m, _ := cat.Lookup("text-embedding-3-small")
	for _, jobs := range []int{1, 2} {
		b.Run("jobs="+strconv.Itoa(jobs), func(b *testing.B) {
			req := planner.EstimateRequest{Paths: []string{root}, Models: []pricing.Model{m}, ChunkTokens: 512, ChunkOverlap: 64,
				Limits: planner.Limits{RPM: 3000, TPM: 1_000_000, Concurrency: 4, Latency: time.Second}, Jobs: jobs}
			peak := watchHeap(b)
			var docs int64
			b.ReportAllocs()
			for b.Loop() {
				est, err := planner.Run(b.Context(), tok, req)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(est.Corpus.Bytes)
				docs += est.Corpus.Documents
			}
			b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
		})
	}
}

// watchHeap samples the live heap until the benchmark ends and returns a
// function giving the highest value seen.
func watchHeap(b *testing.B) func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return peak.Load
}
