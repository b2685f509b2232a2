package checkpoint

import (
	"errors"
	"testing"
)

// TestSpendHeldSurvivesAKill: a reservation held under a key is committed
// with its key; a later run (the first killed without settling) finds it
// held, does not reserve it again, counts it against the cap meanwhile,
// and settles it once: nothing is left abandoned or open.
func TestSpendHeldSurvivesAKill(t *testing.T) {
	store := NewDir(t.TempDir())
	l1, err := OpenSpendLedger(t.Context(), store, Shard{})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := l1.ReserveHeld(t.Context(), "ck/b000001", 5_000_000, 0)
	if err != nil || r1 != 5_000_000 {
		t.Fatalf("reserve: %d, %v", r1, err)
	}
	if again, _ := l1.ReserveHeld(t.Context(), "ck/b000001", 5_000_000, 0); again != r1 || l1.Total().OpenPico != r1 {
		t.Fatalf("a second reservation under the same key: %d, open %d", again, l1.Total().OpenPico)
	}
	// Killed here: no Close, no settle.
	l2, err := OpenSpendLedger(t.Context(), store, Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := l2.Held("ck/b000001"); !ok || h != r1 || l2.Total().AbandonedPico != r1 {
		t.Fatalf("after the kill: held %d %v, spend %+v", h, ok, l2.Total())
	}
	if _, err := l2.ReserveHeld(t.Context(), "ck/b000002", 1_000_000, 5_500_000); !errors.Is(err, ErrSpendLimit) {
		t.Errorf("the held reservation does not count against the cap: %v", err)
	}
	if r, err := l2.ReserveHeld(t.Context(), "ck/b000001", 5_000_000, 5_500_000); err != nil || r != r1 {
		t.Errorf("re-attaching reserved again: %d, %v", r, err)
	}
	if err := l2.SettleHeld(t.Context(), "ck/b000001", 4_000_000, 400); err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	l3, err := OpenSpendLedger(t.Context(), store, Shard{})
	if err != nil {
		t.Fatal(err)
	}
	s := l3.Prior()
	if _, ok := l3.Held("ck/b000001"); ok || s.AbandonedPico != 0 || s.OpenPico != 0 || s.SettledPico != 4_000_000 || s.SettledToken != 400 {
		t.Errorf("after settling: %+v", s)
	}
}
