package checkpoint

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Blob is a [Store] in object storage through gocloud.dev/blob (S3, GCS,
// Azure Blob Storage, or a local directory through fileblob): every file is
// the object Prefix+name of one bucket.
//
// Commit writes the finished file to a local temporary file first (in
// [BlobOptions.TempDir]), then sends it with one writer: NewWriter, one copy,
// Close. A successful Close is the commit, since an object PUT is atomic (a
// large file goes up as a multipart upload, which is not visible before it
// completes either). On any error the writer's context is cancelled before
// Close, which aborts the upload: no partial object is ever visible, and there
// are no temporary objects to clean up. The upload carries the file's MD5,
// which GCS and Azure check (s3blob drops it; the AWS SDK sends its own CRC32
// checksum unless request_checksum_calculation=when_required).
//
// Unlike [Dir], Blob honours ctx: a cancelled context aborts a commit. Pass
// context.WithoutCancel(ctx), with a timeout, to the last flush of a rebuild
// that is shutting down (the planner does).
//
// Rename is a server-side copy followed by a delete of the old object. It is
// not atomic: a crash between the two leaves both objects. The checkpoint uses
// it only to move an unreadable part aside (to a ".corrupt" name that no reader
// takes for a part), where a leftover original is found unreadable again and
// moved aside again on the next open.
//
// Open returns a [File] whose ReadAt issues ranged reads (NewRangeReader); a
// file no larger than [BlobOptions.ReadWholeBelow] bytes is fetched with one
// read on Open instead.
//
// A Blob is safe for concurrent use by multiple goroutines. It does not own
// the bucket: the caller closes it.
type Blob struct {
	bucket *blob.Bucket
	prefix string
	opts   BlobOptions

	// hook, when set, wraps the writer of each upload (tests: fail or cancel
	// part way through the PUT).
	hook func(ctx context.Context, w io.Writer) io.Writer
}

// BlobOptions tune a [Blob]. The zero value is usable.
type BlobOptions struct {
	// TempDir is the local directory where Commit stages a file before its
	// upload; "" means os.TempDir().
	TempDir string
	// ReadWholeBelow is the size in bytes under which Open reads a whole file
	// at once instead of issuing one ranged read per ReadAt. 0 means
	// [DefaultReadWholeBelow]; a negative value always uses ranged reads.
	ReadWholeBelow int64
	// LeaseTTL is how long a writer's lease lasts without renewal (see
	// [Blob.Lock]); 0 means [DefaultLeaseTTL].
	LeaseTTL time.Duration
}

// DefaultReadWholeBelow is the default [BlobOptions.ReadWholeBelow]: 4 MiB.
// Reading a small Parquet part whole costs one request instead of one per
// column chunk.
const DefaultReadWholeBelow = 4 << 20

var _ Store = (*Blob)(nil)

// NewBlob returns a [Store] over the objects of bucket whose keys start with
// prefix. A non-empty prefix is treated as a directory: "runs/2026-11" and
// "runs/2026-11/" both put part "part-000001.parquet" at
// "runs/2026-11/part-000001.parquet". It touches nothing in the bucket.
func NewBlob(bucket *blob.Bucket, prefix string, opts BlobOptions) (*Blob, error) {
	if bucket == nil {
		return nil, errors.New("opening blob checkpoint store: nil bucket")
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if !fs.ValidPath(prefix) {
			return nil, fmt.Errorf("opening blob checkpoint store: invalid prefix %q", prefix)
		}
		prefix += "/"
	}
	if opts.ReadWholeBelow == 0 {
		opts.ReadWholeBelow = DefaultReadWholeBelow
	}
	return &Blob{bucket: bucket, prefix: prefix, opts: opts}, nil
}

// Prefix returns the key prefix of the store's objects ("" or ending in "/").
func (b *Blob) Prefix() string { return b.prefix }

func (b *Blob) key(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." {
		return "", fmt.Errorf("invalid checkpoint file name %q", name)
	}
	return b.prefix + name, nil
}

// notExist maps a driver's not-found error to one wrapping fs.ErrNotExist.
func notExist(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// List returns every object below the prefix, through the bucket's iterator.
// An empty or missing prefix lists nothing and is not an error.
func (b *Blob) List(ctx context.Context) ([]FileInfo, error) {
	var out []FileInfo
	it := b.bucket.List(&blob.ListOptions{Prefix: b.prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing checkpoint objects under %q: %w", b.prefix, err)
		}
		if obj.IsDir {
			continue
		}
		name := strings.TrimPrefix(obj.Key, b.prefix)
		if name == "" || strings.HasSuffix(name, "/") {
			continue // a "directory" marker object some tools create
		}
		out = append(out, FileInfo{Name: name, Size: obj.Size})
	}
}

// Open opens name for random-access reading. It returns an error wrapping
// fs.ErrNotExist when the object does not exist. ReadAt calls use ctx.
func (b *Blob) Open(ctx context.Context, name string) (File, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	attrs, err := b.bucket.Attributes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint object %q: %w", name, notExist(err))
	}
	if attrs.Size <= b.opts.ReadWholeBelow {
		data, err := b.bucket.ReadAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint object %q: %w", name, notExist(err))
		}
		return bytesFile{bytes.NewReader(data)}, nil
	}
	return &blobFile{ctx: ctx, bucket: b.bucket, key: key, name: name, size: attrs.Size}, nil
}

type bytesFile struct{ *bytes.Reader }

func (bytesFile) Close() error { return nil }

// blobFile reads an object with one ranged read per ReadAt; it holds no
// connection between calls, so it is safe for concurrent use.
type blobFile struct {
	ctx    context.Context
	bucket *blob.Bucket
	key    string
	name   string
	size   int64
}

func (f *blobFile) Size() int64  { return f.size }
func (f *blobFile) Close() error { return nil }

func (f *blobFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading checkpoint object %q: negative offset", f.name)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	r, err := f.bucket.NewRangeReader(f.ctx, f.key, off, want, nil)
	if err != nil {
		return 0, fmt.Errorf("reading checkpoint object %q at %d: %w", f.name, off, notExist(err))
	}
	defer r.Close()
	n, err := io.ReadFull(r, p[:want])
	if err != nil {
		return n, fmt.Errorf("reading checkpoint object %q at %d: %w", f.name, off, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// Commit stages what write produces in a local temporary file, then uploads
// it as one object (see [Blob]). If write or the upload fails, the upload is
// aborted and nothing is created; an existing object of that name is left as
// it was. The temporary file is always removed.
func (b *Blob) Commit(ctx context.Context, name string, write func(w io.Writer) error) (err error) {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(b.opts.TempDir, "reembed-"+path.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("committing %q: creating staging file: %w", name, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	sum := md5.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 256<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("committing %q: writing: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("committing %q: staging: %w", name, err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("committing %q: staging: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("committing %q: staging: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("committing %q: %w", name, err)
	}

	// The upload: one writer, aborted by cancelling its context on any error.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	contentType := "application/vnd.apache.parquet"
	if strings.HasSuffix(name, ".json") {
		contentType = "application/json"
	}
	w, err := b.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: contentType,
		ContentMD5:  sum.Sum(nil),
		// One PUT up to 16 MiB (S3's parts are at least 5 MiB); larger
		// files go as a multipart upload, invisible until it completes.
		BufferSize: int(min(max(size, 5<<20), 16<<20)),
	})
	if err != nil {
		return fmt.Errorf("committing %q: opening upload: %w", name, err)
	}
	var dst io.Writer = w
	if b.hook != nil {
		dst = b.hook(wctx, w)
	}
	n, err := io.Copy(dst, tmp)
	if err == nil && n != size {
		err = fmt.Errorf("sent %d of %d bytes", n, size)
	}
	if err != nil {
		cancel() // abort: Close must not create the object
		w.Close()
		return fmt.Errorf("committing %q: uploading: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("committing %q: uploading: %w", name, err)
	}
	return nil
}

// Remove deletes name; a missing object is not an error.
func (b *Blob) Remove(ctx context.Context, name string) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	if err := b.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("removing checkpoint object %q: %w", name, err)
	}
	return nil
}

// Rename copies oldName to newName then deletes oldName. It refuses to
// replace an existing object (error wrapping fs.ErrExist) and fails with an
// error wrapping fs.ErrNotExist when oldName is missing. It is not atomic (see
// [Blob]); the check for newName and the copy are not atomic either, so two
// processes must not rename into the same name at once (a shard's parts have
// one writer).
func (b *Blob) Rename(ctx context.Context, oldName, newName string) error {
	oldKey, err := b.key(oldName)
	if err != nil {
		return err
	}
	newKey, err := b.key(newName)
	if err != nil {
		return err
	}
	exists, err := b.bucket.Exists(ctx, newKey)
	if err != nil {
		return fmt.Errorf("renaming checkpoint object %q to %q: %w", oldName, newName, err)
	}
	if exists {
		return fmt.Errorf("renaming checkpoint object %q to %q: %w", oldName, newName, fs.ErrExist)
	}
	if err := b.bucket.Copy(ctx, newKey, oldKey, nil); err != nil {
		return fmt.Errorf("renaming checkpoint object %q to %q: copying: %w", oldName, newName, notExist(err))
	}
	if err := b.bucket.Delete(ctx, oldKey); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("renaming checkpoint object %q to %q: deleting the original: %w", oldName, newName, err)
	}
	return nil
}
