package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/reembed/reembed/field"
)

// LockName is the base name of the writer lock in each directory a writer
// writes (the root, or its shard directory). It is never a part.
const LockName = ".reembed-lock"

// ErrLocked is returned (wrapped in a [*LockedError]) by [Open] when another
// writer holds the directory: one writer per checkpoint directory.
var ErrLocked = errors.New("checkpoint is being written by another reembed")

// LockHolder says who holds a writer lock, as recorded in the lock file.
type LockHolder struct {
	// PID is the holder's process id.
	PID int `json:"pid"`
	// Host is the holder's host name.
	Host string `json:"host"`
	// StartedAt is when it took the lock, UTC.
	StartedAt time.Time `json:"started_at"`
	// ExpiresAt is when a lease on object storage lapses unless renewed
	// (zero for a local lock, which the operating system frees when the
	// process dies).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// String formats the holder for messages.
func (h LockHolder) String() string {
	if h.PID == 0 && h.Host == "" {
		return "a writer that has not recorded itself yet"
	}
	s := fmt.Sprintf("pid %d on host %s, since %s", h.PID, h.Host, h.StartedAt.UTC().Format(time.RFC3339))
	if !h.ExpiresAt.IsZero() {
		s += fmt.Sprintf(", lease until %s", h.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return s
}

// LockedError names the lock and its holder. It wraps [ErrLocked].
type LockedError struct {
	// Name is the lock's store name.
	Name string
	// Holder is who holds it, as far as the lock file says.
	Holder LockHolder
}

// Error names the holder and what to do.
func (e *LockedError) Error() string { return e.Render(field.Plain) }

// Render is Error with the output setting named by name (package field).
func (e *LockedError) Render(name func(string) string) string {
	return field.Sprintf(name, "%v: %s is held by %s; wait for that rebuild to end (or stop it) and run again, or write to another {out_dir}",
		ErrLocked, e.Name, e.Holder)
}

// Unwrap returns [ErrLocked].
func (e *LockedError) Unwrap() error { return ErrLocked }

// Locker is a [Store] that can hold one writer per directory. [Dir] and
// [Blob] implement it; [Open] takes the lock of the directory it writes when
// the store is a Locker, and [Writer.Close] or [Writer.Release] frees it.
type Locker interface {
	// Lock takes the writer lock of dir ("" for the root, or a [ShardDir])
	// without waiting: it returns a [*LockedError] when another writer holds
	// it. release frees it; it may be called more than once.
	Lock(ctx context.Context, dir string) (release func() error, err error)
}

// thisHolder describes the calling process.
func thisHolder(now time.Time) LockHolder {
	host, _ := os.Hostname()
	return LockHolder{PID: os.Getpid(), Host: host, StartedAt: now.UTC().Truncate(time.Second)}
}

func decodeHolder(b []byte) LockHolder {
	var h LockHolder
	_ = json.Unmarshal(b, &h) // an empty or torn file names no holder
	return h
}

// ErrLockBusy is returned (wrapped) by [TryLockFile] when another open file
// holds the lock.
var ErrLockBusy = errors.New("lock held by another open file")

// TryLockFile takes an exclusive advisory lock on f without waiting: flock on
// Unix, LockFileEx on Windows (on one byte at 4 GiB, so the file stays
// readable). It returns an error wrapping [ErrLockBusy] when another open
// file, in this process or another, holds it. Closing f frees the lock, and
// so does the death of the process. On other platforms it locks nothing.
func TryLockFile(f *os.File) error {
	if err := tryLockFile(f); err != nil {
		if errors.Is(err, errWouldBlock) {
			return fmt.Errorf("%w: %w", ErrLockBusy, err)
		}
		return err
	}
	return nil
}
