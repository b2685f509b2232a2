package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/reembed/reembed/planner"
)

// TestStateOfOutcome pins the one mapping from the planner's typed outcome
// to the job states the API answers.
func TestStateOfOutcome(t *testing.T) {
	for _, tc := range []struct {
		o     planner.Outcome
		cause error
		want  State
	}{
		{planner.OutcomeComplete, nil, Succeeded},
		{planner.OutcomeBudgetExceeded, nil, BudgetExhausted},
		{planner.OutcomeInterrupted, ErrCancelled, Cancelled},
		{planner.OutcomeInterrupted, ErrServerShutdown, Interrupted},
		{planner.OutcomeFailed, nil, Failed},
	} {
		if got := stateOf(tc.o, tc.cause); got != tc.want {
			t.Errorf("stateOf(%s, %v) = %s, want %s", tc.o, tc.cause, got, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if o := outcomeOf(ctx, nil, errors.New("boom")); o != planner.OutcomeFailed {
		t.Errorf("a run that failed before its summary: %s", o)
	}
	if o := outcomeOf(ctx, &planner.Summary{Outcome: planner.OutcomeBudgetExceeded}, planner.ErrBudgetExceeded); o != planner.OutcomeBudgetExceeded {
		t.Errorf("budget summary: %s", o)
	}
	cancel()
	if o := outcomeOf(ctx, &planner.Summary{Outcome: planner.OutcomeFailed}, errors.New("cut off")); o != planner.OutcomeInterrupted {
		t.Errorf("a cancelled run that failed meanwhile: %s, want interrupted", o)
	}
}
