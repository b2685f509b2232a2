package planner

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestEstimateRestoreTerms(t *testing.T) {
	d := DefaultRestoreModel
	r := EstimateRestore(50000, 0, 1536, RestoreTarget{Store: "pgvector"})
	// The documented anchors: 50,000 × 1536-d rows load at 34 MB/s and index in 48 s.
	if want := 50000 * RestoreRowBytes(1536, false) / d.LoadBytesPerSecond; math.Abs(r.LoadSeconds-want) > 1e-9 || math.Abs(r.IndexSeconds-48) > 1e-6 {
		t.Errorf("50k rows: load %.2f s (want %.2f), index %.2f s (want 48)", r.LoadSeconds, want, r.IndexSeconds)
	}
	if r.Calibrated || !strings.HasPrefix(r.Basis, "uncalibrated") || r.Index != "hnsw" {
		t.Errorf("defaults must say uncalibrated: %+v", r)
	}
	// Up to the 50,000-row anchor the power law; beyond it rows × log(rows).
	small := EstimateRestore(5000, 0, 1536, RestoreTarget{Store: "pgvector"})
	if g := r.IndexSeconds / small.IndexSeconds; math.Abs(g-math.Pow(10, 1.1)) > 1e-6 {
		t.Errorf("5,000 to 50,000 rows: index ×%.2f, want ×10^1.1", g)
	}
	big := EstimateRestore(500000, 0, 1536, RestoreTarget{Store: "pgvector"})
	if g, want := big.IndexSeconds/r.IndexSeconds, 10*math.Log(500000)/math.Log(50000); math.Abs(g-want) > 1e-6 {
		t.Errorf("10× the rows beyond the anchor: index ×%.2f, want ×%.2f (rows × log rows)", g, want)
	}
	ivf := EstimateRestore(50000, 0, 1536, RestoreTarget{Store: "pgvector", Index: "ivfflat"})
	none := EstimateRestore(50000, 0, 1536, RestoreTarget{Store: "pgvector", Index: "none"})
	if ivf.IndexSeconds >= r.IndexSeconds || none.IndexSeconds != 0 {
		t.Errorf("ivfflat %.1f s, none %.1f s, hnsw %.1f s", ivf.IndexSeconds, none.IndexSeconds, r.IndexSeconds)
	}
	cal := EstimateRestore(50000, 0, 1536, RestoreTarget{Store: "pgvector", Model: RestoreModel{LoadBytesPerSecond: 1e6, IndexA: 0.001, IndexB: 1, Calibrated: true, Basis: "calibrated here"}})
	if math.Abs(cal.IndexSeconds-50) > 1e-9 || !cal.Calibrated || cal.Basis != "calibrated here" {
		t.Errorf("calibrated model not used: %+v", cal)
	}
}

// TestRestoreCountsInTheRTO: an estimate that meets its RTO for the
// embedding alone misses it once a big HNSW build is counted, and says what
// would help.
func TestRestoreCountsInTheRTO(t *testing.T) {
	me := ModelEstimate{Chunks: 2_000_000, Tokens: 1_000_000_000, DurationSeconds: 1800}
	req := EstimateRequest{RTO: time.Hour, Restore: &RestoreTarget{Store: "pgvector"}}
	applyRestore(&me, req, 1536)
	if me.Restore == nil || me.Restore.EmbedSeconds != 1800 || math.Abs(me.DurationSeconds-(1800+me.Restore.Seconds())) > 1e-6 {
		t.Fatalf("restore terms not added: %+v", me)
	}
	ok := me.DurationSeconds <= req.RTO.Seconds()
	me.MeetsRTO = &ok
	if ok {
		t.Fatalf("2M rows with HNSW met a 1 h RTO: %+v", me.Restore)
	}
	recs := strings.Join(recommendRestore(me, req), "\n")
	for _, want := range []string{"IVFFlat instead of HNSW", "{parallel_workers}", "{append}", "uncalibrated"} {
		if !strings.Contains(recs, want) {
			t.Errorf("recommendations lack %q:\n%s", want, recs)
		}
	}
	plain := ModelEstimate{Chunks: 2_000_000, DurationSeconds: 1800}
	applyRestore(&plain, EstimateRequest{RTO: 2 * time.Hour}, 1536)
	if plain.Restore != nil || plain.DurationSeconds != 1800 {
		t.Errorf("without a restore target the duration changed: %+v", plain)
	}
}

// IndexGrowth is the power law up to the largest calibrated size and
// rows × log(rows) beyond, continuous at the seam; without a size, the power
// law everywhere.
func TestIndexGrowth(t *testing.T) {
	a, b := 1.55e-6, 1.772
	at := IndexGrowth(a, b, 20000, 20000)
	if math.Abs(at-a*math.Pow(20000, b)) > 1e-9 || math.Abs(IndexGrowth(a, b, 20000, 20001)-at) > at*1e-3 {
		t.Errorf("not continuous at the largest calibrated size: %v", at)
	}
	if got, want := IndexGrowth(a, b, 20000, 100000), at*5*math.Log(100000)/math.Log(20000); math.Abs(got-want) > 1e-9 {
		t.Errorf("beyond: %v, want %v", got, want)
	}
	if got := IndexGrowth(a, b, 0, 100000); math.Abs(got-a*math.Pow(100000, b)) > 1e-9 {
		t.Errorf("without a size: %v", got)
	}
}
