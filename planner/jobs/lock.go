package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reembed/reembed/checkpoint"
)

// ErrDataDirInUse is returned by [Open] when another process (or another
// Manager in this one) has the data directory open: two servers would run the
// same jobs twice.
var ErrDataDirInUse = errors.New("data directory is in use by another reembed serve")

// lockDataDir takes the data directory's lock, DIR/lock, held while the
// returned file is open. The lock is the checkpoint package's file lock
// (flock, LockFileEx on Windows; behind build tags there), which the
// operating system drops when the process dies, so a killed server never
// leaves a stale lock.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobs: opening the data directory lock: %w", err)
	}
	if err := checkpoint.TryLockFile(f); err != nil {
		f.Close()
		if errors.Is(err, checkpoint.ErrLockBusy) {
			return nil, fmt.Errorf("jobs: %w: %s", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("jobs: locking the data directory: %w", err)
	}
	return f, nil
}
