package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// VerifyOptions tunes [Verify].
type VerifyOptions struct {
	// Sample is how many stored vectors are compared with the checkpoint's, exactly; 0 means 100.
	Sample int
	// IndexQueries is how many stored vectors are queried through the index
	// (each must return its own row first); 0 means 20, negative skips the check.
	IndexQueries int
	// Round maps a checkpoint vector to what the store holds (e.g. binary16
	// rounding for halfvec); nil means the identity.
	Round func([]float32) []float32
	// Seed seeds the random choice of samples; 0 picks one.
	Seed uint64
}

// VerifyReport compares a live store with its checkpoint.
type VerifyReport struct {
	// Expected is the checkpoint's distinct keys; Rows the store's rows.
	Expected int `json:"expected"`
	Rows     int `json:"rows"`
	// Present rows have the checkpoint's key and sha256; Missing keys are
	// absent from the store; Extra stored keys are not in the checkpoint;
	// Stale stored rows hold another sha256 than the checkpoint's winner.
	Present int `json:"present"`
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
	Stale   int `json:"stale"`
	// MissingKeys, ExtraKeys and StaleKeys list the first few of each.
	MissingKeys []checkpoint.Key `json:"missing_keys,omitempty"`
	ExtraKeys   []checkpoint.Key `json:"extra_keys,omitempty"`
	StaleKeys   []checkpoint.Key `json:"stale_keys,omitempty"`
	// VectorsSampled were compared element by element; VectorsDiffering differ.
	VectorsSampled   int              `json:"vectors_sampled"`
	VectorsDiffering int              `json:"vectors_differing"`
	DifferingKeys    []checkpoint.Key `json:"differing_keys,omitempty"`
	// IndexQueries nearest-neighbour queries were run; RecallAt1 is the share
	// that returned the queried row (or a row with the same text) first.
	IndexQueries int     `json:"index_queries"`
	RecallAt1    float64 `json:"recall_at_1"`
	// LatencyP50 and LatencyP99 are the queries' latencies in milliseconds.
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
}

// Complete reports whether the store holds exactly the checkpoint's rows and
// the sampled vectors are equal.
func (r VerifyReport) Complete() bool {
	return r.Missing == 0 && r.Extra == 0 && r.Stale == 0 && r.VectorsDiffering == 0
}

// Verify compares the store behind rd with the checkpoint in src.
func Verify(ctx context.Context, src checkpoint.Store, rd Reader, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	ix, err := checkpoint.Scan(ctx, src, checkpoint.ScanOptions{})
	if err != nil {
		return rep, fmt.Errorf("reading the checkpoint: %w", err)
	}
	rep.Expected = ix.Len()
	seen := make(map[checkpoint.Key]bool, ix.Len())
	var present []checkpoint.Key
	err = rd.Keys(ctx, func(k checkpoint.Key, sha string) error {
		rep.Rows++
		e, ok := ix.Lookup(k)
		switch {
		case !ok:
			rep.Extra++
			sample(&rep.ExtraKeys, k)
		case e.SHA256 != sha:
			rep.Stale++
			sample(&rep.StaleKeys, k)
		default:
			rep.Present++
			present = append(present, k)
		}
		if ok {
			seen[k] = true
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for k := range ix.All() {
		if !seen[k] {
			rep.Missing++
			sample(&rep.MissingKeys, k)
		}
	}
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	rng.Shuffle(len(present), func(i, j int) { present[i], present[j] = present[j], present[i] })
	n := opts.Sample
	if n <= 0 {
		n = 100
	}
	picked := present[:min(n, len(present))]
	want, err := checkpointVectors(ctx, src, ix, picked)
	if err != nil {
		return rep, err
	}
	if err := compareVectors(ctx, rd, picked, want, opts.Round, &rep); err != nil {
		return rep, err
	}
	q := opts.IndexQueries
	if q == 0 {
		q = 20
	}
	if q > 0 {
		if err := checkIndex(ctx, rd, ix, present[:min(q, len(present))], &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func sample(keys *[]checkpoint.Key, k checkpoint.Key) {
	if len(*keys) < checkpoint.SampleKeys {
		*keys = append(*keys, k)
	}
}

// checkpointVectors reads the winning vectors of keys from their parts.
func checkpointVectors(ctx context.Context, src checkpoint.Store, ix *checkpoint.Index, keys []checkpoint.Key) (map[checkpoint.Key][]float32, error) {
	byPart := map[string]map[checkpoint.Key]bool{}
	for _, k := range keys {
		e, _ := ix.Lookup(k)
		if byPart[e.Part] == nil {
			byPart[e.Part] = map[checkpoint.Key]bool{}
		}
		byPart[e.Part][k] = true
	}
	out := make(map[checkpoint.Key][]float32, len(keys))
	for part, want := range byPart {
		rows, err := winningRows(ctx, src, ix, part)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if want[r.Key()] {
				out[r.Key()] = r.Embedding
			}
		}
	}
	return out, nil
}

func compareVectors(ctx context.Context, rd Reader, keys []checkpoint.Key, want map[checkpoint.Key][]float32, round func([]float32) []float32, rep *VerifyReport) error {
	got, err := rd.Vectors(ctx, keys)
	if err != nil {
		return err
	}
	for _, k := range keys {
		w := want[k]
		if round != nil {
			w = round(w)
		}
		rep.VectorsSampled++
		if !slices.Equal(got[k], w) {
			rep.VectorsDiffering++
			sample(&rep.DifferingKeys, k)
		}
	}
	return nil
}

// checkIndex queries the store with stored vectors: each must find itself
// first (or a row with the same text, whose vector is the same).
func checkIndex(ctx context.Context, rd Reader, ix *checkpoint.Index, keys []checkpoint.Key, rep *VerifyReport) error {
	vecs, err := rd.Vectors(ctx, keys)
	if err != nil {
		return err
	}
	var lat []float64
	hits := 0
	for _, k := range keys {
		start := time.Now()
		got, err := rd.Nearest(ctx, vecs[k])
		if err != nil {
			return err
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
		a, _ := ix.Lookup(k)
		b, _ := ix.Lookup(got)
		if got == k || a.SHA256 == b.SHA256 {
			hits++
		}
	}
	rep.IndexQueries = len(keys)
	if len(keys) > 0 {
		rep.RecallAt1 = float64(hits) / float64(len(keys))
		slices.Sort(lat)
		rep.LatencyP50 = lat[len(lat)/2]
		rep.LatencyP99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return nil
}
