package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// b.leaseTTL() is how long a writer's lease on object storage lasts
// without renewal ([BlobOptions.LeaseTTL]); the writer renews it every third of that. A writer killed
// without releasing its lease blocks the directory for at most this long.
const DefaultLeaseTTL = 30 * time.Second

func (b *Blob) leaseTTL() time.Duration {
	if b.opts.LeaseTTL > 0 {
		return b.opts.LeaseTTL
	}
	return DefaultLeaseTTL
}

var _ Locker = (*Blob)(nil)

// Lock takes a lease on dir on object storage: the object dir/.reembed-lock,
// created only if absent (a conditional write: If-None-Match on S3, GCS and
// Azure), holding the holder and an expiry that a goroutine pushes forward
// every third of the lease's TTL ([BlobOptions.LeaseTTL]) until release, which deletes it. A lease
// held by a dead process of this host, or not renewed until its expiry (its
// writer died: Lock waits at most a TTL to see that), is taken over; a lease
// that is renewed is refused within one renewal interval.
//
// Limitations: taking over an expired lease is a delete then a conditional
// create, so two writers that find the same expired lease at the same moment
// may both delete it before one creates its own; and a writer whose renewals
// fail for longer than the TTL (a network partition) loses its lease without
// knowing. Clocks of the writers' hosts are assumed to agree within a TTL.
func (b *Blob) Lock(ctx context.Context, dir string) (func() error, error) {
	key, err := b.key(partPath(dir, LockName))
	if err != nil {
		return nil, err
	}
	me := thisHolder(time.Now())
	for attempt := 0; ; attempt++ {
		err := b.writeLease(ctx, key, me, true)
		if err == nil {
			break
		}
		if gcerrors.Code(err) != gcerrors.FailedPrecondition {
			return nil, fmt.Errorf("locking checkpoint %q: %w", key, err)
		}
		data, rerr := b.bucket.ReadAll(ctx, key)
		if gcerrors.Code(rerr) == gcerrors.NotFound && attempt < 3 {
			continue // released meanwhile
		}
		holder := decodeHolder(data)
		if rerr != nil || attempt >= 3 || holder.ExpiresAt.IsZero() {
			return nil, &LockedError{Name: key, Holder: holder}
		}
		if err := b.waitDeadLease(ctx, key, holder, me.Host); err != nil {
			return nil, err
		}
		// Expired: its writer died. Take it over.
		if err := b.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("taking over the expired lease %q: %w", key, err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(b.leaseTTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = b.writeLease(context.WithoutCancel(ctx), key, me, false) // a failed renewal is retried next tick
			}
		}
	})
	var once sync.Once
	var rerr error
	return func() error {
		once.Do(func() {
			close(stop)
			wg.Wait()
			if err := b.bucket.Delete(context.WithoutCancel(ctx), key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				rerr = fmt.Errorf("releasing the lease %q: %w", key, err)
			}
		})
		return rerr
	}, nil
}

// writeLease writes the lease object with a new expiry; ifAbsent makes it a
// conditional create.
func (b *Blob) writeLease(ctx context.Context, key string, h LockHolder, ifAbsent bool) error {
	h.ExpiresAt = time.Now().Add(b.leaseTTL()).UTC().Truncate(time.Second)
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	w, err := b.bucket.NewWriter(ctx, key, &blob.WriterOptions{IfNotExist: ifAbsent, ContentType: "application/json"})
	if err != nil {
		return err
	}
	_, werr := w.Write(data)
	return errors.Join(werr, w.Close())
}

// waitDeadLease returns nil once the lease h is known dead: expired, or held
// by a process of this host that no longer runs. A lease still renewed is
// live: it returns a [*LockedError] after at most one renewal interval and a
// margin. A lease that is not renewed is waited out until it expires (at most
// a TTL), so that a rebuild restarted after a kill proceeds on its own.
func (b *Blob) waitDeadLease(ctx context.Context, key string, h LockHolder, host string) error {
	if time.Now().After(h.ExpiresAt) || h.Host == host && h.PID != 0 && !processAlive(h.PID) {
		return nil
	}
	wait := min(time.Until(h.ExpiresAt), b.leaseTTL()/3+2*time.Second)
	for {
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		data, err := b.bucket.ReadAll(ctx, key)
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil
		}
		now := decodeHolder(data)
		if err != nil || now.PID != h.PID || now.Host != h.Host || now.ExpiresAt.After(h.ExpiresAt) {
			return &LockedError{Name: key, Holder: now} // renewed, or taken by another: live
		}
		if time.Now().After(h.ExpiresAt) {
			return nil // not renewed and expired: its writer died
		}
		wait = time.Until(h.ExpiresAt) + 100*time.Millisecond
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
