package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"
)

// TestOneWriterPerDir: a second writer of the same directory is refused
// with a LockedError naming the holder (pid, host, start); another shard's
// directory is not; once the first closes, the directory opens again.
func TestOneWriterPerDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	first := openWriter(t, NewDir(root), Options{Manifest: testManifest(4), Lock: true})
	_, err := Open(ctx, NewDir(root), Options{Manifest: testManifest(4), Lock: true})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	host, _ := os.Hostname()
	if le.Holder.PID != os.Getpid() || le.Holder.Host != host || le.Holder.StartedAt.IsZero() ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), host) {
		t.Errorf("holder %+v in %q: want this process named", le.Holder, err)
	}
	sharded := testManifest(4)
	sharded.Shard = Shard{Index: 1, Count: 2}
	other := openWriter(t, NewDir(root), Options{Manifest: sharded, Lock: true})
	must(t, other.Close(ctx))
	must(t, first.Add(ctx, makeRow("a", 0, 1, 4)))
	must(t, first.Close(ctx))
	again := openWriter(t, NewDir(root), Options{Manifest: testManifest(4), Lock: true})
	if again.Index().Len() != 1 {
		t.Errorf("reopened index has %d keys, want 1", again.Index().Len())
	}
	must(t, again.Release())
	must(t, again.Release()) // twice is fine
}

// TestBlobLease: on object storage the lease object refuses a second writer
// while unexpired, is taken over once expired, and is deleted on release.
func TestBlobLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bucket, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	must(t, err)
	t.Cleanup(func() { bucket.Close() })
	store, err := NewBlob(bucket, "ck", BlobOptions{LeaseTTL: 3 * time.Second})
	must(t, err)
	w := openWriter(t, store, Options{Manifest: testManifest(4), Lock: true})
	_, err = Open(ctx, store, Options{Manifest: testManifest(4), Lock: true})
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != os.Getpid() || le.Holder.ExpiresAt.Before(time.Now()) {
		t.Fatalf("second writer on object storage: %v (%+v), want the live lease named", err, le)
	}
	must(t, w.Close(ctx))
	if ok, _ := bucket.Exists(ctx, "ck/"+LockName); ok {
		t.Error("lease object left after Close")
	}
	// A dead writer's lease, past its expiry, is taken over.
	stale, _ := json.Marshal(LockHolder{PID: 1, Host: "gone", StartedAt: time.Now().Add(-time.Hour), ExpiresAt: time.Now().Add(-time.Minute)})
	must(t, bucket.WriteAll(ctx, "ck/"+LockName, stale, nil))
	w = openWriter(t, store, Options{Manifest: testManifest(4), Lock: true})
	data, err := bucket.ReadAll(ctx, "ck/"+LockName)
	must(t, err)
	if h := decodeHolder(data); h.PID != os.Getpid() {
		t.Errorf("lease after takeover: %+v, want this process", h)
	}
	must(t, w.Release())
	// A live lease of a process of this host that died (kill -9) is taken
	// over at once: a restarted rebuild does not wait for the expiry.
	if runtime.GOOS == "windows" {
		return // processAlive is conservative there
	}
	host, _ := os.Hostname()
	dead, _ := json.Marshal(LockHolder{PID: deadPID(t), Host: host, StartedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	must(t, bucket.WriteAll(ctx, "ck/"+LockName, dead, nil))
	w = openWriter(t, store, Options{Manifest: testManifest(4), Lock: true})
	must(t, w.Release())
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	must(t, cmd.Run())
	return cmd.Process.Pid
}
