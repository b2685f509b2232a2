package planner

import (
	"fmt"
	"math"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/pricing"
)

// MaxEstimateShards bounds [EstimateRequest.Shards]: one accumulator and
// packer per shard and model are kept while reading the corpus.
const MaxEstimateShards = 4096

// ShardSummary echoes the shard an estimate covers (estimate --shard i/N).
type ShardSummary struct {
	// Index is the shard, in [0, Count).
	Index int `json:"index"`
	// Count is the number of shards the corpus is split into.
	Count int `json:"count"`
}

// ShardEstimate is one shard's figures, or the total of all shards
// ([ShardedEstimate.Total]), when each shard runs on its own API key with the
// estimate's limits.
type ShardEstimate struct {
	// Shard is the shard's index; -1 in the total.
	Shard int `json:"shard"`
	// Documents is the number of documents of the shard (extrapolated when
	// sampled); in a what-if, the documents are dealt out evenly.
	Documents int64 `json:"documents"`
	// Chunks and Tokens are what the shard embeds and is billed (tokens).
	Chunks int64 `json:"chunks"`
	Tokens int64 `json:"tokens"`
	// Requests is the shard's request count: each shard packs its own
	// batches, so the total is the sum and may exceed the unsharded count.
	Requests int64 `json:"requests"`
	// CostUSD is the shard's cost in dollars (micro-dollar exact); in the
	// total, the cost of all the shards' tokens.
	CostUSD pricing.Micros `json:"cost_usd"`
	// DurationSeconds is the shard's duration on its own key (the largest of
	// its TPM, RPM and latency terms); in the total, the slowest shard's,
	// since the shards run at once.
	DurationSeconds float64 `json:"duration_seconds"`
	// Duration is DurationSeconds rendered, e.g. "1h05m".
	Duration string `json:"duration"`
	// Bottleneck names the largest term: tpm, rpm, latency or none.
	Bottleneck string `json:"bottleneck"`
	// MeetsRTO is, in the total, whether the slowest shard fits the RTO;
	// null without an RTO and in the per-shard entries.
	MeetsRTO *bool `json:"meets_rto,omitempty"`
}

// ShardedEstimate is a model's estimate split into Count shards
// (estimate --shards N): the figures of each shard and their total.
type ShardedEstimate struct {
	// Count is the number of shards.
	Count int `json:"count"`
	// Shards holds one entry per shard, by index.
	Shards []ShardEstimate `json:"shards"`
	// Total adds the shards up (duration: the slowest shard).
	Total ShardEstimate `json:"total"`
}

// shardAcc accumulates one shard's figures for one model.
type shardAcc struct {
	docs, chunks, tokens int64
	packer               *Packer
}

// newShardAccs returns the per-shard accumulators of a model, or nil when
// the request asks for no per-shard figures.
func newShardAccs(req EstimateRequest, m pricing.Model) []*shardAcc {
	if req.Shards < 2 {
		return nil
	}
	out := make([]*shardAcc, req.Shards)
	for i := range out {
		out[i] = &shardAcc{packer: NewPacker(m.MaxInputsPerRequest, m.MaxTokensPerRequest, req.Limits.BatchSize, req.Limits.TPM)}
	}
	return out
}

// shardOf returns the accumulator of the shard owning docID, or nil.
func (acc *modelAcc) shardOf(docID string) *shardAcc {
	if len(acc.shards) == 0 {
		return nil
	}
	return acc.shards[checkpoint.ShardOf(docID, len(acc.shards))]
}

// shardShare returns how many of n documents shard index of count gets when
// they are dealt out evenly (what-if documents have no ids to hash).
func shardShare(n int64, index, count int) int64 {
	share := n / int64(count)
	if int64(index) < n%int64(count) {
		share++
	}
	return share
}

// whatIfShards deals a what-if's documents out to the shards.
func (acc *modelAcc) whatIfShards(chunks []int, documents int64) {
	var perDoc int64
	for _, t := range chunks {
		perDoc += int64(t)
	}
	for i, sh := range acc.shards {
		n := shardShare(documents, i, len(acc.shards))
		sh.docs = n
		sh.chunks = int64(len(chunks)) * n
		sh.tokens = perDoc * n
		sh.packer.AddRepeated(chunks, n)
	}
}

// shardedEstimate turns the per-shard accumulators into figures, extrapolated
// by scale when sampled, or returns nil when there are none.
func shardedEstimate(acc *modelAcc, req EstimateRequest, scale func(int64) int64) *ShardedEstimate {
	if len(acc.shards) == 0 {
		return nil
	}
	m := acc.model
	se := &ShardedEstimate{Count: len(acc.shards), Shards: make([]ShardEstimate, len(acc.shards))}
	total := ShardEstimate{Shard: -1, Bottleneck: BottleneckNone}
	for i, sh := range acc.shards {
		e := ShardEstimate{Shard: i, Documents: scale(sh.docs), Chunks: scale(sh.chunks), Tokens: scale(sh.tokens),
			Requests: scale(sh.packer.Requests())}
		e.CostUSD = pricing.Cost(e.Tokens, m.PricePer1M)
		_, e.Bottleneck, e.DurationSeconds = Duration(e.Tokens, e.Requests, req.Limits)
		e.Duration = formatDuration(e.DurationSeconds)
		se.Shards[i] = e
		total.Documents += e.Documents
		total.Chunks += e.Chunks
		total.Tokens += e.Tokens
		total.Requests += e.Requests
		if e.DurationSeconds > total.DurationSeconds {
			total.DurationSeconds, total.Bottleneck = e.DurationSeconds, e.Bottleneck
		}
	}
	total.CostUSD = pricing.Cost(total.Tokens, m.PricePer1M)
	total.Duration = formatDuration(total.DurationSeconds)
	if req.RTO > 0 {
		ok := total.DurationSeconds <= req.RTO.Seconds()
		total.MeetsRTO = &ok
	}
	se.Total = total
	return se
}

// shardsNeeded is how many shards, each on its own key with the current
// limits, bring the TPM and RPM terms within rto seconds.
func shardsNeeded(t DurationTerms, rto float64) int {
	return max(1, int(math.Ceil(max(t.TPMSeconds, t.RPMSeconds)/rto)))
}

// shardAdvice is the recommendation's sentence naming the shard count.
func shardAdvice(n int) string {
	return fmt.Sprintf("run as %d shards, one key each: estimate {shards} %d to check, then rebuild {shard} i/%d", n, n, n)
}
