package checkpoint_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/checkpoint/checkpointtest"
)

// blobBackends are the buckets every Blob test runs against: a local
// directory through fileblob, and S3 through s3blob over an aws-sdk-go-v2
// client talking to an in-process gofakes3 server (no network).
var blobBackends = []struct {
	name string
	open func(t *testing.T) *blob.Bucket
}{
	{"fileblob", openFileBucket},
	{"s3", openS3Bucket},
}

func openFileBucket(t *testing.T) *blob.Bucket {
	t.Helper()
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fakeS3 is one in-process S3 server.
type fakeS3 struct {
	backend *s3mem.Backend
	server  *httptest.Server
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return &fakeS3{backend: backend, server: srv}
}

func (f *fakeS3) bucket(t *testing.T, name string) *blob.Bucket {
	t.Helper()
	if err := f.backend.CreateBucket(name); err != nil && !gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider("test-key-id", "test-secret", ""),
		HTTPClient:                 f.server.Client(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(f.server.URL)
		o.UsePathStyle = true
	})
	b, err := s3blob.OpenBucket(context.Background(), client, name,
		&s3blob.Options{RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openS3Bucket(t *testing.T) *blob.Bucket { return newFakeS3(t).bucket(t, "checkpoints") }

func newBlob(t *testing.T, b *blob.Bucket, prefix string) *checkpoint.Blob {
	t.Helper()
	s, err := checkpoint.NewBlob(b, prefix, checkpoint.BlobOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBlobConformance runs the Store contract every store must pass.
func TestBlobConformance(t *testing.T) {
	for _, be := range blobBackends {
		t.Run(be.name, func(t *testing.T) {
			checkpointtest.TestStore(t, func(t *testing.T) checkpoint.Store { return newBlob(t, be.open(t), "runs/r1") })
		})
	}
}

// TestBlobRangedReads checks that a file above ReadWholeBelow reads
// correctly through ranged reads, including concurrent and short ones.
func TestBlobRangedReads(t *testing.T) {
	for _, be := range blobBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			s, err := checkpoint.NewBlob(be.open(t), "", checkpoint.BlobOptions{TempDir: t.TempDir(), ReadWholeBelow: -1})
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(strings.Repeat("0123456789", 1000))
			if err := s.Commit(ctx, "f", func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
				t.Fatal(err)
			}
			f, err := s.Open(ctx, "f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Size() != int64(len(data)) {
				t.Fatalf("Size = %d, want %d", f.Size(), len(data))
			}
			var wg sync.WaitGroup
			for _, off := range []int64{0, 17, 5000, 9990} {
				wg.Go(func() {
					p := make([]byte, 20)
					n, err := f.ReadAt(p, off)
					want := data[off:min(off+20, int64(len(data)))]
					if !slices.Equal(p[:n], want) {
						t.Errorf("ReadAt(%d) = %q, want %q", off, p[:n], want)
					}
					if (len(want) < 20) != (err == io.EOF) {
						t.Errorf("ReadAt(%d) err = %v with %d of 20 bytes", off, err, n)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestBlobPrefixIsolates checks that a store sees only the objects under its
// prefix, so that two runs can share a bucket.
func TestBlobPrefixIsolates(t *testing.T) {
	for _, be := range blobBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			b := be.open(t)
			a, other := newBlob(t, b, "runs/a/"), newBlob(t, b, "runs/ab")
			put := func(s *checkpoint.Blob, name string) {
				if err := s.Commit(ctx, name, func(w io.Writer) error { _, err := io.WriteString(w, name); return err }); err != nil {
					t.Fatal(err)
				}
			}
			put(a, "part-000001.parquet")
			put(other, "part-000002.parquet")
			files, err := a.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || files[0].Name != "part-000001.parquet" {
				t.Errorf("List under runs/a = %+v, want only part-000001.parquet", files)
			}
			if ok, _ := b.Exists(ctx, "runs/a/part-000001.parquet"); !ok {
				t.Error("object runs/a/part-000001.parquet missing: the prefix is not a directory")
			}
		})
	}
}

// cancelAfter cancels the upload's context once n bytes went through, as if
// the process died part way through the PUT.
type cancelAfter struct {
	w      io.Writer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if len(p) >= c.n {
		k, _ := c.w.Write(p[:c.n])
		c.cancel()
		return k, context.Canceled
	}
	c.n -= len(p)
	return c.w.Write(p)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testRows(from, to, dims int) []checkpoint.Row {
	var rows []checkpoint.Row
	for d := from; d < to; d++ {
		for c := range 3 {
			text := fmt.Sprintf("doc %d chunk %d", d, c)
			sum := sha256.Sum256([]byte(text))
			emb := make([]float32, dims)
			for i := range emb {
				emb[i] = float32(d*31+c*7+i) / 100
			}
			rows = append(rows, checkpoint.Row{DocID: fmt.Sprintf("doc-%04d", d), ChunkIndex: int32(c),
				ChunkSHA256: hex.EncodeToString(sum[:]), Text: text, Model: "m", Embedding: emb, EmbeddedAt: epoch})
		}
	}
	return rows
}

// TestBlobCrashMidCommit kills commits part way, twice per backend: once
// while the part is being written (the ctx is cancelled inside write), once
// in the middle of the upload itself. After each, no partial object exists;
// a resumed writer keeps the committed parts, and the finished checkpoint
// holds every row exactly once.
func TestBlobCrashMidCommit(t *testing.T) {
	const dims, partRows = 16, 6
	manifest := checkpoint.Manifest{Model: "m", Dimensions: dims, Shard: checkpoint.Shard{Index: 1, Count: 4}}
	for _, be := range blobBackends {
		for _, where := range []string{"write", "upload"} {
			t.Run(be.name+"/"+where, func(t *testing.T) {
				bucket := be.open(t)
				s := newBlob(t, bucket, "ckpt")
				rows := testRows(0, 10, dims) // 30 rows: 5 parts

				// First run: commit one part, then die in the second.
				ctx, cancel := context.WithCancel(t.Context())
				w, err := checkpoint.Open(ctx, s, checkpoint.Options{Manifest: manifest, PartRows: partRows})
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Add(ctx, rows[:partRows]...); err != nil {
					t.Fatal(err)
				}
				var crashStore checkpoint.Store = s
				if where == "write" {
					crashStore = &cancelInWrite{Store: s, cancel: cancel}
				} else {
					checkpoint.SetBlobUploadHook(s, func(_ context.Context, dst io.Writer) io.Writer {
						return &cancelAfter{w: dst, n: 100, cancel: cancel}
					})
				}
				w2, err := checkpoint.Open(ctx, crashStore, checkpoint.Options{Manifest: manifest, PartRows: partRows})
				_ = w // the first writer's part is committed; the process "dies" now
				if err == nil {
					err = w2.Add(ctx, rows[partRows:2*partRows]...)
				}
				if err == nil {
					t.Fatal("the killed commit succeeded")
				}
				checkpoint.SetBlobUploadHook(s, nil)

				files, err := s.List(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, f := range files {
					names = append(names, f.Name)
				}
				slices.Sort(names)
				want := []string{"shard-0001-of-0004/manifest.json", "shard-0001-of-0004/part-000001.parquet"}
				if !slices.Equal(names, want) {
					t.Fatalf("objects after the kill: %v, want %v (no partial object)", names, want)
				}

				// Resume: the committed part is kept, the rest is written.
				ctx = t.Context()
				ix, err := checkpoint.Scan(ctx, s, checkpoint.ScanOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var todo []checkpoint.Row
				for _, r := range rows {
					if !ix.Has(r.Key(), r.ChunkSHA256) {
						todo = append(todo, r)
					}
				}
				if len(todo) != len(rows)-partRows {
					t.Fatalf("resume would embed %d rows again, want %d", len(todo), len(rows)-partRows)
				}
				w3, err := checkpoint.Open(ctx, s, checkpoint.Options{Manifest: manifest, PartRows: partRows})
				if err != nil {
					t.Fatal(err)
				}
				if err := w3.Add(ctx, todo...); err != nil {
					t.Fatal(err)
				}
				if err := w3.Close(ctx); err != nil {
					t.Fatal(err)
				}
				ix, err = checkpoint.Scan(ctx, s, checkpoint.ScanOptions{Deep: true})
				if err != nil {
					t.Fatal(err)
				}
				if ix.Len() != len(rows) {
					t.Errorf("checkpoint holds %d keys, want %d", ix.Len(), len(rows))
				}
				for _, r := range rows {
					if !ix.Has(r.Key(), r.ChunkSHA256) {
						t.Errorf("row %s/%d missing after resume", r.DocID, r.ChunkIndex)
					}
				}
			})
		}
	}
}

// cancelInWrite cancels the context while a part's bytes are being written,
// then fails the write, the way a process dies part way through a commit.
type cancelInWrite struct {
	checkpoint.Store
	cancel func()
}

func (c *cancelInWrite) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	if !strings.Contains(name, "part-") {
		return c.Store.Commit(ctx, name, write)
	}
	return c.Store.Commit(ctx, name, func(w io.Writer) error {
		if err := write(&cancelAfter{w: w, n: 200, cancel: c.cancel}); err != nil {
			return err
		}
		return ctx.Err()
	})
}

// TestBlobMissing checks that Rename of a missing object reports
// fs.ErrNotExist through the driver's error, and that names may not escape
// the prefix.
func TestBlobMissing(t *testing.T) {
	for _, be := range blobBackends {
		t.Run(be.name, func(t *testing.T) {
			s := newBlob(t, be.open(t), "")
			if err := s.Rename(t.Context(), "a", "b"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Rename of a missing object: %v, want fs.ErrNotExist", err)
			}
			if _, err := s.Open(t.Context(), "../x"); err == nil {
				t.Error("Open of an invalid name succeeded")
			}
		})
	}
}
