//go:build soak

package planner_test

import (
	"math"
	"testing"

	"github.com/reembed/reembed/pricing"
)

// TestSampledCoverage measures, over 40 seeds, how often a sampled
// estimate's 95% interval holds the full corpus's tokens, and how far its
// point estimate is from them, for the bundled sample corpus.
func TestSampledCoverage(t *testing.T) {
	root := extractSample(t)
	ms := []pricing.Model{model(t, "text-embedding-3-small"), model(t, "embed-english-v3.0")}
	full := run(t, sampleRequest(t, root, ms...))
	for _, f := range []float64{0.1, 0.5} {
		for i, fm := range full.Estimates {
			want := float64(fm.Tokens)
			covered, seeds := 0, 40
			var sq float64
			for seed := range int64(seeds) {
				req := sampleRequest(t, root, ms...)
				req.Corpus.Sample, req.Corpus.Seed = f, seed+1
				me := run(t, req).Estimates[i]
				if iv := me.Intervals.Tokens; iv.Low <= want && want <= iv.High {
					covered++
				}
				e := float64(me.Tokens)/want - 1
				sq += e * e
			}
			rms := math.Sqrt(sq / float64(seeds))
			t.Logf("%s at %v: %d of %d intervals hold the full value; rms relative error %.3f", fm.Model, f, covered, seeds, rms)
			if covered < 36 || rms > 0.25 {
				t.Errorf("%s at %v: coverage %d/%d, rms error %.3f; want ≥ 36/40 and ≤ 0.25", fm.Model, f, covered, seeds, rms)
			}
		}
	}
}
