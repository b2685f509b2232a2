package checkpoint

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/reembed/reembed/corpus/sample"
)

// Benchmarks. Run (the first run writes the 1M-row data set, ~6.3 GB, and
// caches it in $TMPDIR/reembed-checkpoint-bench-*; delete it when done):
//
//	go test -run '^$' -bench . -benchtime 5x -count 5 ./checkpoint
//
// CHECKPOINT_BENCH_PARTS (default 1000) sets the number of 1000-row parts of
// 1536 dimensions that BenchmarkScanKeys reads.

const benchDims, benchPartRows = 1536, 1000

// benchPart returns one part's worth of rows: 1000 chunks of 50 documents,
// ~1 KB of text each, 1536-dimension embeddings.
func benchPart(part int) []Row {
	rows := make([]Row, benchPartRows)
	for i := range rows {
		doc := fmt.Sprintf("corpus/dir-%03d/document-%06d.md", part%97, part*50+i/20)
		text := fmt.Sprintf("%s chunk %d of part %d. %0900d", doc, i%20, part, i)
		rows[i] = Row{
			DocID: doc, ChunkIndex: int32(i % 20), ChunkSHA256: shaHex(text), Text: text,
			Tokens: 256, Model: testModel, Embedding: vector(text, benchDims),
			EmbeddedAt: testTime,
		}
	}
	return rows
}

// benchRoot returns a checkpoint root of n parts, written once and cached.
func benchRoot(b *testing.B, n int) string {
	b.Helper()
	root := filepath.Join(os.TempDir(), fmt.Sprintf("reembed-checkpoint-bench-v%d-%dx%dx%d", FormatVersion, n, benchPartRows, benchDims))
	if _, err := os.Stat(filepath.Join(root, "complete")); err == nil {
		return root
	}
	b.Logf("writing %d parts of %d rows to %s (once)", n, benchPartRows, root)
	os.RemoveAll(root)
	ctx := context.Background()
	dir := NewDir(root)
	if _, err := Open(ctx, dir, Options{Manifest: testManifest(benchDims)}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 2)
	for p := 1; p <= n; p++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rows := benchPart(p)
			errs <- dir.Commit(ctx, PartName(Shard{}, p), func(w io.Writer) error { return writeRows(w, rows) })
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "complete"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return root
}

// BenchmarkScanKeys measures resume's scan: the key columns of every part
// (1M rows by default) into the index. Target: ≤ 2 s per op for 1M rows.
func BenchmarkScanKeys(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("CHECKPOINT_BENCH_PARTS")); err == nil && v > 0 {
		n = v
	}
	root := benchRoot(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	var ix *Index
	for b.Loop() {
		var err error
		ix, err = Scan(ctx, NewDir(root), ScanOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if ix.Len() != n*benchPartRows || len(ix.Unreadable()) != 0 {
		b.Fatalf("scanned %d keys, %d unreadable parts", ix.Len(), len(ix.Unreadable()))
	}
	b.ReportMetric(float64(ix.Rows())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/scan")
	// CPU seconds (user+system, all threads) per scan: steadier than wall time
	// on a shared machine.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/scan")
}

// BenchmarkWritePart measures Parquet encoding of one 1000-row part of
// 1536-dimension embeddings and 2 KB of real text (the sample corpus) per row
// (MB/s of part file written) to io.Discard, with each codec for the columns
// other than the embedding (always uncompressed), one encoder reused as the
// Writer does; and the chosen codec (snappy) through the full crash-safe
// commit (temporary file, fsync, rename, directory fsync).
func BenchmarkWritePart(b *testing.B) {
	rows := benchPart(1)
	var text []byte
	err := fs.WalkDir(sample.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || len(text) >= 2000*len(rows) {
			return err
		}
		t, err := fs.ReadFile(sample.FS(), p)
		text = append(text, t...)
		return err
	})
	if err != nil || len(text) < 2000*len(rows) {
		b.Fatalf("reading the sample corpus: %v (%d bytes)", err, len(text))
	}
	for i := range rows {
		rows[i].Text = strings.ToValidUTF8(string(text[i*2000:(i+1)*2000]), "?")
		rows[i].ChunkSHA256 = shaHex(rows[i].Text)
	}
	codecs := []struct {
		name  string
		codec compress.Codec
	}{
		{"zstd-fastest", &zstd.Codec{Level: zstd.SpeedFastest}},
		{"snappy", &snappy.Codec{}},
		{"uncompressed", &uncompressed.Codec{}},
	}
	for _, c := range codecs {
		b.Run("encode/"+c.name, func(b *testing.B) {
			var size int64
			b.ReportAllocs()
			cpu0 := cpuTime()
			e := encoder{codec: c.codec}
			for b.Loop() {
				cw := &countingWriter{w: io.Discard}
				if err := e.encode(cw, rows); err != nil {
					b.Fatal(err)
				}
				size = cw.n
			}
			b.SetBytes(size)
			b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(size)*float64(b.N)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
			b.ReportMetric(float64(size)/1e6, "MB/part")
		})
	}
	b.Run("commit/snappy", func(b *testing.B) {
		ctx := context.Background()
		root := b.TempDir()
		w, err := Open(ctx, NewDir(root), Options{Manifest: testManifest(benchDims), PartRows: benchPartRows})
		if err != nil {
			b.Fatal(err)
		}
		var bytes int64
		w.onCommit = func(p PartInfo) { bytes += p.Size }
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if err := w.Add(ctx, rows...); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(bytes / int64(b.N))
		b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(bytes)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
	})
}

// cpuTime returns the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
