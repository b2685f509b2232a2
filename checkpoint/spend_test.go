package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/checkpoint/checkpointtest"
)

// M is a micro-dollar in pico-dollars.
const M = 1_000_000

// countingStore counts the commits of a store.
type countingStore struct {
	checkpoint.Store
	commits atomic.Int64
}

func (c *countingStore) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	c.commits.Add(1)
	return c.Store.Commit(ctx, name, write)
}

// TestSpendLedgerSurvivesKills: a reservation is durable before Reserve
// returns, so a "kill" (dropping the ledger without Close) leaves it counted
// as spent by the next run; settled spend adds up over runs and shards; the
// limit is one cap over all of it. On a directory, in memory, and on object
// storage (fileblob and an in-process S3).
func TestSpendLedgerSurvivesKills(t *testing.T) {
	stores := map[string]func(t *testing.T) checkpoint.Store{
		"Dir": func(t *testing.T) checkpoint.Store { return checkpoint.NewDir(t.TempDir()) },
		"Mem": func(t *testing.T) checkpoint.Store { return checkpointtest.NewMem() },
	}
	for _, bb := range blobBackends {
		stores["Blob/"+bb.name] = func(t *testing.T) checkpoint.Store {
			b, err := checkpoint.NewBlob(bb.open(t), "ckpt/", checkpoint.BlobOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := newStore(t)
			s0 := checkpoint.Shard{}
			l, err := checkpoint.OpenSpendLedger(ctx, store, s0)
			if err != nil {
				t.Fatal(err)
			}
			// Amounts in micro-dollars (10^6 pico); reservations round up.
			r1, err := l.Reserve(ctx, 100*M-5, 1000*M)
			if err != nil || r1 != 100*M {
				t.Fatalf("Reserve: %d, %v; want %d rounded up", r1, err, 100*M)
			}
			if err := l.Settle(ctx, r1, 100*M-5, 5); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Reserve(ctx, 300*M, 1000*M); err != nil {
				t.Fatal(err)
			}
			// Killed here: no Settle, no Close.
			l2, err := checkpoint.OpenSpendLedger(ctx, store, s0)
			if err != nil {
				t.Fatal(err)
			}
			p := l2.Prior()
			// The settle was committed with the second reservation.
			if p.SettledPico != 100*M-5 || p.ChargedPico != 100*M || p.AbandonedPico != 300*M || p.CapPico() != 400*M || p.Runs != 1 {
				t.Errorf("after a kill: %+v, want settled 100 (charged 100 rounded up), abandoned 300, counted 400, 1 run", p)
			}
			if _, err := l2.Reserve(ctx, 600*M+1, 1000*M); !errors.Is(err, checkpoint.ErrSpendLimit) {
				t.Errorf("reserving past the cap over both runs: err = %v, want ErrSpendLimit", err)
			}
			r, err := l2.Reserve(ctx, 600*M, 1000*M)
			if err != nil {
				t.Errorf("reserving up to the cap: %v", err)
			}
			l2.Release(r)
			r, err = l2.Reserve(ctx, 50*M, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := l2.Settle(ctx, r, 70*M, 7); err != nil { // the provider billed more
				t.Fatal(err)
			}
			// Killed again: the larger bill was committed by Settle itself.
			// Another shard sees this shard's spend as prior.
			l3, err := checkpoint.OpenSpendLedger(ctx, store, checkpoint.Shard{Index: 1, Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := l3.Prior(); got.CapPico() != 470*M || got.SettledToken != 12 || got.Requests != 2 {
				t.Errorf("other shard's prior: %+v, want counted 470, 12 tokens, 2 requests", got)
			}
			if _, err := l3.Reserve(ctx, 531*M, 1000*M); !errors.Is(err, checkpoint.ErrSpendLimit) {
				t.Errorf("other shard past the cap: %v", err)
			}
			if err := l3.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSpendLedgerGroupCommit: concurrent reservations share commits, and
// every one is durable when Reserve returns.
func TestSpendLedgerGroupCommit(t *testing.T) {
	ctx := t.Context()
	store := &countingStore{Store: checkpoint.NewDir(t.TempDir())}
	l, err := checkpoint.OpenSpendLedger(ctx, store, checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if _, err := l.Reserve(ctx, 1, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := store.commits.Load(); n < 1 || n > 64 {
		t.Errorf("%d commits for 64 reservations", n)
	}
	l2, err := checkpoint.OpenSpendLedger(ctx, store, checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l2.Prior().CapPico(); got != 64*M {
		t.Errorf("after the reservations: %d, want 64 micro-dollars", got)
	}
}

// TestSpendLedgerRefusesAnUnreadableLedger: a ledger that cannot be read
// could hide spend, so opening fails instead of starting from zero.
func TestSpendLedgerRefusesAnUnreadableLedger(t *testing.T) {
	m := checkpointtest.NewMem()
	m.Put(checkpoint.SpendPath(checkpoint.Shard{}), []byte("{not json"))
	if _, err := checkpoint.OpenSpendLedger(t.Context(), m, checkpoint.Shard{}); err == nil {
		t.Fatal("opened an unreadable ledger")
	}
}

// TestPicoCost is exact and saturates.
func TestPicoCost(t *testing.T) {
	if got := checkpoint.PicoCost(278037, 20_000); got != 278037*20_000 {
		t.Errorf("PicoCost = %d", got)
	}
	if got := checkpoint.PicoCost(1<<62, 20_000); got != 1<<63-1 {
		t.Errorf("PicoCost(2^62) = %d, want saturation", got)
	}
	if got := checkpoint.PicoCost(-5, 20_000); got != 0 {
		t.Errorf("PicoCost(-5) = %d", got)
	}
}
