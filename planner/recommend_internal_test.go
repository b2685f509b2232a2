package planner

import (
	"slices"
	"testing"

	"github.com/reembed/reembed/pricing"
)

// TestRecommendModels: a model that misses the RTO is pointed at another
// estimated model that meets it, and an exact model at the cheapest exact
// alternative, each with the caveat that queries change model too.
func TestRecommendModels(t *testing.T) {
	cat, err := pricing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	small, _ := cat.Lookup("text-embedding-3-small")
	large, _ := cat.Lookup("text-embedding-3-large")
	yes, no := true, false
	est := &Estimate{Estimates: []ModelEstimate{
		{Model: large.Name, TokenCount: "exact", PricePer1M: large.PricePer1M, Tokens: 1_000_000, CostUSD: 130_000, MeetsRTO: &no},
		{Model: "voyage-3.5", TokenCount: "estimated", PricePer1M: 60_000, Tokens: 1_000_000, CostUSD: 60_000, Duration: "1m00s", MeetsRTO: &yes},
	}}
	recommendModels(est, EstimateRequest{Alternatives: []pricing.Model{small, large}})
	got := est.Estimates[0].Recommendations
	want := []string{
		"faster: voyage-3.5 meets the RTO in 1m00s for $0.06 (a different model: queries must be embedded with it too)",
		"cheaper: text-embedding-3-small would cost $0.02 for the same 1000000 tokens (a different model: queries must be embedded with it too)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recommendations\n got %q\nwant %q", got, want)
	}
	if r := est.Estimates[1].Recommendations; len(r) != 0 {
		t.Errorf("an estimated model that meets the RTO got %q, want none", r)
	}
}
