package planner

import (
	"context"
	"fmt"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// committer is the one checkpoint writer of a run: it adds rows as they
// come (a part is committed every PartRows rows, in the background while the
// next fills) and commits what is buffered every flush interval.
//
// Shutdown rules: it runs until its input is closed, whatever stopped the
// run, so that every row embedded (and paid for) is committed; it writes
// under a context that the caller's cancel does not end. After a write
// fails it keeps draining its input without writing (the workers must not
// block) and stops the run. It closes the writer (the last part) at the end.
// Time spent in checkpoint calls is counted as the run's checkpoint wait.
type committer struct {
	w          *checkpoint.Writer
	flushEvery time.Duration
	st         *state
	stop       func(error)
}

// run commits the rows of in and returns the first write error.
func (c *committer) run(ctx context.Context, in <-chan []checkpoint.Row) error {
	ctx = context.WithoutCancel(ctx)
	ticker := time.NewTicker(c.flushEvery)
	defer ticker.Stop()
	var writeErr error
	fail := func(what string, err error) {
		writeErr = fmt.Errorf("%s: %w", what, err)
		c.stop(writeErr)
	}
	for {
		select {
		case rs, ok := <-in:
			if !ok {
				if err := c.timed(func() error { return c.w.Close(ctx) }); err != nil && writeErr == nil {
					writeErr = fmt.Errorf("committing the last checkpoint part: %w", err)
				}
				return writeErr
			}
			if writeErr != nil {
				continue
			}
			if err := c.timed(func() error { return c.w.Add(ctx, rs...) }); err != nil {
				fail("writing checkpoint", err)
			}
		case <-ticker.C:
			if writeErr == nil {
				if err := c.timed(func() error { return c.w.Flush(ctx) }); err != nil {
					fail("committing checkpoint part", err)
				}
			}
		}
	}
}

// timed runs f and adds its duration to the checkpoint wait.
func (c *committer) timed(f func() error) error {
	start := time.Now()
	err := f()
	c.st.checkpointWait.Add(int64(time.Since(start)))
	return err
}
