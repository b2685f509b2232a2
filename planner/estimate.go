// Package planner prices and times rebuilds (estimates) and runs them
// (rebuild jobs): the planner math of DESIGN §6 and the orchestration of §2.
//
// It imports corpus, embedder, pricing and checkpoint, and nothing above them.
package planner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/field"
	"github.com/reembed/reembed/pricing"
)

// Defaults for the limits an estimate assumes when none are given: OpenAI's
// usage tier 1 for embedding models (../shared/reference/rate-limits.md §1),
// and a conservative request latency and concurrency.
const (
	DefaultRPM          = 3000
	DefaultTPM          = 1_000_000
	DefaultConcurrency  = 4
	DefaultLatency      = time.Second
	DefaultChunkTokens  = 512
	DefaultChunkOverlap = 64
)

// Limits are the provider limits and client settings that bound a rebuild.
type Limits struct {
	// RPM is requests per minute; TPM tokens per minute (of one API key or project).
	RPM int `json:"rpm"`
	TPM int `json:"tpm"`
	// Concurrency is the number of requests in flight at once.
	Concurrency int `json:"concurrency"`
	// Latency is the expected time of one request.
	Latency time.Duration `json:"-"`
	// BatchSize caps inputs per request below the model's limit; 0 = model max.
	BatchSize int `json:"batch_size"`
}

// WhatIf describes a corpus that is not read: Documents documents of
// TokensPerDocument tokens each.
type WhatIf struct {
	Documents         int64 `json:"documents"`
	TokensPerDocument int64 `json:"tokens_per_document"`
}

// EstimateRequest is everything an estimate needs. Paths and WhatIf are
// exclusive.
type EstimateRequest struct {
	// Batch holds the batch latency assumptions of the auto split shown
	// with an RTO (ModelEstimate.BatchPlan); with P90 zero there is no split.
	Batch        AutoOptions
	Paths        []string
	Corpus       corpus.Options
	Models       []pricing.Model
	ChunkTokens  int
	ChunkOverlap int
	Limits       Limits
	// RTO is the recovery time objective; 0 means none was given.
	RTO time.Duration
	// Jobs is the number of reader/tokenizer workers; 0 = GOMAXPROCS.
	Jobs int
	// WhatIf, when set, estimates a corpus that is not read.
	WhatIf *WhatIf
	// PerDocument, when set, receives a TSV line per document
	// (doc_id, tokens, chunks, billed_tokens) for the first model.
	PerDocument io.Writer
	// Done, when set, reports chunks already checkpointed (by document,
	// index and text); they are counted as reused and not priced.
	Done func(docID string, index int, text []byte) bool
	// Alternatives are catalog models the recommendations may point to: a
	// cheaper exact (cl100k_base) model with the same limits, priced on the
	// same tokens.
	Alternatives []pricing.Model
	// Shard, when Count > 0, estimates only that shard's documents (the
	// filter of rebuild --shard, [checkpoint.Shard.Keep]); a what-if deals its documents
	// out evenly.
	Shard checkpoint.Shard
	// Shards, when 2 or more, adds per-shard figures for that many shards
	// ([ModelEstimate.Sharded]); at most [MaxEstimateShards].
	Shards int
	// Restore, when set, adds the restore's load, index and verify terms to
	// the duration and the RTO verdict (restoreplan.go).
	Restore *RestoreTarget
	// FieldName names settings in recommendations and notes (package
	// field): the CLI passes its flag names (--concurrency); nil names them
	// in snake_case, as the API's JSON fields.
	FieldName func(field string) string
}

// Validate checks the request. Its errors are [FieldError]s, joined, naming
// fields in snake_case; the CLI maps them to flags, the API to JSON fields.
func (r *EstimateRequest) Validate() error {
	return r.validate(true)
}

// validate is Validate; without needInput, a request that has neither corpus
// paths nor a what-if is not an error (the caller reports that itself).
func (r *EstimateRequest) validate(needInput bool) error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErrorf(field, format, args...)) }
	if len(r.Models) == 0 {
		add("model", "{model}: no model given")
	}
	for _, c := range []struct {
		field string
		v     int64
	}{{"rpm", int64(r.Limits.RPM)}, {"tpm", int64(r.Limits.TPM)}, {"concurrency", int64(r.Limits.Concurrency)},
		{"latency", int64(r.Limits.Latency)}, {"batch_size", int64(r.Limits.BatchSize)}, {"rto", int64(r.RTO)}} {
		if c.v < 0 {
			add(c.field, "{%s} must not be negative", c.field)
		}
	}
	if err := r.Shard.Validate(); err != nil {
		errs = append(errs, NewFieldError("shard", err))
	}
	if r.Shards < 0 || r.Shards > MaxEstimateShards {
		add("shards", "{shards} %d: want 0 to %d", r.Shards, MaxEstimateShards)
	} else if r.Shards > 1 && r.Shard.Count > 0 {
		add("shards", "{shards}: give either {shard} i/N (one shard) or {shards} N (all of them)")
	}
	errs = append(errs, validateChunking(r.ChunkTokens, r.ChunkOverlap)...)
	if s := r.Corpus.Sample; s < 0 || s > 1 || math.IsNaN(s) {
		add("sample", "{sample} %v must be a fraction in (0, 1]", s)
	} else if s > 0 && s < MinSampleFraction {
		add("sample", "{sample} %v is too small to sample: want at least %g (one document in a million)", s, MinSampleFraction)
	}
	if r.WhatIf != nil {
		errs = append(errs, r.validateWhatIf()...)
	} else if needInput && len(r.Paths) == 0 {
		add("paths", "no corpus path given (or use {documents} and {tokens_per_document})")
	}
	return errors.Join(errs...)
}

// validateChunking checks chunk_tokens and chunk_overlap.
func validateChunking(size, overlap int) []error {
	var errs []error
	if size < 0 {
		errs = append(errs, fieldErrorf("chunk_tokens", "{chunk_tokens} must not be negative"))
	}
	switch {
	case overlap < 0:
		errs = append(errs, fieldErrorf("chunk_overlap", "{chunk_overlap} must not be negative"))
	case size == 0 && overlap > 0:
		errs = append(errs, fieldErrorf("chunk_overlap", "{chunk_overlap} needs {chunk_tokens} > 0"))
	case size > 0 && overlap >= size:
		errs = append(errs, fieldErrorf("chunk_overlap", "{chunk_overlap} %d must be less than {chunk_tokens} %d", overlap, size))
	}
	return errs
}

// validateWhatIf checks a what-if request.
func (r *EstimateRequest) validateWhatIf() []error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErrorf(field, format, args...)) }
	w := r.WhatIf
	if w.Documents <= 0 {
		add("documents", "{documents} must be a positive number of documents")
	}
	if w.TokensPerDocument <= 0 {
		add("tokens_per_document", "{tokens_per_document} must be a positive number of tokens")
	} else if w.Documents > 0 && w.TokensPerDocument > math.MaxInt64/w.Documents {
		add("tokens_per_document", "{tokens_per_document}: documents × tokens per document exceeds 2^63 tokens")
	} else if n := r.maxWhatIfWindows(); n > MaxWhatIfChunksPerDocument {
		add("tokens_per_document", "{tokens_per_document} %d makes %d chunks per document, above %d; raise {chunk_tokens}", w.TokensPerDocument, n, MaxWhatIfChunksPerDocument)
	}
	if len(r.Paths) > 0 {
		add("documents", "{documents}: a what-if takes no corpus path")
	}
	if r.Corpus.Sample > 0 && r.Corpus.Sample < 1 {
		add("sample", "{sample}: a what-if has no corpus to sample")
	}
	return errs
}

// MinSampleFraction is the smallest sample fraction: below it a sample reads
// no document of any real corpus, and extrapolating from nothing gives
// infinities (1e-160 once gave NaN in the JSON and a 500 in the API).
const MinSampleFraction = 1e-6

// MaxWhatIfChunksPerDocument bounds the chunks of one what-if document: the
// what-if packs a document's chunks one by one, so more would let one request
// take minutes of CPU and gigabytes of memory.
const MaxWhatIfChunksPerDocument = 1_000_000

// maxWhatIfWindows is the largest number of windows a what-if document makes
// for any of the models (their chunk sizes are capped as Run caps them).
func (r *EstimateRequest) maxWhatIfWindows() int64 {
	var most int64
	for _, m := range r.Models {
		size, overlap := r.ChunkTokens, r.ChunkOverlap
		if size == 0 || size > m.MaxTokensPerInput {
			size = m.MaxTokensPerInput
			overlap = min(overlap, size-1)
		}
		if size <= 0 || overlap < 0 || overlap >= size {
			continue // reported by the other checks
		}
		n := r.WhatIf.TokensPerDocument
		if n > int64(size) {
			n = 1 + (n-int64(size)+int64(size-overlap)-1)/int64(size-overlap)
		} else {
			n = 1
		}
		most = max(most, n)
	}
	return most
}

// estimateReadAhead is the estimate's [corpus.Options.ReadAhead]: files per
// worker read ahead of the one being summed (scripts/bench-tokens.sh's
// slice, 2 workers, medians of 5: the default 2 gave 63 MB/s, 32 gave
// 80–83 MB/s; peak RSS 75–79 MiB).
const estimateReadAhead = 32

// Estimate is the answer: the runbooks' contract, documented field by field
// in README.md and openapi.yaml (schema Estimate).
type Estimate struct {
	Version   int             `json:"version"`
	Corpus    CorpusSummary   `json:"corpus"`
	Chunking  Chunking        `json:"chunking"`
	Limits    LimitsSummary   `json:"limits"`
	Shard     *ShardSummary   `json:"shard,omitempty"` // the one shard estimated (--shard i/N)
	Estimates []ModelEstimate `json:"estimates"`
}

// Chunking echoes the chunking the estimate used.
type Chunking struct {
	ChunkTokens  int `json:"chunk_tokens"`
	ChunkOverlap int `json:"chunk_overlap"`
}

// LimitsSummary echoes the limits the estimate assumed.
type LimitsSummary struct {
	RPM         int      `json:"rpm"`
	TPM         int      `json:"tpm"`
	Concurrency int      `json:"concurrency"`
	LatencyMS   int64    `json:"latency_ms"`
	BatchSize   int      `json:"batch_size"`
	RTOSeconds  *float64 `json:"rto_seconds"`
}

// CorpusSummary describes what was read (or assumed, for a what-if).
type CorpusSummary struct {
	Roots                []string `json:"roots"`
	WhatIf               bool     `json:"what_if"`
	Sampled              bool     `json:"sampled"`
	SampleFraction       float64  `json:"sample_fraction"`
	Files                int      `json:"files"`
	Documents            int64    `json:"documents"`
	Bytes                int64    `json:"bytes"`
	Tokens               int64    `json:"tokens"`
	EmptyDocuments       int64    `json:"empty_documents"`
	InvalidUTF8Documents int64    `json:"invalid_utf8_documents"`
	InvalidUTF8Examples  []string `json:"invalid_utf8_examples"`
	SkippedCount         int      `json:"skipped_count"`
	// SkippedFiles counts the skipped entries that are whole files.
	SkippedFiles int           `json:"skipped_files"`
	Skipped      []corpus.Skip `json:"skipped"`
	// Excluded counts what the filters left out; DefaultExcluded names the
	// first few directories left out by default (.git...).
	Excluded        int64    `json:"excluded"`
	DefaultExcluded []string `json:"default_excluded"`
	ReadSeconds     float64  `json:"read_seconds"`
}

// Interval is a 95% confidence interval of an extrapolated figure.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// ModelEstimate is the estimate for one model.
type ModelEstimate struct {
	Model           string          `json:"model"`
	Provider        string          `json:"provider"`
	TokenCount      string          `json:"token_count"`
	CharsPerToken   float64         `json:"chars_per_token,omitempty"`
	ChunkTokens     int             `json:"chunk_tokens"`
	Chunks          int64           `json:"chunks"`
	Tokens          int64           `json:"tokens"`
	SplitDocuments  int64           `json:"split_documents"`
	Requests        int64           `json:"requests"`
	ReusedChunks    int64           `json:"reused_chunks"`
	ReusedTokens    int64           `json:"reused_tokens"`
	PricePer1M      pricing.Micros  `json:"price_per_1m"`
	CostUSD         pricing.Micros  `json:"cost_usd"`
	BatchPricePer1M *pricing.Micros `json:"batch_price_per_1m"`
	BatchCostUSD    *pricing.Micros `json:"batch_cost_usd"`
	BatchWindowSec  *float64        `json:"batch_window_seconds"`
	DurationSeconds float64         `json:"duration_seconds"`
	Duration        string          `json:"duration"`
	Terms           DurationTerms   `json:"duration_terms"`
	Bottleneck      string          `json:"bottleneck"`
	MeetsRTO        *bool           `json:"meets_rto"`
	Recommendations []string        `json:"recommendations"`
	Intervals       *Intervals      `json:"intervals,omitempty"`
	PriceAsOf       string          `json:"price_as_of"`
	PriceSource     string          `json:"price_source"`
	Notes           []string        `json:"notes,omitempty"`
	// Sharded holds per-shard figures and their total (estimate --shards N).
	Sharded *ShardedEstimate `json:"sharded,omitempty"`
	// BatchPlan is the auto split against the RTO (rebuild --mode auto),
	// for models with a batch price when an RTO is given.
	BatchPlan *BatchPlan `json:"batch_plan,omitempty"`
	// Restore holds the restore's terms when a restore target was given;
	// DurationSeconds then covers embed + load + index + verify.
	Restore *RestoreEstimate `json:"restore,omitempty"`
}

// DurationTerms are the three terms of the duration, in seconds.
type DurationTerms struct {
	TPMSeconds     float64 `json:"tpm_seconds"`
	RPMSeconds     float64 `json:"rpm_seconds"`
	LatencySeconds float64 `json:"latency_seconds"`
}

// Intervals are the 95% intervals of a sampled estimate.
type Intervals struct {
	Tokens   Interval `json:"tokens"`
	Chunks   Interval `json:"chunks"`
	Requests Interval `json:"requests"`
	CostUSD  Interval `json:"cost_usd"`
}

// chunkConfig is one distinct way of chunking; models share it when equal.
type chunkConfig struct {
	size, overlap, maxInput int
}

// modelAcc accumulates one model's figures over the corpus.
type modelAcc struct {
	model        pricing.Model
	cfg          int // index into configs
	packer       *Packer
	chunks       int64
	tokens       int64
	split        int64
	reused       int64
	reusedTokens int64
	shards       []*shardAcc // per shard (EstimateRequest.Shards), or nil
	// Per-document sums for a sample's variance: Σx², Σx·b and Σb² of
	// tokens x, chunks and source bytes b.
	sumSqTokens, sumTokensBytes float64
	sumSqChunks, sumChunksBytes float64
	sumBytes, sumSqBytes        float64
	notes                       []string
	// docChunks and docTokens are the running totals of the document
	// being added (addChunks).
	docChunks, docTokens int64
}

// docResult is what a worker computes for one document.
type docResult struct {
	id        string
	part      bool // a part of the document's chunks (docScanner.work)
	docTokens int
	bytes     int64 // source bytes
	empty     bool
	configs   []cfgResult
}

type cfgResult struct {
	split  bool
	chunks []chunkInfo
}

type chunkInfo struct {
	tokens int // billed cl100k tokens
	runes  int // characters, for estimated models
	reused bool
}

// Run computes the estimate. It reads the corpus once, whatever the number of
// models. Memory does not grow with the corpus. Its steps: validate, set up
// the header and one accumulator per model, then either the what-if
// arithmetic or one scan of the corpus, and finish the figures.
func Run(ctx context.Context, tok tokenizer.Tokenizer, req EstimateRequest) (*Estimate, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	est, req := newEstimate(req)
	configs, accs := newModelAccs(req)
	if req.WhatIf != nil {
		whatIf(est, req, configs, accs)
		finish(est, req, accs, extrapolation{fraction: 1, g: 1})
		return est, nil
	}
	x, err := scanCorpus(ctx, tok, est, req, configs, accs)
	if err != nil {
		return nil, err
	}
	finish(est, req, accs, x)
	return est, nil
}

// newEstimate returns the estimate's header (version, chunking, limits,
// shard) and the request narrowed to its shard: the corpus keeps only the
// shard's documents and a what-if counts only the shard's share.
func newEstimate(req EstimateRequest) (*Estimate, EstimateRequest) {
	est := &Estimate{
		Version:  1,
		Chunking: Chunking{ChunkTokens: req.ChunkTokens, ChunkOverlap: req.ChunkOverlap},
		Limits: LimitsSummary{RPM: req.Limits.RPM, TPM: req.Limits.TPM, Concurrency: req.Limits.Concurrency,
			LatencyMS: req.Limits.Latency.Milliseconds(), BatchSize: req.Limits.BatchSize},
	}
	if req.RTO > 0 {
		s := req.RTO.Seconds()
		est.Limits.RTOSeconds = &s
	}
	if req.Shard.Count > 0 {
		est.Shard = &ShardSummary{Index: req.Shard.Index, Count: req.Shard.Count}
		req.Corpus.Keep = req.Shard.Keep(req.Corpus.Keep)
		if req.WhatIf != nil {
			w := *req.WhatIf
			w.Documents = shardShare(w.Documents, req.Shard.Index, req.Shard.Count)
			req.WhatIf = &w
		}
	}
	return est, req
}

// newModelAccs returns the distinct chunk configurations of the request's
// models and one accumulator per model, pointing at its configuration.
func newModelAccs(req EstimateRequest) ([]chunkConfig, []*modelAcc) {
	var configs []chunkConfig
	accs := make([]*modelAcc, len(req.Models))
	for i, m := range req.Models {
		size, overlap := req.ChunkTokens, req.ChunkOverlap
		acc := &modelAcc{model: m, packer: NewPacker(m.MaxInputsPerRequest, m.MaxTokensPerRequest, req.Limits.BatchSize, req.Limits.TPM),
			shards: newShardAccs(req, m)}
		if size > m.MaxTokensPerInput {
			acc.notes = append(acc.notes, fmt.Sprintf("chunks capped at the model's %d tokens per input", m.MaxTokensPerInput))
			size = m.MaxTokensPerInput
			overlap = min(overlap, size-1)
		}
		if !m.Exact() {
			acc.notes = append(acc.notes, fmt.Sprintf("tokens estimated at %g characters per token; chunks cut with cl100k_base", m.CharsPerToken))
		}
		cfg := chunkConfig{size, overlap, m.MaxTokensPerInput}
		acc.cfg = -1
		for j, c := range configs {
			if c == cfg {
				acc.cfg = j
			}
		}
		if acc.cfg < 0 {
			acc.cfg = len(configs)
			configs = append(configs, cfg)
		}
		accs[i] = acc
	}
	return configs, accs
}

// scanCorpus reads the corpus once (req.Jobs workers chunk each document for
// every configuration; one goroutine adds the results up in order), fills
// est.Corpus and returns how the figures scale to the whole corpus.
func scanCorpus(ctx context.Context, tok tokenizer.Tokenizer, est *Estimate, req EstimateRequest, configs []chunkConfig, accs []*modelAcc) (extrapolation, error) {
	x := extrapolation{fraction: 1, g: 1}
	sc := &docScanner{est: est, accs: accs, exact: allExact(accs), done: req.Done}
	for _, c := range configs {
		ch, err := corpus.NewChunker(tok, c.size, c.overlap, c.maxInput)
		if err != nil {
			return x, err
		}
		sc.chunkers = append(sc.chunkers, ch)
	}
	opts := req.Corpus
	if opts.ReadAhead == 0 {
		// An estimate's results are counts: read far ahead, so that a large
		// file on one worker does not leave the others idle.
		opts.ReadAhead = estimateReadAhead
	}
	src, err := corpus.Open(req.Paths, opts)
	if err != nil {
		return x, err
	}
	defer src.Close()
	if req.PerDocument != nil {
		sc.tsv = bufio.NewWriter(req.PerDocument)
		sc.tsv.WriteString("doc_id\ttokens\tchunks\tbilled_tokens\n")
	}
	started := time.Now()
	stats, err := corpus.ScanStream(ctx, src, req.Jobs, sc.work, sc.emit)
	if err != nil {
		return x, err
	}
	if sc.tsv != nil {
		if err := sc.tsv.Flush(); err != nil {
			return x, fmt.Errorf("writing per-document TSV: %w", err)
		}
	}
	est.Corpus.ReadSeconds = time.Since(started).Seconds()
	est.Corpus.Roots = src.Roots()
	fillCorpusStats(&est.Corpus, stats)
	return sampleExtrapolation(&est.Corpus, req.Corpus.Sample, stats), nil
}

// docScanner is the per-document step of an estimate's scan: work chunks a
// document (concurrently, one call per document), emit adds its result to
// the accumulators (sequentially, in the corpus's order).
type docScanner struct {
	est      *Estimate
	accs     []*modelAcc
	chunkers []*corpus.Chunker
	exact    bool                                            // every model counts exactly: no rune counts needed
	done     func(docID string, index int, text []byte) bool // chunks already checkpointed, or nil
	tsv      *bufio.Writer                                   // the per-document TSV, or nil
}

// emit adds one document's result, or a part of its chunks, to each
// model's accumulator and, once the document is complete, to the corpus
// totals and the TSV.
func (sc *docScanner) emit(r docResult) error {
	for i, acc := range sc.accs {
		acc.addChunks(r.id, r.configs[acc.cfg].chunks)
		if r.part {
			continue
		}
		docChunks, docTokens := acc.endDocument(r)
		if i == 0 && sc.tsv != nil {
			fmt.Fprintf(sc.tsv, "%s\t%d\t%d\t%d\n", escapeTSV(r.id), r.docTokens, docChunks, docTokens)
		}
	}
	if r.part {
		return nil
	}
	sc.est.Corpus.Tokens += int64(r.docTokens)
	if r.empty {
		sc.est.Corpus.EmptyDocuments++
	}
	return nil
}

// fillCorpusStats copies a scan's counts into the estimate's corpus summary,
// with empty lists rather than null ones.
func fillCorpusStats(c *CorpusSummary, stats *corpus.Stats) {
	c.Files = stats.Files
	c.Documents = stats.Documents
	c.Bytes = stats.Bytes
	c.InvalidUTF8Documents = stats.InvalidUTF8Documents
	c.InvalidUTF8Examples = nonNil(stats.InvalidUTF8Examples)
	c.Skipped = stats.Skipped
	if c.Skipped == nil {
		c.Skipped = []corpus.Skip{}
	}
	c.SkippedCount = len(stats.Skipped)
	c.SkippedFiles = stats.SkippedFiles
	c.Excluded, c.DefaultExcluded = stats.Excluded, nonNil(stats.DefaultExcluded)
}

// sampleExtrapolation returns how a scan's figures scale to the whole corpus:
// by 1 without a sample (sample 0 or 1), else by the ratio of the whole
// corpus's bytes to the bytes read. It marks the summary sampled.
func sampleExtrapolation(c *CorpusSummary, sample float64, stats *corpus.Stats) extrapolation {
	x := extrapolation{fraction: 1, g: 1}
	if sample > 0 && sample < 1 {
		x.fraction = sample
		c.Sampled = true
		// A ratio estimate: the bytes of every document are known (the
		// sample skips reading, not listing), so figures scale by the whole
		// corpus's bytes over the bytes read. A few large documents that the
		// sample misses then count by their size instead of being lost.
		x.g = 1 / sample
		if stats.Bytes > 0 {
			x.g = float64(stats.Bytes+stats.UnsampledBytes) / float64(stats.Bytes)
			x.unsampledBytes, x.unsampledSqBytes = float64(stats.UnsampledBytes), stats.UnsampledSqBytes
		}
	}
	c.SampleFraction = x.fraction
	return x
}

// extrapolation is how a sample's figures are scaled to the whole corpus.
type extrapolation struct {
	fraction float64 // the sample's fraction
	g        float64 // the factor figures are multiplied by
	// unsampledBytes and unsampledSqBytes are Σb and Σb² of the sizes of
	// the documents the sample left out (0 without byte counts).
	unsampledBytes, unsampledSqBytes float64
}

func allExact(accs []*modelAcc) bool {
	for _, a := range accs {
		if !a.model.Exact() {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// escapeTSV keeps a doc_id on one TSV field: backslash, tab, newline and
// carriage return are written as \\, \t, \n and \r.
func escapeTSV(s string) string {
	if !strings.ContainsAny(s, "\\\t\n\r") {
		return s
	}
	return strings.NewReplacer("\\", `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// whatIf fills the accumulators for Documents identical documents.
func whatIf(est *Estimate, req EstimateRequest, configs []chunkConfig, accs []*modelAcc) {
	w := req.WhatIf
	est.Corpus.WhatIf = true
	est.Corpus.Roots = []string{}
	est.Corpus.Skipped = []corpus.Skip{}
	est.Corpus.InvalidUTF8Examples = []string{}
	est.Corpus.DefaultExcluded = []string{}
	est.Corpus.SampleFraction = 1
	est.Corpus.Documents = w.Documents
	est.Corpus.Tokens = w.Documents * w.TokensPerDocument
	for _, acc := range accs {
		c := configs[acc.cfg]
		chunks := WindowTokens(w.TokensPerDocument, c.size, c.overlap, c.maxInput)
		var perDoc int64
		for _, t := range chunks {
			perDoc += int64(t)
		}
		acc.chunks = int64(len(chunks)) * w.Documents
		acc.tokens = perDoc * w.Documents
		if c.size == 0 && w.TokensPerDocument > int64(c.maxInput) {
			acc.split = w.Documents
		}
		acc.packer.AddRepeated(chunks, w.Documents)
		acc.whatIfShards(chunks, w.Documents)
	}
}

// WindowTokens returns the token counts of the windows a document of n tokens
// is cut into (what-if estimates assume a window's billed tokens equal its
// size).
func WindowTokens(n int64, size, overlap, maxInput int) []int {
	if n <= 0 {
		return nil
	}
	if size == 0 {
		if n <= int64(maxInput) {
			return []int{int(n)}
		}
		size, overlap = maxInput, 0
	}
	var out []int
	for start := int64(0); ; start += int64(size - overlap) {
		end := min(start+int64(size), n)
		out = append(out, int(end-start))
		if end == n {
			return out
		}
	}
}

// finish turns accumulators into per-model estimates: cost, duration,
// bottleneck, RTO verdict, recommendations and (sampled) intervals.
func finish(est *Estimate, req EstimateRequest, accs []*modelAcc, x extrapolation) {
	scale := func(v int64) int64 { return int64(math.Round(float64(v) * x.g)) }
	for _, acc := range accs {
		m := acc.model
		me := ModelEstimate{
			Model: m.Name, Provider: m.Provider, TokenCount: m.TokenCount(),
			ChunkTokens:     configsSize(req.ChunkTokens, m),
			Chunks:          scale(acc.chunks),
			Tokens:          scale(acc.tokens),
			SplitDocuments:  scale(acc.split),
			Requests:        scale(acc.packer.Requests()),
			ReusedChunks:    acc.reused,
			ReusedTokens:    acc.reusedTokens,
			PricePer1M:      m.PricePer1M,
			PriceAsOf:       m.AsOf,
			PriceSource:     m.Source,
			Notes:           acc.notes,
			Recommendations: []string{},
		}
		if !m.Exact() {
			me.CharsPerToken = m.CharsPerToken
		}
		me.CostUSD = pricing.Cost(me.Tokens, m.PricePer1M)
		if m.BatchPricePer1M != nil {
			bp := *m.BatchPricePer1M
			bc := pricing.Cost(me.Tokens, bp)
			me.BatchPricePer1M, me.BatchCostUSD = &bp, &bc
			if w := m.BatchWindowDuration(); w > 0 {
				s := w.Seconds()
				me.BatchWindowSec = &s
			}
		}
		me.Terms, me.Bottleneck, me.DurationSeconds = Duration(me.Tokens, me.Requests, req.Limits)
		me.Duration = formatDuration(me.DurationSeconds)
		applyRestore(&me, req, m.DefaultDimensions)
		if me.Restore != nil {
			me.Restore.Basis = field.Text(me.Restore.Basis, req.FieldName)
		}
		if est.Corpus.Sampled {
			me.Intervals = intervals(acc, x, me)
		}
		if req.RTO > 0 {
			ok := me.DurationSeconds <= req.RTO.Seconds()
			me.MeetsRTO = &ok
			if me.BatchCostUSD != nil && req.Batch.P90 > 0 {
				o := req.Batch
				o.RTO = req.RTO
				p := PlanBatchSplit(me, o)
				me.BatchPlan = &p
			}
		}
		me.Sharded = shardedEstimate(acc, req, scale)
		me.Recommendations = append(recommend(me, req), recommendRestore(me, req)...)
		for i, r := range me.Recommendations {
			me.Recommendations[i] = field.Text(r, req.FieldName) // no names in them: every brace is a placeholder
		}
		est.Estimates = append(est.Estimates, me)
	}
	recommendModels(est, req)
}

// recommendModels adds the model-level advice once every model is estimated:
// another estimated model that meets a missed RTO (faster), and the cheapest
// exact model that bills the same tokens (cheaper). A switch of model changes
// the vector space, so the advice says queries must be re-embedded too.
func recommendModels(est *Estimate, req EstimateRequest) {
	const caveat = "a different model: queries must be embedded with it too"
	for i := range est.Estimates {
		me := &est.Estimates[i]
		if me.MeetsRTO != nil && !*me.MeetsRTO {
			best := -1
			for j, o := range est.Estimates {
				if j != i && o.MeetsRTO != nil && *o.MeetsRTO && (best < 0 || o.CostUSD < est.Estimates[best].CostUSD) {
					best = j
				}
			}
			if best >= 0 {
				o := est.Estimates[best]
				me.Recommendations = append(me.Recommendations, fmt.Sprintf("faster: %s meets the RTO in %s for $%s (%s)", o.Model, o.Duration, o.CostUSD, caveat))
			}
		}
		if me.TokenCount != "exact" {
			continue
		}
		var cheapest *pricing.Model
		for k, a := range req.Alternatives {
			if a.Exact() && a.Name != me.Model && a.PricePer1M < me.PricePer1M && (cheapest == nil || a.PricePer1M < cheapest.PricePer1M) {
				cheapest = &req.Alternatives[k]
			}
		}
		if cheapest != nil {
			me.Recommendations = append(me.Recommendations, fmt.Sprintf("cheaper: %s would cost $%s for the same %d tokens (%s)",
				cheapest.Name, pricing.Cost(me.Tokens, cheapest.PricePer1M), me.Tokens, caveat))
		}
	}
}

func configsSize(size int, m pricing.Model) int {
	if size > m.MaxTokensPerInput {
		return m.MaxTokensPerInput
	}
	return size
}

// Bottleneck names, in the order they are preferred on a tie.
const (
	BottleneckTPM     = "tpm"
	BottleneckRPM     = "rpm"
	BottleneckLatency = "latency"
	BottleneckNone    = "none"
)

// Duration returns the terms T/TPM, R/RPM and R×latency/concurrency in
// seconds, the largest term's name (the bottleneck) and its value. A limit of
// 0 means unlimited and contributes no term; concurrency 0 counts as 1.
func Duration(tokens, requests int64, l Limits) (DurationTerms, string, float64) {
	var t DurationTerms
	if l.TPM > 0 {
		t.TPMSeconds = float64(tokens) * 60 / float64(l.TPM)
	}
	if l.RPM > 0 {
		t.RPMSeconds = float64(requests) * 60 / float64(l.RPM)
	}
	conc := max(l.Concurrency, 1)
	t.LatencySeconds = float64(requests) * l.Latency.Seconds() / float64(conc)
	name, best := BottleneckNone, 0.0
	for _, c := range []struct {
		name string
		v    float64
	}{{BottleneckTPM, t.TPMSeconds}, {BottleneckRPM, t.RPMSeconds}, {BottleneckLatency, t.LatencySeconds}} {
		if c.v > best {
			name, best = c.name, c.v
		}
	}
	return t, name, best
}

// intervals returns 95% intervals for a sampled estimate. With byte counts
// the total is the ratio estimate Σx + R·Bu (R = Σx/Σb over the documents
// read, Bu the bytes left out). Taking each document's residual e = x − R·b to
// have a variance proportional to b², σ² = Σe²/Σb² from the documents read,
// its error Σ_u e − (R̂−R)·Bu has variance σ²·(Σ_u b² + Bu²·Σb²/(Σb)²), so a
// large document left out widens the interval by its size. Documents of one
// corpus differ in tokens per byte (markup, code, prose), so the variance
// used is the larger of that and the Horvitz–Thompson (1−f)/f²·Σx², the only
// one without byte counts: on the sample corpus, whose largest file holds 30%
// of the bytes at 1.6 times the usual tokens per byte, 38 of 40 seeds cover
// the full value at f = 0.5 and 37 of 40 at f = 0.1. Requests and cost follow
// the tokens' relative error.
func intervals(acc *modelAcc, x extrapolation, me ModelEstimate) *Intervals {
	ci := func(total, sumX, sumSq, sumXB float64) Interval {
		f := x.fraction
		v := (1 - f) / (f * f) * sumSq
		if acc.sumBytes > 0 && acc.sumSqBytes > 0 && x.unsampledBytes > 0 {
			r := sumX / acc.sumBytes
			sigma2 := math.Max(0, sumSq-2*r*sumXB+r*r*acc.sumSqBytes) / acc.sumSqBytes
			v = max(v, sigma2*(x.unsampledSqBytes+x.unsampledBytes*x.unsampledBytes*acc.sumSqBytes/(acc.sumBytes*acc.sumBytes)))
		}
		half := 1.96 * math.Sqrt(v)
		return Interval{Low: math.Max(0, math.Floor(total-half)), High: math.Ceil(total + half)}
	}
	tok := ci(float64(me.Tokens), float64(acc.tokens), acc.sumSqTokens, acc.sumTokensBytes)
	rel := func(x float64) Interval {
		if me.Tokens == 0 {
			return Interval{x, x}
		}
		return Interval{Low: math.Floor(x * tok.Low / float64(me.Tokens)), High: math.Ceil(x * tok.High / float64(me.Tokens))}
	}
	cost := rel(float64(me.CostUSD))
	return &Intervals{
		Tokens:   tok,
		Chunks:   ci(float64(me.Chunks), float64(acc.chunks), acc.sumSqChunks, acc.sumChunksBytes),
		Requests: rel(float64(me.Requests)),
		CostUSD:  Interval{Low: cost.Low / 1e6, High: cost.High / 1e6},
	}
}

// recommend says what would meet the RTO when the estimate misses it, and
// points at cheaper options.
func recommend(me ModelEstimate, req EstimateRequest) []string {
	out := []string{}
	if req.RTO <= 0 || me.MeetsRTO == nil {
		return out
	}
	rto := req.RTO.Seconds()
	if !*me.MeetsRTO {
		l := req.Limits
		if me.Terms.TPMSeconds > rto && l.TPM > 0 {
			need := int64(math.Ceil(float64(me.Tokens) * 60 / rto))
			keys := int(math.Ceil(me.Terms.TPMSeconds / rto))
			out = append(out, fmt.Sprintf("raise TPM to at least %d (now %d): %d API keys or projects at the current limits", need, l.TPM, keys))
		}
		if me.Terms.RPMSeconds > rto && l.RPM > 0 {
			need := int64(math.Ceil(float64(me.Requests) * 60 / rto))
			keys := int(math.Ceil(me.Terms.RPMSeconds / rto))
			out = append(out, fmt.Sprintf("raise RPM to at least %d (now %d): %d API keys or projects at the current limits", need, l.RPM, keys))
		}
		if n := shardsNeeded(me.Terms, rto); n > 1 {
			out = append(out, shardAdvice(n))
		}
		if me.Terms.LatencySeconds > rto {
			need := int(math.Ceil(float64(me.Requests) * l.Latency.Seconds() / rto))
			out = append(out, fmt.Sprintf("raise {concurrency} to at least %d (now %d)", need, max(l.Concurrency, 1)))
		}
		if me.BatchCostUSD != nil && me.BatchWindowSec != nil {
			verdict := "but its window exceeds the RTO"
			if *me.BatchWindowSec <= rto {
				verdict = "and its window fits the RTO"
			}
			out = append(out, fmt.Sprintf("the batch API costs $%s instead of $%s and completes within %s, %s", me.BatchCostUSD, me.CostUSD, formatDuration(*me.BatchWindowSec), verdict))
		}
	} else if me.BatchCostUSD != nil && me.BatchWindowSec != nil && *me.BatchWindowSec <= rto && *me.BatchCostUSD < me.CostUSD {
		out = append(out, fmt.Sprintf("the RTO allows the batch API: $%s instead of $%s (completes within %s)", me.BatchCostUSD, me.CostUSD, formatDuration(*me.BatchWindowSec)))
	}
	return out
}

// formatDuration renders seconds as e.g. "2h13m", "45s" or "0.4s".
func formatDuration(sec float64) string {
	if sec < 10 {
		return strconv.FormatFloat(sec, 'f', 1, 64) + "s"
	}
	d := time.Duration(math.Round(sec)) * time.Second
	h := int64(d / time.Hour)
	m := int64(d % time.Hour / time.Minute)
	s := int64(d % time.Minute / time.Second)
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
