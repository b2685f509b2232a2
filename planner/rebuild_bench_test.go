//go:build unix

package planner

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/embedder"
)

// discardStore is a checkpoint.Store that encodes every part and throws the
// bytes away (io.Discard): the baseline of the checkpoint's disk cost.
type discardStore struct{}

func (discardStore) List(context.Context) ([]checkpoint.FileInfo, error) { return nil, nil }
func (discardStore) Open(_ context.Context, name string) (checkpoint.File, error) {
	return nil, fmt.Errorf("opening %q: %w", name, fs.ErrNotExist)
}
func (discardStore) Commit(_ context.Context, _ string, write func(io.Writer) error) error {
	return write(io.Discard)
}
func (discardStore) Remove(context.Context, string) error         { return nil }
func (discardStore) Rename(context.Context, string, string) error { return nil }

// noEncodeStore is a checkpoint.Store that does not even encode: the
// baseline of a rebuild with no checkpoint at all.
type noEncodeStore struct{ discardStore }

func (noEncodeStore) Commit(context.Context, string, func(io.Writer) error) error { return nil }

// slowStore delays every part's commit, as a remote store would.
type slowStore struct {
	checkpoint.Store
	delay time.Duration
}

func (s slowStore) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	if strings.HasSuffix(name, ".parquet") {
		time.Sleep(s.delay)
	}
	return s.Store.Commit(ctx, name, write)
}

// timedStore measures the time spent in Commit (encode, write, fsync,
// rename) and the bytes written.
type timedStore struct {
	checkpoint.Store
	nanos atomic.Int64
	bytes atomic.Int64
}

type benchCountWriter struct {
	w io.Writer
	n int64
}

func (c *benchCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *timedStore) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	start := time.Now()
	err := s.Store.Commit(ctx, name, func(w io.Writer) error {
		cw := &benchCountWriter{w: w}
		err := write(cw)
		s.bytes.Add(cw.n)
		return err
	})
	s.nanos.Add(int64(time.Since(start)))
	return err
}

// benchCPU returns the CPU time (user + system, all threads) the process has used.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRebuildCheckpoint rebuilds the bundled sample corpus (1361
// chunks of 512 tokens, 1536 dimensions), or REEMBED_BENCH_COPIES copies of
// it (distinct doc_ids, the same texts), against a zero-latency in-process
// simulator (or one answering after REEMBED_BENCH_LATENCY, e.g. 100ms), with the rebuild's default commit policy (1000-row parts,
// committed in the background while the next fills), 64 inputs per request
// and 4 requests in flight, into three stores:
//
//   - /none: parts are neither encoded nor written (no checkpoint at all);
//   - /discard: parts are encoded to Parquet and written to io.Discard;
//   - /parquet: checkpoint.NewDir, the real thing (temp file, fsync, rename,
//     directory fsync).
//
// The checkpoint overhead is the wall time of /parquet over /discard (disk)
// or /none (encoding and disk); scripts/bench-rebuild.sh computes both from
// medians. commit-MB/s is the Parquet bytes over the time spent committing
// (in the background); ckpt-wait-% is the share of the wall time the rebuild
// waited for commits (Progress.CheckpointWaitSeconds).
// cpu-s/op (user + system CPU per rebuild) is steadier than wall time on a
// shared machine.
func BenchmarkRebuildCheckpoint(b *testing.B) {
	copies := 1
	if v, err := strconv.Atoi(os.Getenv("REEMBED_BENCH_COPIES")); err == nil && v > 0 {
		copies = v
	}
	latency, _ := time.ParseDuration(os.Getenv("REEMBED_BENCH_LATENCY"))
	root := b.TempDir()
	for i := range copies {
		if _, err := sample.Extract(filepath.Join(root, fmt.Sprintf("copy-%03d", i+1))); err != nil {
			b.Fatal(err)
		}
	}
	tok := rbTokenizer(b)
	spec := RebuildSpec{Paths: []string{root}, Model: rbModel(b, "text-embedding-3-small"),
		ChunkTokens: 512, ChunkOverlap: 64, Limits: Limits{Concurrency: 4, BatchSize: 64}}
	stores := []struct {
		name string
		new  func(dir string) checkpoint.Store
	}{
		{"none", func(string) checkpoint.Store { return noEncodeStore{} }},
		{"discard", func(string) checkpoint.Store { return discardStore{} }},
		{"parquet", func(dir string) checkpoint.Store { return checkpoint.NewDir(dir) }},
	}
	// REEMBED_BENCH_COMMIT_DELAY (e.g. 300ms) adds /slow: the real thing with
	// every part's commit delayed, like an object store's PUT of a 7 MB part.
	if delay, _ := time.ParseDuration(os.Getenv("REEMBED_BENCH_COMMIT_DELAY")); delay > 0 {
		stores = append(stores, struct {
			name string
			new  func(dir string) checkpoint.Store
		}{"slow", func(dir string) checkpoint.Store { return slowStore{checkpoint.NewDir(dir), delay} }})
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: spec.Model.Name, Tokenizer: tok, Latency: latency})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Close()
			parent := b.TempDir()
			var chunks int64
			var commitNanos, commitBytes int64
			b.ReportAllocs()
			var cpu time.Duration
			var waitSec float64
			for b.Loop() {
				dir, err := os.MkdirTemp(parent, "out-")
				if err != nil {
					b.Fatal(err)
				}
				store := &timedStore{Store: st.new(dir)}
				rb := &Rebuilder{Embedder: sim, Tokenizer: tok, Store: store}
				cpu0 := benchCPU()
				sum, err := rb.Run(b.Context(), spec)
				cpu += benchCPU() - cpu0
				if err != nil {
					b.Fatal(err)
				}
				chunks += sum.EmbeddedChunks
				waitSec += sum.CheckpointWaitSeconds
				commitNanos += store.nanos.Load()
				commitBytes += store.bytes.Load()
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(chunks)/sec, "chunks/s")
			b.ReportMetric(float64(commitNanos)/1e6/float64(b.N), "commit-ms/op")
			b.ReportMetric(100*waitSec/b.Elapsed().Seconds(), "ckpt-wait-%")
			b.ReportMetric(100*float64(commitNanos)/float64(b.Elapsed().Nanoseconds()), "commit-%")
			if commitNanos > 0 && commitBytes > 0 {
				b.ReportMetric(float64(commitBytes)/1e6/(float64(commitNanos)/1e9), "commit-MB/s")
				b.ReportMetric(float64(commitBytes)/1e6/float64(b.N), "parquet-MB/op")
			}
		})
	}
}
