package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"path"
	"sync"
)

// SpendName is the base name of a shard directory's spend ledger.
const SpendName = "spend.json"

// SpendPath returns the store name of shard s's spend ledger.
func SpendPath(s Shard) string { return partPath(ShardDir(s), SpendName) }

// ErrSpendLimit is returned by [SpendLedger.Reserve] when the reservation
// would take the checkpoint's spend past the limit. Nothing was reserved.
var ErrSpendLimit = errors.New("spend limit reached")

// Spend is what a checkpoint has spent, in pico-dollars (10^-12 USD):
// tokens times a price in micro-dollars per million tokens is exactly that,
// so sums never round.
type Spend struct {
	// Settled is the cost of answered requests, each at the larger of our
	// token count and the provider's reported usage.
	SettledPico  int64 `json:"settled_pico_usd"`
	SettledToken int64 `json:"settled_tokens"`
	// ChargedPico is the same requests each rounded up to the micro-dollar:
	// what the cap counts, so that a budget is never passed by rounding.
	ChargedPico int64 `json:"charged_pico_usd"`
	Requests    int64 `json:"requests"`
	// AbandonedPico is reservations left open by runs that were killed: the
	// requests may have been sent and billed, so they count as spent.
	AbandonedPico int64 `json:"abandoned_pico_usd"`
	// OpenPico is the reservations of requests being sent now. A ledger
	// read after a kill folds them into AbandonedPico.
	OpenPico int64 `json:"open_pico_usd"`
	// Runs counts the runs that opened the ledger.
	Runs int64 `json:"runs"`
}

// TotalPico is everything counted as spent, exactly: settled, abandoned
// and open.
func (s Spend) TotalPico() int64 { return addSat(addSat(s.SettledPico, s.AbandonedPico), s.OpenPico) }

// CapPico is what a cap counts: charged, abandoned and open.
func (s Spend) CapPico() int64 { return addSat(addSat(s.ChargedPico, s.AbandonedPico), s.OpenPico) }

// ceilMicro rounds pico-dollars up to a whole micro-dollar.
func ceilMicro(pico int64) int64 {
	if pico <= 0 {
		return 0
	}
	return addSat(pico, 999_999) / 1_000_000 * 1_000_000
}

func (s Spend) plus(o Spend) Spend {
	return Spend{SettledPico: addSat(s.SettledPico, o.SettledPico), SettledToken: addSat(s.SettledToken, o.SettledToken),
		ChargedPico: addSat(s.ChargedPico, o.ChargedPico),
		Requests:    s.Requests + o.Requests, AbandonedPico: addSat(s.AbandonedPico, addSat(o.AbandonedPico, o.OpenPico)),
		Runs: s.Runs + o.Runs}
}

// PicoCost is tokens at pricePer1M micro-dollars per million tokens, in
// pico-dollars, saturating at math.MaxInt64; negative operands give 0.
func PicoCost(tokens, pricePer1M int64) int64 {
	if tokens <= 0 || pricePer1M <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(pricePer1M))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

func addSat(a, b int64) int64 {
	if s := a + b; (b > 0 && s < a) || (b < 0 && s > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return a + b
}

// spendFile is the JSON of a ledger.
type spendFile struct {
	Version int `json:"version"`
	Spend
	// Held is the reservations made with [SpendLedger.ReserveHeld] and not
	// yet settled, by key; they are part of OpenPico (or, once read by a
	// later run, of AbandonedPico).
	Held map[string]int64 `json:"held_pico_usd,omitempty"`
}

// heldRes is a keyed reservation: made by this run (counted in OpenPico)
// or inherited from an earlier one (counted in AbandonedPico).
type heldRes struct {
	pico      int64
	inherited bool
}

const spendVersion = 1

// SpendLedger is the durable record of what a checkpoint spent, kept with
// its parts through the [Store] (a directory or object storage), so that a
// budget is one cap over every run, kill and resume (DESIGN §8).
//
// Protocol: before a request is sent, [SpendLedger.Reserve] records its
// cost as open and returns only once that record is committed; after the
// answer, [SpendLedger.Settle] replaces the reservation by the cost billed;
// a request not sent is [SpendLedger.Release]d. Reservations that wait to be
// written are committed together (group commit), so concurrent workers pay
// one store write between them.
//
// Worst case at a kill: the reservations open at that moment (at most one
// per request in flight or waiting to be sent, i.e. the concurrency) are
// counted as spent by the next run, whether or not the provider billed them.
// The ledger therefore never counts less than was billed, as long as the
// provider bills no more than was reserved, which Settle checks on every
// answer (a larger bill is committed before Settle returns). Settlements
// at or under their reservation are committed with the next reservation or
// at Close: a kill before then leaves the reservation, larger, in the count.
//
// One ledger per shard directory; Open adds every other shard's ledger to
// the prior spend, as it is at that moment. It is safe for concurrent use.
type SpendLedger struct {
	store  Store
	name   string
	prior  Spend // the other shards, at open
	atOpen Spend // everything, at open

	mu      sync.Mutex
	own     Spend // this shard, this run included; OpenPico is live
	held    map[string]heldRes
	version int // bumped by every change
	durable int // the version last committed
	writing bool
	wake    chan struct{} // closed when a commit ends
}

// OpenSpendLedger reads the spend ledgers of the store, folds reservations
// that a killed run left open into the abandoned spend, and returns shard
// s's ledger for this run. A store without ledgers has spent nothing.
func OpenSpendLedger(ctx context.Context, store Store, s Shard) (*SpendLedger, error) {
	l := &SpendLedger{store: store, name: SpendPath(s), wake: make(chan struct{}), held: map[string]heldRes{}}
	files, err := store.List(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing spend ledgers: %w", err)
	}
	for _, f := range files {
		if dir := path.Dir(f.Name); path.Base(f.Name) != SpendName || dir != "." && !shardDirRE.MatchString(dir) {
			continue
		}
		sf, err := readSpend(ctx, store, f.Name)
		if err != nil {
			return nil, err
		}
		sp := sf.Spend
		if f.Name == l.name {
			l.own = Spend{}.plus(sp)
			for k, v := range sf.Held {
				l.held[k] = heldRes{pico: v, inherited: true}
			}
		} else {
			l.prior = l.prior.plus(sp)
		}
	}
	l.atOpen = l.prior.plus(l.own)
	l.own.Runs++
	l.version = 1
	return l, nil
}

func readSpend(ctx context.Context, store Store, name string) (spendFile, error) {
	f, err := store.Open(ctx, name)
	if err != nil {
		return spendFile{}, fmt.Errorf("opening spend ledger %q: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return spendFile{}, fmt.Errorf("reading spend ledger %q: %w", name, err)
	}
	var sf spendFile
	if err := json.Unmarshal(b, &sf); err != nil || sf.Version != spendVersion {
		// Refuse rather than guess: an unreadable ledger could hide spend.
		return spendFile{}, fmt.Errorf("spend ledger %q is unreadable (version %d, %v): move it aside only if you accept losing the record of what was spent", name, sf.Version, err)
	}
	return sf, nil
}

// Prior returns what was spent before this run: this shard's earlier runs
// and the other shards, with reservations left open counted as spent.
func (l *SpendLedger) Prior() Spend { return l.atOpen }

// Total returns the checkpoint's spend now: every shard, every run, this
// one's open reservations included.
func (l *SpendLedger) Total() Spend {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.prior.plus(l.own)
	t.OpenPico = l.own.OpenPico
	t.AbandonedPico -= l.own.OpenPico // plus folded them; they are open, not abandoned
	return t
}

// Reserve records pico, rounded up to the micro-dollar, as open, to be
// spent by a request about to be sent, and returns the amount reserved once
// that record is committed. With limit > 0 it returns ErrSpendLimit,
// reserving nothing, when what the checkpoint counts as spent (CapPico) plus
// the reservation would pass limit (pico-dollars).
func (l *SpendLedger) Reserve(ctx context.Context, pico, limit int64) (reserved int64, err error) {
	pico = ceilMicro(pico)
	l.mu.Lock()
	total := addSat(l.prior.CapPico(), l.own.CapPico())
	if limit > 0 && addSat(total, pico) > limit {
		l.mu.Unlock()
		return 0, ErrSpendLimit
	}
	l.own.OpenPico += pico
	l.version++
	l.mu.Unlock()
	if err := l.persist(ctx); err != nil {
		// Not recorded, so not sent: give the reservation back.
		l.Release(pico)
		return 0, err
	}
	return pico, nil
}

// ReserveHeld is Reserve for a request that may outlive the run, such as a
// provider batch: the reservation is recorded under key in the same commit,
// so that whatever moment a kill comes, a later run finds it. A key already
// held (by this run, or by an earlier one that was killed before settling
// it) is not reserved again: the amount held is returned, and the
// reservation is settled by [SpendLedger.SettleHeld] once, by whichever run
// settles it.
func (l *SpendLedger) ReserveHeld(ctx context.Context, key string, pico, limit int64) (int64, error) {
	l.mu.Lock()
	if h, ok := l.held[key]; ok {
		l.mu.Unlock()
		return h.pico, nil
	}
	pico = ceilMicro(pico)
	total := addSat(l.prior.CapPico(), l.own.CapPico())
	if limit > 0 && addSat(total, pico) > limit {
		l.mu.Unlock()
		return 0, ErrSpendLimit
	}
	l.own.OpenPico += pico
	l.held[key] = heldRes{pico: pico}
	l.version++
	l.mu.Unlock()
	if err := l.persist(ctx); err != nil {
		l.mu.Lock()
		delete(l.held, key)
		l.mu.Unlock()
		l.Release(pico)
		return 0, err
	}
	return pico, nil
}

// Held reports the reservation held under key, if any.
func (l *SpendLedger) Held(key string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[key]
	return h.pico, ok
}

// SettleHeld replaces the reservation held under key (none: 0) by the
// cost billed for tokens, as Settle does, and forgets the key.
func (l *SpendLedger) SettleHeld(ctx context.Context, key string, billedPico, tokens int64) error {
	l.mu.Lock()
	h, ok := l.held[key]
	delete(l.held, key)
	if ok && h.inherited {
		// Counted as abandoned since this run opened the ledger: take it
		// back as open, to be settled below.
		l.own.AbandonedPico -= h.pico
		l.own.OpenPico += h.pico
	}
	l.mu.Unlock()
	return l.Settle(ctx, h.pico, billedPico, tokens)
}

// Release gives back a reservation whose request was not sent.
func (l *SpendLedger) Release(pico int64) {
	l.mu.Lock()
	l.own.OpenPico -= pico
	l.version++
	l.mu.Unlock()
}

// Settle replaces a reservation (as Reserve returned it) by the cost billed
// for tokens. When the bill, rounded up to the micro-dollar, is larger than
// the reservation the record is committed before Settle returns; otherwise
// with the next commit.
func (l *SpendLedger) Settle(ctx context.Context, reserved, billedPico, tokens int64) error {
	l.mu.Lock()
	l.own.OpenPico -= reserved
	l.own.SettledPico = addSat(l.own.SettledPico, billedPico)
	l.own.SettledToken = addSat(l.own.SettledToken, tokens)
	l.own.ChargedPico = addSat(l.own.ChargedPico, ceilMicro(billedPico))
	l.own.Requests++
	l.version++
	l.mu.Unlock()
	if ceilMicro(billedPico) > reserved {
		return l.persist(ctx)
	}
	return nil
}

// Close commits the ledger as it is; open reservations stay counted.
func (l *SpendLedger) Close(ctx context.Context) error { return l.persist(ctx) }

// persist returns once a version at least as new as the current one is
// committed. One goroutine writes at a time; the others wait for a commit
// that started after their change and share it.
func (l *SpendLedger) persist(ctx context.Context) error {
	l.mu.Lock()
	want := l.version
	for l.durable < want {
		if l.writing {
			wake := l.wake
			l.mu.Unlock()
			select {
			case <-wake:
			case <-ctx.Done():
				return fmt.Errorf("recording spend: %w", ctx.Err())
			}
			l.mu.Lock()
			continue
		}
		l.writing = true
		v, own := l.version, l.own
		var held map[string]int64
		for k, h := range l.held {
			if held == nil {
				held = map[string]int64{}
			}
			held[k] = h.pico
		}
		l.mu.Unlock()
		b, err := json.Marshal(spendFile{Version: spendVersion, Spend: own, Held: held})
		if err == nil {
			err = l.store.Commit(ctx, l.name, func(w io.Writer) error { _, err := w.Write(b); return err })
		}
		if errors.Is(err, ErrNotDurable) {
			err = nil // committed; a power loss could lose it, a kill cannot
		}
		l.mu.Lock()
		l.writing = false
		close(l.wake)
		l.wake = make(chan struct{})
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("recording spend in %q: %w", l.name, err)
		}
		l.durable = max(l.durable, v)
	}
	l.mu.Unlock()
	return nil
}
