package planner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// TestEstimateShards checks estimate --shards N on the sample corpus: the
// shards add up to the corpus, each shard's figures are exactly those of
// estimate --shard i/N (the rebuild's own filter), requests add up shard by
// shard, and the total duration is the slowest shard's.
func TestEstimateShards(t *testing.T) {
	t.Parallel()
	root := extractSample(t)
	m := model(t, "text-embedding-3-small")
	const n = 4
	req := sampleRequest(t, root, m)
	req.Limits.BatchSize = 16 // several requests per shard
	whole := run(t, req).Estimates[0]
	req.Shards = n
	est := run(t, req)
	me := est.Estimates[0]
	sh := me.Sharded
	if sh == nil || sh.Count != n || len(sh.Shards) != n {
		t.Fatalf("sharded = %+v, want %d shards", sh, n)
	}
	if me.Chunks != whole.Chunks || me.Tokens != whole.Tokens || me.Requests != whole.Requests {
		t.Errorf("--shards changed the unsharded figures: %d/%d/%d, want %d/%d/%d", me.Chunks, me.Tokens, me.Requests, whole.Chunks, whole.Tokens, whole.Requests)
	}
	var docs, chunks, tokens, requests int64
	var slowest float64
	for i, s := range sh.Shards {
		if s.Shard != i {
			t.Errorf("shards[%d].shard = %d", i, s.Shard)
		}
		one := req
		one.Shards, one.Shard = 0, checkpoint.Shard{Index: i, Count: n}
		alone := run(t, one)
		a := alone.Estimates[0]
		if alone.Shard == nil || *alone.Shard != (planner.ShardSummary{Index: i, Count: n}) {
			t.Errorf("--shard %d/%d: shard echoed as %+v", i, n, alone.Shard)
		}
		if s.Documents != alone.Corpus.Documents || s.Chunks != a.Chunks || s.Tokens != a.Tokens || s.Requests != a.Requests ||
			s.CostUSD != a.CostUSD || s.DurationSeconds != a.DurationSeconds || s.Bottleneck != a.Bottleneck {
			t.Errorf("shard %d of --shards: %+v; --shard %d/%d: %d docs, %d chunks, %d tokens, %d requests, $%s, %.1fs %s",
				i, s, i, n, alone.Corpus.Documents, a.Chunks, a.Tokens, a.Requests, a.CostUSD, a.DurationSeconds, a.Bottleneck)
		}
		if s.Documents == 0 || s.Chunks == 0 {
			t.Errorf("shard %d is empty: the hash does not spread the sample", i)
		}
		docs += s.Documents
		chunks += s.Chunks
		tokens += s.Tokens
		requests += s.Requests
		slowest = max(slowest, s.DurationSeconds)
	}
	tot := sh.Total
	if docs != est.Corpus.Documents || chunks != me.Chunks || tokens != me.Tokens {
		t.Errorf("shards add up to %d docs, %d chunks, %d tokens; corpus %d, %d, %d", docs, chunks, tokens, est.Corpus.Documents, me.Chunks, me.Tokens)
	}
	if tot.Shard != -1 || tot.Documents != docs || tot.Chunks != chunks || tot.Tokens != tokens || tot.Requests != requests {
		t.Errorf("total %+v, want the sums %d docs, %d chunks, %d tokens, %d requests", tot, docs, chunks, tokens, requests)
	}
	if tot.Requests < me.Requests {
		t.Errorf("shards pack %d requests in all, fewer than the %d of one packer", tot.Requests, me.Requests)
	}
	if tot.DurationSeconds != slowest || tot.CostUSD != pricing.Cost(tokens, m.PricePer1M) {
		t.Errorf("total duration %.2fs cost $%s, want the slowest shard's %.2fs and $%s", tot.DurationSeconds, tot.CostUSD, slowest, pricing.Cost(tokens, m.PricePer1M))
	}
	if tot.DurationSeconds >= me.DurationSeconds {
		t.Errorf("4 keys take %.1fs, not less than one key's %.1fs", tot.DurationSeconds, me.DurationSeconds)
	}
}

// TestRTORecommendsShards checks that a missed RTO names the shard count
// from the keys' limits, and that estimating with that many shards, each on
// its own key, meets it.
func TestRTORecommendsShards(t *testing.T) {
	t.Parallel()
	m := model(t, "text-embedding-3-small")
	// 1,000 documents of 1,000 tokens at 1M TPM: 60 s on one key; the RTO
	// of 25 s needs ceil(60/25) = 3 keys.
	req := planner.EstimateRequest{Models: []pricing.Model{m}, ChunkTokens: 1000, Limits: tpmOnly(1_000_000),
		RTO: 25 * time.Second, WhatIf: &planner.WhatIf{Documents: 1000, TokensPerDocument: 1000}, FieldName: planner.CLIFlag}
	me := run(t, req).Estimates[0]
	recs := strings.Join(me.Recommendations, "\n")
	if !strings.Contains(recs, "--shards 3") || !strings.Contains(recs, "--shard i/3") {
		t.Fatalf("recommendations %q do not name 3 shards", me.Recommendations)
	}
	req.Shards = 3
	sh := run(t, req).Estimates[0].Sharded
	if sh == nil || sh.Total.MeetsRTO == nil || !*sh.Total.MeetsRTO {
		t.Fatalf("3 shards do not meet the RTO: %+v", sh)
	}
	for i, s := range sh.Shards {
		if want := []int64{334, 333, 333}[i]; s.Documents != want || s.Tokens != want*1000 {
			t.Errorf("what-if shard %d: %d documents, %d tokens; want %d dealt out evenly", i, s.Documents, s.Tokens, want)
		}
	}
	// A what-if of one shard gets that shard's share.
	req.Shards, req.Shard = 0, checkpoint.Shard{Index: 2, Count: 3}
	one := run(t, req)
	if one.Corpus.Documents != 333 {
		t.Errorf("--shard 2/3 of a 1,000-document what-if: %d documents, want 333", one.Corpus.Documents)
	}
}

// TestValidateShards checks the shard options' usage errors.
func TestValidateShards(t *testing.T) {
	t.Parallel()
	m := model(t, "text-embedding-3-small")
	base := planner.EstimateRequest{Models: []pricing.Model{m}, ChunkTokens: 512, WhatIf: &planner.WhatIf{Documents: 1, TokensPerDocument: 1}}
	for _, tc := range []struct {
		name string
		edit func(*planner.EstimateRequest)
		want string
	}{
		{"NegativeShards", func(r *planner.EstimateRequest) { r.Shards = -1 }, "--shards"},
		{"TooManyShards", func(r *planner.EstimateRequest) { r.Shards = planner.MaxEstimateShards + 1 }, "--shards"},
		{"BothShardAndShards", func(r *planner.EstimateRequest) { r.Shards, r.Shard = 4, checkpoint.Shard{Index: 0, Count: 4} }, "either --shard"},
		{"ShardOutOfRange", func(r *planner.EstimateRequest) { r.Shard = checkpoint.Shard{Index: 4, Count: 4} }, "--shard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.edit(&r)
			if err := r.Validate(); err == nil || !strings.Contains(planner.CLIText(err), tc.want) {
				t.Errorf("Validate = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestShard.KeepIsRebuildFilter checks Shard.Keep against ShardOf, and that
// every document lands in exactly one shard.
func TestShardKeepIsRebuildFilter(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a", "doc-0001", "日本語", "records.jsonl#17"} {
		owners := 0
		for i := range 5 {
			keep := checkpoint.Shard{Index: i, Count: 5}.Keep(nil)
			if keep(id) {
				owners++
				if checkpoint.ShardOf(id, 5) != i {
					t.Errorf("%q kept by shard %d, ShardOf says %d", id, i, checkpoint.ShardOf(id, 5))
				}
			}
		}
		if owners != 1 {
			t.Errorf("%q is kept by %d shards, want 1", id, owners)
		}
	}
	if (checkpoint.Shard{}).Keep(nil) != nil {
		t.Error("Shard.Keep of no shard is not the previous filter (nil)")
	}
	deny := func(string) bool { return false }
	if (checkpoint.Shard{Index: 0, Count: 1}).Keep(deny)("x") {
		t.Error("Shard.Keep ignores the previous filter")
	}
}
