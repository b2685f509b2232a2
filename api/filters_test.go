package api_test

import (
	"testing"

	"github.com/reembed/reembed/planner"
)

// Issue 17.2: the API takes the CLI's --exclude and --include as exclude
// and include.
func TestEstimateFilters(t *testing.T) {
	te := newEnv(t, envOptions{})
	c := loadContract(t)
	rec := c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{"paths":["docs"],"exclude":["b.txt"]}`})
	mustStatus(t, rec, 200)
	if est := decode[planner.Estimate](t, rec); est.Corpus.Documents != 2 || est.Corpus.Excluded != 1 {
		t.Errorf("exclude b.txt: %d documents, %d excluded; want 2 and 1", est.Corpus.Documents, est.Corpus.Excluded)
	}
	rec = c.check(t, te, request{method: "POST", path: "/v1/estimates", body: `{"paths":["docs"],"include":["a.*"]}`})
	mustStatus(t, rec, 200)
	if est := decode[planner.Estimate](t, rec); est.Corpus.Documents != 1 {
		t.Errorf("include a.*: %d documents, want 1", est.Corpus.Documents)
	}
}
