package planner

import (
	"context"
	"time"

	"github.com/reembed/reembed/embedder"
)

// stopper owns the three contexts of a run and the order in which they end.
//
// Shutdown rules:
//   - stopCtx ends when the caller's ctx ends (an interrupt), or when a stage
//     calls stop (budget reached, a failure). From then on the producer makes
//     no batch, the workers send none, and the [embedder.Gate] is closed:
//     batches waiting on the rate limiter or a retry are dropped unsent.
//   - onStop runs once, at once, with the requests then on the wire.
//   - wireCtx, which requests on the wire run under, outlives the
//     interrupt by the grace period; then they are abandoned.
//   - The committer runs under neither: it writes everything it is given
//     (context.WithoutCancel of the caller's ctx).
type stopper struct {
	stopCtx context.Context
	stop    context.CancelCauseFunc
	wireCtx context.Context
	gate    *embedder.Gate
	end     context.CancelFunc
	done    chan struct{} // closed when the watcher has returned
}

// newStopper starts the watcher; call close when the run is over.
func newStopper(ctx context.Context, grace time.Duration, onStop func(cause error, inFlight int)) *stopper {
	s := &stopper{gate: embedder.NewGate()}
	s.stopCtx, s.stop = context.WithCancelCause(ctx)
	wire, cancelWire := context.WithCancel(context.WithoutCancel(ctx))
	s.wireCtx = embedder.WithGate(wire, s.gate)
	s.end = cancelWire
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		select {
		case <-s.stopCtx.Done():
		case <-wire.Done():
			return
		}
		if wire.Err() != nil { // close, not a stop: onStop must not run after the run
			return
		}
		n := s.gate.Close()
		if onStop != nil {
			onStop(context.Cause(s.stopCtx), n)
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWire()
		case <-wire.Done():
		}
	}()
	return s
}

// stopping reports whether the run is stopping.
func (s *stopper) stopping() bool { return s.stopCtx.Err() != nil }

// close ends the wire context and the watcher, and waits for the watcher,
// so that onStop (which logs) never runs after the run has returned.
func (s *stopper) close() {
	s.end()
	s.stop(nil)
	<-s.done
}
