package checkpoint

import (
	"context"
	"errors"
	"io"
)

// Store is where a checkpoint lives: a local directory ([Dir]) today, object
// storage (gocloud.dev/blob) tomorrow. Names are slash-separated paths relative
// to the store's root, such as "shard-0001-of-0004/part-000003.parquet".
//
// Commit is the only way to create a file, and it is atomic: after it returns
// nil the file exists under its final name with all its bytes; after a crash or
// an error it either does not exist or (see [ErrNotDurable]) exists completely.
// A blob implementation commits with one PUT (a successful writer Close) and
// has no temporary names; Rename is copy then delete.
//
// Implementations must be safe for concurrent use by multiple goroutines; the
// checkpoint package reads parts in parallel.
type Store interface {
	// List returns every file below the root, in any order, temporary ones included.
	List(ctx context.Context) ([]FileInfo, error)
	// Open opens a file for random-access reading. It returns an error wrapping
	// fs.ErrNotExist when the file does not exist.
	Open(ctx context.Context, name string) (File, error)
	// Commit creates or replaces name with the bytes write produces, atomically.
	// If write returns an error nothing is created. The writer passed to write
	// is valid only during the call.
	Commit(ctx context.Context, name string, write func(w io.Writer) error) error
	// Remove deletes a file. Removing a file that does not exist is not an error.
	Remove(ctx context.Context, name string) error
	// Rename moves a file to a new name, replacing nothing: it fails with an
	// error wrapping fs.ErrExist when newName exists.
	Rename(ctx context.Context, oldName, newName string) error
}

// File is an open file of a [Store]: random access plus its size in bytes.
// Close releases it. It is safe for concurrent ReadAt calls.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// FileInfo describes one file of a [Store].
type FileInfo struct {
	// Name is the slash-separated path relative to the store's root.
	Name string
	// Size is the file's length in bytes.
	Size int64
}

// ErrNotDurable is returned (wrapped) by [Store.Commit] when the file was
// committed, it is visible under its final name with all its bytes, but its
// durability across a power loss could not be confirmed (the directory fsync
// failed). The caller must treat the file as committed: writing it again under
// another name would duplicate its rows.
var ErrNotDurable = errors.New("committed but not confirmed durable")
