package api_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
)

// The load benchmarks run the API on a loopback TCP listener and drive it
// with concurrent HTTP clients (scripts/bench-api.sh runs them):
//
//	go test -run '^$' -bench 'BenchmarkAPI' -benchtime 5000x -count 5 ./api
//
// Each reports p50-ms and p99-ms (latency of one request) and req/s.
// "closed" sends as fast as 32 clients can; "rate=1000" is open-loop: a
// request is due every millisecond whatever the server does, and latency is
// counted from when it was due (so queueing is not hidden).

const whatIfBody = `{"model":["text-embedding-3-small","text-embedding-3-large"],"documents":10000000,"tokens_per_document":500,"rto":"4h","rpm":5000,"tpm":5000000}`

// benchServer serves the API on loopback with a simulated provider (with
// latency, so rebuilds run for a while); it returns the base URL.
func benchServer(b *testing.B, docs int) (string, *jobs.Manager) {
	b.Helper()
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range docs {
		var text strings.Builder
		for j := range 40 {
			fmt.Fprintf(&text, "Document %d sentence %d: the rebuild goes on while runbooks watch it. ", i, j)
		}
		os.WriteFile(filepath.Join(root, "docs", fmt.Sprintf("d%05d.txt", i)), []byte(text.String()), 0o644)
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Latency: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := jobs.Open(jobs.Config{DataDir: b.TempDir(), CorpusRoots: []string{root},
		NewEmbedder: func(jobs.Spec) (embedder.Embedder, error) { return sim, nil }, ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Config{Jobs: jobs, CorpusRoots: jobs.Roots()})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		jobs.Shutdown(ctx)
	})
	return hs.URL, jobs
}

func benchClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	return &http.Client{Transport: tr}
}

// send does one request and checks the status.
func send(client *http.Client, method, url, body string, want int) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d", method, url, res.StatusCode)
	}
	return nil
}

// report adds p50-ms, p99-ms and req/s.
func report(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(0, "ns/op") // the figures above are the result
}

// closedLoop sends b.N requests from clients goroutines, back to back.
func closedLoop(b *testing.B, clients int, do func() error) {
	lat := make([]time.Duration, b.N)
	var next sync.Mutex
	i := 0
	var firstErr error
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= b.N {
					return
				}
				t0 := time.Now()
				if err := do(); err != nil {
					next.Lock()
					firstErr = cmp.Or(firstErr, err)
					next.Unlock()
				}
				lat[n] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	report(b, lat, time.Since(start))
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// openLoop sends b.N requests at rate per second from a pool of workers;
// latency counts from each request's due time.
func openLoop(b *testing.B, rate int, do func() error) {
	lat := make([]time.Duration, b.N)
	due := make(chan int, 4096)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	start := time.Now()
	for range 128 {
		wg.Go(func() {
			for n := range due {
				if err := do(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
				lat[n] = time.Since(start.Add(time.Duration(n) * interval))
			}
		})
	}
	// Requests fall due every interval; when the sender is behind (a busy
	// machine), overdue ones go at once, so the rate holds on average.
	timer := time.NewTimer(0)
	<-timer.C
	for n := range b.N {
		if wait := time.Until(start.Add(time.Duration(n) * interval)); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		due <- n
	}
	close(due)
	wg.Wait()
	report(b, lat, time.Since(start))
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// BenchmarkAPIEstimateWhatIf drives POST /v1/estimates (a what-if, two
// models) over loopback.
func BenchmarkAPIEstimateWhatIf(b *testing.B) {
	base, _ := benchServer(b, 1)
	client := benchClient()
	do := func() error { return send(client, "POST", base+"/v1/estimates", whatIfBody, 200) }
	b.Run("closed-32-clients", func(b *testing.B) { closedLoop(b, 32, do) })
	b.Run("rate=1000", func(b *testing.B) { openLoop(b, 1000, do) })
}

// BenchmarkAPIGetRebuildWhileRunning drives GET /v1/rebuilds/{id} while the
// job embeds (a simulated provider with 20 ms latency, progress refreshed
// every 100 ms).
func BenchmarkAPIGetRebuildWhileRunning(b *testing.B) {
	base, mgr := benchServer(b, 1000)
	client := benchClient()
	j, _, err := mgr.Submit(context.Background(), jobs.Spec{Paths: []string{"docs"}, Dimensions: 8, ChunkTokens: 64,
		ChunkOverlap: 0, BatchSize: 4, Concurrency: 2, PartRows: 64}, "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := mgr.WaitUntil(context.Background(), j.ID, func(j jobs.Job) bool { return j.Progress.State == "running" }); err != nil {
		b.Fatal(err)
	}
	url := base + "/v1/rebuilds/" + j.ID
	do := func() error { return send(client, "GET", url, "", 200) }
	b.Run("closed-32-clients", func(b *testing.B) { closedLoop(b, 32, do) })
	b.Run("rate=1000", func(b *testing.B) { openLoop(b, 1000, do) })
	if got, _ := mgr.Get(j.ID); got.State != jobs.Running {
		b.Logf("the rebuild was %s by the end of the benchmark (want it running throughout)", got.State)
	}
}

// BenchmarkAPIEstimateInProcess is the CPU cost of one what-if estimate
// through routing, middleware, decoding, the planner and encoding, without
// the network (ns/op; 2 cores serve about 2e9/(ns/op) requests per second).
func BenchmarkAPIEstimateInProcess(b *testing.B) {
	base, mgr := benchServer(b, 1)
	_ = base
	srv, err := api.New(api.Config{Jobs: mgr, CorpusRoots: mgr.Roots()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/estimates", strings.NewReader(whatIfBody))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}
