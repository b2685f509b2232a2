package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

var _ Locker = (*Dir)(nil)

// Lock takes an exclusive lock on dir/.reembed-lock (flock on Unix,
// LockFileEx on Windows), which the operating system frees if the process
// dies, and records the holder (pid, host, start time) in the file for the
// message of a refused second writer. The file stays after release.
func (d *Dir) Lock(ctx context.Context, dir string) (func() error, error) {
	name := partPath(dir, LockName)
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	if err := d.mkdir(filepath.Dir(p)); err != nil {
		return nil, fmt.Errorf("locking checkpoint: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking checkpoint: %w", err)
	}
	if err := tryLockFile(f); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, &LockedError{Name: filepath.Join(d.root, filepath.FromSlash(name)), Holder: decodeHolder(b)}
		}
		return nil, fmt.Errorf("locking checkpoint %q: %w", p, err)
	}
	b, _ := json.Marshal(thisHolder(time.Now()))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0) // informational: a failure only leaves the holder unnamed
	}
	var once sync.Once
	var rerr error
	return func() error {
		once.Do(func() {
			_ = unlockFile(f)
			rerr = f.Close()
		})
		return rerr
	}, nil
}
