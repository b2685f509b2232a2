package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// What [Manager] and [RestoreManager] share of keeping jobs on disk: job
// ids, the job files (DIR/<id>/job.json, committed in sequence), their
// loading at open, and the oldest-first order of jobs.

// Id prefixes: a rebuild id is "rb_" and 20 hex digits, a restore id "rs_"
// and 20 hex digits.
const (
	rebuildIDPrefix = "rb_"
	restoreIDPrefix = "rs_"
)

// newID returns a random id: prefix and 20 hex digits; what names the kind
// of job in the error.
func newID(prefix, what string) (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("drawing a %s id: %w", what, err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// validID reports whether id has the shape newID(prefix) makes.
func validID(prefix, id string) bool {
	if len(id) != len(prefix)+20 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for _, c := range id[len(prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// fileSlot orders the writes of one job's file: seq is guarded by the
// manager's mutex, written by wmu.
type fileSlot struct {
	seq uint64 // of the latest encoded job file

	wmu     sync.Mutex // serialises job file writes; never held while taking the manager's mutex
	written uint64     // seq of the job file on disk; guarded by wmu
}

// fileWrite is an encoded job file, to be written unless a newer one is on disk.
type fileWrite struct {
	slot *fileSlot
	id   string
	seq  uint64
	data []byte
}

// jobFiles is a directory of job files, DIR/<id>/job.json.
type jobFiles struct {
	dir   string
	files *checkpoint.Dir
	what  string // the kind of job, in errors: "job", "restore"
}

// newJobFiles returns the job files of dir.
func newJobFiles(dir, what string) *jobFiles {
	return &jobFiles{dir: dir, files: checkpoint.NewDir(dir), what: what}
}

// encode snapshots v, the file of job id, with the next sequence number of
// its slot. Call it under the manager's mutex.
func (f *jobFiles) encode(s *fileSlot, id string, v any) (fileWrite, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fileWrite{}, fmt.Errorf("encoding %s %s: %w", f.what, id, err)
	}
	s.seq++
	return fileWrite{slot: s, id: id, seq: s.seq, data: append(b, '\n')}, nil
}

// write puts an encoded job file on disk unless a newer one is there
// already, through the checkpoint package's crash-safe commit (temporary
// file, fsync, rename, fsync of the directory): a crash leaves the old file
// or the new one, never a torn one. Progress refreshes call it without
// holding the manager's mutex, so that readers of the job never wait for an
// fsync.
func (f *jobFiles) write(w fileWrite) error {
	w.slot.wmu.Lock()
	defer w.slot.wmu.Unlock()
	if w.seq <= w.slot.written {
		return nil
	}
	err := f.files.Commit(context.Background(), path.Join(w.id, jobFileName), func(out io.Writer) error {
		_, err := out.Write(w.data)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing %s %s: %w", f.what, w.id, err)
	}
	w.slot.written = w.seq
	return nil
}

// loadJobFiles decodes every DIR/<id>/job.json whose id is valid into an F
// and hands it to add; header returns the file's version and job id, which
// must be jobFileVersion and the directory's name. Temporary files of
// writes a crash interrupted are removed; a directory without a job file
// (created but never committed) is skipped, as is a missing dir.
func loadJobFiles[F any](dir string, valid func(string) bool, header func(*F) (int, string), add func(*F)) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobs: listing %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() || !valid(e.Name()) {
			continue
		}
		tmps, _ := filepath.Glob(filepath.Join(dir, e.Name(), jobFileName+".tmp-*"))
		for _, tmp := range tmps {
			os.Remove(tmp)
		}
		p := filepath.Join(dir, e.Name(), jobFileName)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("jobs: reading %s: %w", p, err)
		}
		f := new(F)
		if err := json.Unmarshal(b, f); err != nil {
			return fmt.Errorf("jobs: decoding %s: %w", p, err)
		}
		if v, id := header(f); v != jobFileVersion || id != e.Name() {
			return fmt.Errorf("jobs: %s: unsupported version %d or id %q", p, v, id)
		}
		add(f)
	}
	return nil
}

// sameSpec reports whether two specs encode alike (an idempotency key's
// spec against a new submission's).
func sameSpec(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// sortOldestFirst sorts jobs by creation time, then id.
func sortOldestFirst[J any](jobs []J, key func(J) (time.Time, string)) {
	slices.SortFunc(jobs, func(a, b J) int {
		ta, ia := key(a)
		tb, ib := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(ia, ib)
	})
}

// table is a manager's jobs, by id and by idempotency key, under the
// manager's mutex, with the channel that wakes waiters at every change. R
// is the manager's record of a job, V the client's copy of it.
type table[R, V any] struct {
	mu       sync.Mutex
	jobs     map[string]*R
	idem     map[string]string // idempotency key -> job id
	changed  chan struct{}     // closed and replaced at every job change
	view     func(*R) V
	notFound error
}

// setup makes the table empty; view copies a record for clients, notFound
// is the sentinel of an unknown id.
func (t *table[R, V]) setup(view func(*R) V, notFound error) {
	t.jobs, t.idem, t.changed = map[string]*R{}, map[string]string{}, make(chan struct{})
	t.view, t.notFound = view, notFound
}

// notifyLocked wakes the waiters on any job.
func (t *table[R, V]) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// addLocked records a new job and its idempotency key (if any).
func (t *table[R, V]) addLocked(id, key string, r *R) {
	t.jobs[id] = r
	if key != "" {
		t.idem[key] = id
	}
}

// lookupLocked returns the job id names, or notFound.
func (t *table[R, V]) lookupLocked(id string) (*R, error) {
	r, ok := t.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", t.notFound, id)
	}
	return r, nil
}

// byKeyLocked returns the job the idempotency key names (found), or
// ErrIdempotencyKeyReused when specOf it differs from spec.
func (t *table[R, V]) byKeyLocked(key string, spec any, specOf func(*R) any) (v V, found bool, err error) {
	id, ok := t.idem[key]
	if key == "" || !ok {
		return v, false, nil
	}
	old := t.jobs[id]
	if !sameSpec(specOf(old), spec) {
		return v, true, ErrIdempotencyKeyReused
	}
	return t.view(old), true, nil
}

// get returns the client's copy of the job, or notFound.
func (t *table[R, V]) get(id string) (V, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.lookupLocked(id)
	if err != nil {
		var zero V
		return zero, err
	}
	return t.view(r), nil
}

// list returns every job, oldest first (key returns a job's creation time
// and id).
func (t *table[R, V]) list(key func(V) (time.Time, string)) []V {
	t.mu.Lock()
	out := make([]V, 0, len(t.jobs))
	for _, r := range t.jobs {
		out = append(out, t.view(r))
	}
	t.mu.Unlock()
	sortOldestFirst(out, key)
	return out
}

// waitUntil blocks until cond holds for the job (checked at every change)
// or ctx ends, and returns the job. Errors: notFound, ctx's cause.
func (t *table[R, V]) waitUntil(ctx context.Context, id string, cond func(V) bool) (V, error) {
	for {
		t.mu.Lock()
		r, err := t.lookupLocked(id)
		if err != nil {
			t.mu.Unlock()
			var zero V
			return zero, err
		}
		v, ch := t.view(r), t.changed
		t.mu.Unlock()
		if cond(v) {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v, context.Cause(ctx)
		}
	}
}

// waitCtx waits for wg, or until ctx ends (its cause).
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
