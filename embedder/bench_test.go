package embedder_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

// BenchmarkSimulatorHTTP measures how many requests per second the
// simulator serves over loopback HTTP (one 20-token input, 256 dimensions,
// float encoding, no limits): it must take thousands per second so that it
// is never the bottleneck of a drill or a load test.
func BenchmarkSimulatorHTTP(b *testing.B) {
	_, srv := serveSim(b, embedder.SimulatorConfig{})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := fmt.Sprintf(`{"model":"text-embedding-3-small","dimensions":256,"input":["request %d: the quick brown fox jumps over the lazy dog"]}`, i)
			resp, err := client.Post(srv.URL+"/v1/embeddings", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "req/s")
}

// BenchmarkSustainedLoad runs the production stack,
// Retrying(RateLimited(OpenAI)), against the simulator over loopback HTTP
// with OpenAI's Tier 1 limits (RPM 3000, TPM 1,000,000) on both sides, for
// REEMBED_BENCH_DURATION (e.g. 30s; skipped when unset). It reports the
// throughput after a 3 s warm-up as a fraction of the binding limit
// (target >= 0.97) and the share of requests answered 429 (target < 1%).
// scripts/bench-embedder.sh runs it several times and prints medians.
//
//   - tpm-bound: batches of 16 inputs of ~60 tokens; tokens per minute bind.
//   - rpm-bound: one input of ~60 tokens per request; requests per minute bind.
func BenchmarkSustainedLoad(b *testing.B) {
	d, err := time.ParseDuration(os.Getenv("REEMBED_BENCH_DURATION"))
	if err != nil || d < 10*time.Second {
		b.Skip("set REEMBED_BENCH_DURATION (at least 10s, e.g. 30s) or run scripts/bench-embedder.sh")
	}
	const rpm, tpm = 3000, 1_000_000
	for _, tc := range []struct {
		name  string
		batch int
	}{{"tpm-bound", 16}, {"rpm-bound", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				sustained(b, d, rpm, tpm, tc.batch)
			}
		})
	}
}

func sustained(b *testing.B, d time.Duration, rpm, tpm, batch int) {
	sim, srv := serveSim(b, embedder.SimulatorConfig{RPM: rpm, TPM: tpm, Latency: 150 * time.Millisecond})
	o := newOpenAI(b, embedder.OpenAIConfig{BaseURL: srv.URL + "/v1", Dimensions: 256})
	l := newRateLimited(b, o, embedder.RateLimitConfig{RPM: rpm, TPM: tpm, MaxRequestTokens: 300_000})
	const workers = 32
	e := newRetrying(b, l, embedder.RetryConfig{MaxConcurrency: workers})

	ctx, cancel := context.WithTimeout(b.Context(), d)
	defer cancel()
	reqs := make(chan *embedder.Request, workers)
	go func() {
		defer close(reqs)
		for i := 0; ; i++ {
			in := make([]embedder.Input, batch)
			for j := range in {
				text := fmt.Sprintf("Document %d, chunk %d. A recovery drill re-embeds the corpus under the provider's rate limits; "+
					"this sentence is about sixty tokens long so that a batch of sixteen weighs about a thousand tokens. %d", i, j, i*batch+j)
				in[j] = embedder.Input{Text: text, Tokens: countTokens(b, text), DocID: fmt.Sprint(i), ChunkIndex: j}
			}
			select {
			case reqs <- &embedder.Request{Inputs: in}:
			case <-ctx.Done():
				return
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for req := range reqs {
				if _, err := e.Embed(ctx, req); err != nil && !errors.Is(err, context.DeadlineExceeded) {
					b.Errorf("Embed: %v", err)
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()

	led := sim.Ledger()
	warm := start.Add(3 * time.Second)
	var tokens, requests int
	for _, r := range led.Requests {
		if r.At.After(warm) && r.Outcome == "ok" {
			tokens += r.BilledTokens
			requests++
		}
	}
	window := end.Sub(warm).Minutes()
	fraction := max(float64(tokens)/(float64(tpm)*window), float64(requests)/(float64(rpm)*window))
	share := float64(led.Totals.RateLimited) / float64(max(1, led.Totals.Requests))
	b.ReportMetric(fraction, "limit_fraction")
	b.ReportMetric(share*100, "429_%")
	b.ReportMetric(float64(tokens)/window, "tokens/min")
	b.ReportMetric(float64(requests)/window, "req/min")
	if os.Getenv("REEMBED_BENCH_TRACE") != "" {
		per := map[int]int{}
		for _, r := range led.Requests {
			per[int(r.At.Sub(start).Seconds())] += r.BilledTokens
		}
		for s := 0; s <= int(d.Seconds()); s++ {
			b.Logf("second %d: %d tokens", s, per[s])
		}
	}
	b.Logf("batch %d: %d requests, %d answered 429, %.0f tokens/min and %.0f req/min after warm-up: %.3f of the binding limit",
		batch, led.Totals.Requests, led.Totals.RateLimited, float64(tokens)/window, float64(requests)/window, fraction)
}
