package jobs

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/reembed/reembed/planner"
)

// TestSpecJSONRoundTrip: a spec written to job.json (and answered by the
// API) decodes back to itself through the strict decoder the API uses.
func TestSpecJSONRoundTrip(t *testing.T) {
	s := testSpec().withDefaults()
	s.Mode, s.RTO, s.BatchP50, s.BatchP90 = planner.ModeAuto, Duration(4*time.Hour), Duration(7*time.Minute), Duration(time.Hour)
	s.BatchTier, s.BatchEnqueuedTokens, s.BatchPollMin = 2, 1234, Duration(20*time.Millisecond)
	s.BudgetUSD, s.FlushIntervalMS, s.Exclude = 2_500_000, 1500, []string{"*.tmp"}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got Spec
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip:\n got  %+v\n want %+v", got, s)
	}
}

// TestSpecDecodeDefaultsAndErrors: absent fields take the CLI's defaults,
// and each bad field is a field error naming it.
func TestSpecDecodeDefaultsAndErrors(t *testing.T) {
	var s Spec
	if err := json.Unmarshal([]byte(`{"paths":["docs"],"flush_interval":"2s","budget_usd":"0.5","model":["m"]}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.ChunkTokens != planner.DefaultChunkTokens || s.ChunkOverlap != planner.DefaultChunkOverlap || s.FlushIntervalMS != 2000 ||
		s.BudgetUSD != 500_000 || s.Model != "m" || s.Concurrency != 0 {
		t.Errorf("decoded %+v", s)
	}
	if err := json.Unmarshal([]byte(`{"paths":["docs"],"chunk_tokens":0}`), &s); err != nil || s.ChunkOverlap != 0 {
		t.Errorf("chunk_tokens 0: overlap %d, %v", s.ChunkOverlap, err)
	}
	for body, field := range map[string]string{
		`{"concurrency":0}`:                             "concurrency",
		`{"budget_usd":-1}`:                             "budget_usd",
		`{"rto":"later"}`:                               "rto",
		`{"model":["a","b"]}`:                           "model",
		`{"flush_interval":"1s","flush_interval_ms":1}`: "flush_interval_ms",
	} {
		err := json.Unmarshal([]byte(body), &s)
		if fe, ok := errors.AsType[*planner.FieldError](err); !ok || fe.Field != field {
			t.Errorf("%s: %v, want a field error on %s", body, err, field)
		}
	}
	if err := (Spec{Paths: []string{"d"}, Mode: planner.ModeAuto}).Validate(); !errors.Is(err, ErrMissing) {
		t.Errorf("auto without rto: %v", err)
	}
}
