package planner_test

import (
	"strings"
	"testing"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// Issue 14.8: --sample 1e-160 gave NaN in the JSON (and a 500 in the API).
func TestSampleTooSmallIsRefusedNamingTheField(t *testing.T) {
	m := pricing.Model{Name: "m", MaxTokensPerInput: 8191, MaxInputsPerRequest: 2048, MaxTokensPerRequest: 300000}
	for _, f := range []float64{1e-160, 5e-324, planner.MinSampleFraction / 2} {
		req := planner.EstimateRequest{Paths: []string{"."}, Models: []pricing.Model{m}, ChunkTokens: 512,
			Corpus: corpus.Options{Sample: f}, Limits: planner.Limits{Concurrency: 1}}
		err := req.Validate()
		if err == nil || !strings.Contains(planner.CLIText(err), "--sample") || !strings.Contains(err.Error(), "too small") {
			t.Errorf("sample %g: err = %v, want it refused naming --sample", f, err)
		}
		if fes := planner.FieldErrors(err); len(fes) == 0 || fes[0].Field != "sample" {
			got := fes
			t.Errorf("sample %g: field errors %v, want one on sample", f, got)
		}
	}
	req := planner.EstimateRequest{Paths: []string{"."}, Models: []pricing.Model{m}, ChunkTokens: 512,
		Corpus: corpus.Options{Sample: planner.MinSampleFraction}, Limits: planner.Limits{Concurrency: 1}}
	if err := req.Validate(); err != nil {
		t.Errorf("sample at the minimum: %v", err)
	}
}
