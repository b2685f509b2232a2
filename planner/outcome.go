package planner

import (
	"context"
	"errors"
	"fmt"

	"github.com/reembed/reembed/field"
	"github.com/reembed/reembed/pricing"
)

// Outcome is why a rebuild run ended. It is classified once, at the end of
// [Rebuilder.Run]; the progress state and the summary's error are derived
// from it, each in one switch. The job manager maps it to a job state.
type Outcome int

// The outcomes of a run. Every one but OutcomeComplete leaves a committed,
// resumable checkpoint.
const (
	// OutcomeComplete: every chunk of the corpus is checkpointed.
	OutcomeComplete Outcome = iota
	// OutcomeInterrupted: the caller's ctx ended (a signal, a cancel).
	OutcomeInterrupted
	// OutcomeBudgetExceeded: the next request would have taken the
	// checkpoint's spend past the budget.
	OutcomeBudgetExceeded
	// OutcomeFailed: a request failed for good, the checkpoint could not be
	// written, or the corpus could not be read.
	OutcomeFailed
)

// State is the outcome's name in [Progress.State] and [Summary.Stopped]:
// "complete", "interrupted", "budget" or "error".
func (o Outcome) State() string {
	switch o {
	case OutcomeComplete:
		return "complete"
	case OutcomeInterrupted:
		return "interrupted"
	case OutcomeBudgetExceeded:
		return "budget"
	default:
		return "error"
	}
}

// String is State.
func (o Outcome) String() string { return o.State() }

// runEnd is what the stages reported, for classify.
type runEnd struct {
	ctx       context.Context // the caller's
	writeErr  error           // the committer's
	fatal     error           // the first worker or producer failure
	budgetHit bool
}

// classify decides the outcome: a failure first (the checkpoint or a
// request is in trouble, whatever else happened), then the budget, then an
// interrupt.
func (e runEnd) classify() (Outcome, error) {
	switch {
	case e.writeErr != nil:
		return OutcomeFailed, e.writeErr
	case e.fatal != nil:
		return OutcomeFailed, e.fatal
	case e.budgetHit:
		return OutcomeBudgetExceeded, nil
	case e.ctx.Err() != nil:
		return OutcomeInterrupted, context.Cause(e.ctx)
	}
	return OutcomeComplete, nil
}

// budgetFacts is what the budget message reports.
type budgetFacts struct {
	limit, spent pricing.Micros // over the whole checkpoint
}

// result is the error Run returns for o; cause is classify's error.
func (o Outcome) result(cause error, b budgetFacts) error {
	switch o {
	case OutcomeComplete:
		return nil
	case OutcomeInterrupted:
		return fmt.Errorf("%w: the checkpoint is committed; run again to resume: %w", ErrInterrupted, cause)
	case OutcomeBudgetExceeded:
		return field.Errorf("%w: the next request would take this checkpoint's spend past its $%s cap (spent $%s over every run, requests cut off by a kill included); the checkpoint is committed: raise {budget_usd} above $%s and run again to resume",
			ErrBudgetExceeded, b.limit, b.spent, b.spent)
	default:
		if cause == nil {
			cause = errors.New("failed")
		}
		return cause
	}
}
