package embedder

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrStopped is returned, without a request being sent, by an Embed whose
// context carries a closed [Gate]: the caller is stopping and asked that no
// new request start. Nothing was billed.
var ErrStopped = errors.New("not sent: stopping")

// Gate lets a caller stop new requests while the ones already on the wire
// finish. Attach it to the context given to Embed with [WithGate]; once
// [Gate.Close] is called:
//
//   - a batch waiting on the rate limiter ([RateLimited]) or on a retry
//     backoff, a retry-after pause or a concurrency slot ([Retrying]) stops
//     waiting and returns ErrStopped;
//   - the limiter checks the gate again after its wait, and the provider
//     clients ([OpenAI], [Simulator]) check it right before sending, so no
//     request starts after Close returns;
//   - a request already sent is not cancelled by the gate: the context
//     decides how long it may run.
//
// A Gate counts the requests on the wire ([Gate.InFlight]). It is safe for
// concurrent use; the zero value is not usable, use [NewGate].
type Gate struct {
	mu       sync.Mutex
	closed   chan struct{}
	inFlight atomic.Int64
}

// NewGate returns an open gate.
func NewGate() *Gate { return &Gate{closed: make(chan struct{})} }

// Close stops new requests and returns how many are on the wire at that
// moment: those, and only those, may still be billed. Close is idempotent;
// later calls return the current count.
func (g *Gate) Close() (inFlight int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
	default:
		close(g.closed)
	}
	return int(g.inFlight.Load())
}

// Done is closed when the gate is.
func (g *Gate) Done() <-chan struct{} { return g.closed }

// InFlight is how many requests are on the wire now.
func (g *Gate) InFlight() int { return int(g.inFlight.Load()) }

// enter admits a request onto the wire, or returns ErrStopped. The check and
// the count happen under the lock that Close takes, so a request admitted is
// counted in what Close returns, and none is admitted after.
func (g *Gate) enter() (leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
		return nil, ErrStopped
	default:
	}
	g.inFlight.Add(1)
	return func() { g.inFlight.Add(-1) }, nil
}

type gateKey struct{}

// WithGate returns ctx carrying g. Every layer of this package below the
// call honours it.
func WithGate(ctx context.Context, g *Gate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// gateOf returns the gate of ctx, or nil.
func gateOf(ctx context.Context) *Gate {
	g, _ := ctx.Value(gateKey{}).(*Gate)
	return g
}

// stopped returns ErrStopped when ctx carries a closed gate.
func stopped(ctx context.Context) error {
	if g := gateOf(ctx); g != nil {
		select {
		case <-g.closed:
			return ErrStopped
		default:
		}
	}
	return nil
}

// gateDone is the channel of ctx's gate, or nil (never ready) without one.
func gateDone(ctx context.Context) <-chan struct{} {
	if g := gateOf(ctx); g != nil {
		return g.closed
	}
	return nil
}

// startRequest is called by a provider client right before it sends: it
// returns ErrStopped when ctx's gate is closed, and otherwise a func to
// call when the answer is in (a no-op without a gate).
func startRequest(ctx context.Context) (done func(), err error) {
	g := gateOf(ctx)
	if g == nil {
		return func() {}, nil
	}
	return g.enter()
}
