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

// DefaultLeaseTTL is how long a writer's lease on object storage lasts
// without renewal; the writer renews it every third of that. A writer killed
// without releasing its lease blocks the directory for at most this long.
const DefaultLeaseTTL = 2 * time.Minute

var _ Locker = (*Blob)(nil)

// Lock takes a lease on dir on object storage: the object dir/.reembed-lock,
// created only if absent (a conditional write: If-None-Match on S3, GCS and
// Azure), holding the holder and an expiry that a goroutine pushes forward
// every third of [DefaultLeaseTTL] until release, which deletes it. A lease
// past its expiry (its writer died) is taken over.
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
		if rerr != nil || attempt >= 3 || holder.ExpiresAt.IsZero() || time.Now().Before(holder.ExpiresAt) {
			return nil, &LockedError{Name: key, Holder: holder}
		}
		// Expired: its writer died. Take it over.
		if err := b.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("taking over the expired lease %q: %w", key, err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(DefaultLeaseTTL / 3)
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
	h.ExpiresAt = time.Now().Add(DefaultLeaseTTL).UTC().Truncate(time.Second)
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
