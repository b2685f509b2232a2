package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/reembed/reembed/planner"
)

func main() {
	planner.Version = versionString()
	ctx, stop := signalContext(os.Stderr, func() { os.Exit(exitInterrupted) })
	code := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM
// (a rebuild then stops starting requests and commits what it has). A second
// signal calls abort at once, after a line on w: the checkpoint stays
// resumable (commits are atomic, the spend ledger counts open reservations).
func signalContext(w io.Writer, abort func()) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%w: %s", context.Canceled, s))
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(w, "reembed: %s again: aborting now; the checkpoint resumes on the next run\n", s)
			abort()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}
