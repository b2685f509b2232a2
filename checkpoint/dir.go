package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// Dir is a [Store] in a local directory. It commits a file the way DESIGN §8
// and STYLE §9 describe: a temporary file in the final directory named
// "<name>.tmp-*", the bytes, f.Sync, f.Close, os.Rename to the final name, then
// an fsync of the directory (tolerating file systems that cannot fsync a
// directory: EINVAL, ENOTSUP). On any error before the rename the temporary
// file is removed. Directories are created on the first commit, and their
// parent is fsynced.
//
// A Dir is safe for concurrent use; it holds no open files between calls.
type Dir struct {
	root string
	ops  fileOps
}

// fileOps are the file-system steps of a commit, one field each, so that a test
// can fail any of them (a struct field, not a package variable: tests run in
// parallel).
type fileOps struct {
	createTemp func(dir, pattern string) (*os.File, error)
	write      func(f *os.File, p []byte) (int, error)
	sync       func(f *os.File) error
	close      func(f *os.File) error
	rename     func(oldPath, newPath string) error
	syncDir    func(dir string) error
	remove     func(name string) error
	mkdirAll   func(dir string, perm fs.FileMode) error
}

func osFileOps() fileOps {
	return fileOps{
		createTemp: os.CreateTemp,
		write:      func(f *os.File, p []byte) (int, error) { return f.Write(p) },
		sync:       (*os.File).Sync,
		close:      (*os.File).Close,
		rename:     os.Rename,
		syncDir:    syncDir,
		remove:     os.Remove,
		mkdirAll:   os.MkdirAll,
	}
}

var _ Store = (*Dir)(nil)

// NewDir returns a [Store] rooted at the local directory root. It touches
// nothing on disk: the directory is created by the first [Dir.Commit].
func NewDir(root string) *Dir {
	return &Dir{root: filepath.Clean(root), ops: osFileOps()}
}

// Root returns the directory the Dir was created with.
func (d *Dir) Root() string { return d.root }

func (d *Dir) path(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." {
		return "", fmt.Errorf("invalid checkpoint file name %q", name)
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

// List returns every regular file below the root. It returns an error wrapping
// fs.ErrNotExist when the root does not exist.
func (d *Dir) List(ctx context.Context) ([]FileInfo, error) {
	var out []FileInfo
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while listing
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		out = append(out, FileInfo{Name: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing checkpoint directory %q: %w", d.root, err)
	}
	return out, nil
}

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

// Open opens name for reading.
func (d *Dir) Open(ctx context.Context, name string) (File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening checkpoint file: %w", err)
	}
	return osFile{File: f, size: st.Size()}, nil
}

// Remove deletes name; a missing file is not an error.
func (d *Dir) Remove(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := d.ops.remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing checkpoint file: %w", err)
	}
	return nil
}

// Rename moves oldName to newName (same file system: both are below the root)
// and fsyncs the directories involved. It refuses to replace an existing file.
func (d *Dir) Rename(ctx context.Context, oldName, newName string) error {
	op, err := d.path(oldName)
	if err != nil {
		return err
	}
	np, err := d.path(newName)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(np); err == nil {
		return fmt.Errorf("renaming checkpoint file %q to %q: %w", oldName, newName, fs.ErrExist)
	}
	if err := d.mkdir(filepath.Dir(np)); err != nil {
		return fmt.Errorf("renaming checkpoint file %q: %w", oldName, err)
	}
	if err := d.ops.rename(op, np); err != nil {
		return fmt.Errorf("renaming checkpoint file %q to %q: %w", oldName, newName, err)
	}
	for _, dir := range uniq(filepath.Dir(op), filepath.Dir(np)) {
		if err := d.ops.syncDir(dir); err != nil {
			return fmt.Errorf("renaming checkpoint file %q to %q: %w: %w", oldName, newName, ErrNotDurable, err)
		}
	}
	return nil
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// mkdir creates dir (and missing parents) and fsyncs the parent of every
// directory it created, so the new directory entry survives a power loss.
func (d *Dir) mkdir(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	// Find the highest missing ancestor: its parent gets the new entry.
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := d.ops.mkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating directory %q: %w", dir, err)
	}
	for _, p := range missing {
		if err := d.ops.syncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("creating directory %q: %w", dir, err)
		}
	}
	return nil
}

// Commit writes name atomically: temporary file in the same directory, write,
// f.Sync, f.Close, os.Rename, fsync of the directory. Before the rename, any
// error removes the temporary file and leaves the old state (no file, or the
// previous file of that name). If only the directory fsync fails, the file is
// committed and the error wraps [ErrNotDurable].
//
// Commit does not stop when ctx is cancelled: a local commit is short, and the
// last flush of a rebuild that is shutting down must still land.
func (d *Dir) Commit(ctx context.Context, name string, write func(w io.Writer) error) (err error) {
	final, err := d.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if err := d.mkdir(dir); err != nil {
		return fmt.Errorf("committing %q: %w", name, err)
	}
	f, err := d.ops.createTemp(dir, tempName(filepath.Base(final)))
	if err != nil {
		return fmt.Errorf("committing %q: creating temporary file: %w", name, err)
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if err == nil || renamed {
			return
		}
		if !closed {
			_ = d.ops.close(f)
		}
		_ = d.ops.remove(tmp) // a leftover is removed on the next open
	}()

	bw := bufio.NewWriterSize(seamWriter{f: f, write: d.ops.write}, 256<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("committing %q: writing: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("committing %q: writing: %w", name, err)
	}
	if err := d.ops.sync(f); err != nil {
		return fmt.Errorf("committing %q: syncing: %w", name, err)
	}
	closed = true // a failed Close must not be retried
	if err := d.ops.close(f); err != nil {
		return fmt.Errorf("committing %q: closing: %w", name, err)
	}
	if err := d.ops.rename(tmp, final); err != nil {
		return fmt.Errorf("committing %q: renaming: %w", name, err)
	}
	renamed = true
	if err := d.ops.syncDir(dir); err != nil {
		// The rename happened: the file is committed. Do not remove anything.
		return fmt.Errorf("committing %q: syncing directory: %w: %w", name, ErrNotDurable, err)
	}
	return nil
}

type seamWriter struct {
	f     *os.File
	write func(f *os.File, p []byte) (int, error)
}

func (w seamWriter) Write(p []byte) (int, error) {
	n, err := w.write(w.f, p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// syncDir fsyncs a directory so that entries created or renamed in it survive
// a power loss. File systems that cannot fsync a directory return EINVAL or
// ENOTSUP; that is not an error.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %q for fsync: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("syncing directory %q: %w", dir, err)
	}
	return nil
}

// partPath joins a shard directory and a file name the way [Store] names files.
func partPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return path.Join(dir, base)
}
