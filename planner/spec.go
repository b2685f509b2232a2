package planner

import (
	"errors"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/pricing"
)

// RebuildSpec is one rebuild job: what to read, how to chunk, which model,
// where to checkpoint, and the limits it runs under.
type RebuildSpec struct {
	Paths  []string
	Corpus corpus.Options
	Model  pricing.Model
	// Dimensions of the vectors; 0 means the model's default.
	Dimensions   int
	ChunkTokens  int
	ChunkOverlap int
	// Limits.Concurrency is the number of embed workers; BatchSize caps inputs
	// per request; TPM caps tokens per request (as the estimate assumes).
	// RPM and TPM themselves are enforced by the embedder stack.
	Limits Limits
	// PartRows and FlushInterval bound what a crash can lose (the RPO).
	PartRows      int
	FlushInterval time.Duration
	// Budget caps, in micro-dollars, the spend of the whole checkpoint over
	// every run (its spend ledger, with requests cut off by a kill counted
	// as spent); 0 means none. Running again with the same budget does not
	// spend it again.
	Budget pricing.Micros
	// Force resumes into a checkpoint whose manifest disagrees on chunking.
	Force bool
	// Deep checks every row of the existing checkpoint before resuming
	// (verify --deep's checks); rows that fail are embedded again, parts
	// that fail as a whole are moved aside. It reads every byte.
	Deep bool
	// Shard selects the documents of one shard; Count 0 means all.
	Shard checkpoint.Shard
	// Jobs is the number of reader/tokenizer workers; 0 = GOMAXPROCS.
	Jobs int
	// CheckCorpus, when set, sees what the plan read before anything is
	// embedded; an error stops the rebuild (the CLI refuses an empty corpus).
	CheckCorpus func(CorpusSummary) error
}

// dimensions returns the vector length the job expects.
func (s *RebuildSpec) dimensions() int {
	if s.Dimensions > 0 {
		return s.Dimensions
	}
	return s.Model.DefaultDimensions
}

// Validate checks the spec, once for the CLI and the API. Its errors are
// [FieldError]s, joined, naming fields in snake_case.
func (s *RebuildSpec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErrorf(field, format, args...)) }
	if len(s.Paths) == 0 {
		add("paths", "no corpus path given")
	}
	switch {
	case s.Dimensions < 0:
		add("dimensions", "{dimensions} must not be negative")
	case s.Dimensions > 0 && s.Model.MaxDimensions > 0 && s.Dimensions > s.Model.MaxDimensions:
		add("dimensions", "{dimensions} %d exceeds %s's %d", s.Dimensions, s.Model.Name, s.Model.MaxDimensions)
	case s.Dimensions > 0 && s.Model.FixedDimensions && s.Dimensions != s.Model.DefaultDimensions:
		add("dimensions", "{dimensions}: %s only returns %d dimensions", s.Model.Name, s.Model.DefaultDimensions)
	}
	if s.Limits.BatchSize > s.Model.MaxInputsPerRequest && s.Model.MaxInputsPerRequest > 0 {
		add("batch_size", "{batch_size} %d is more than %s's %d inputs per request", s.Limits.BatchSize, s.Model.Name, s.Model.MaxInputsPerRequest)
	}
	if s.PartRows < 0 {
		add("part_rows", "{part_rows} must not be negative")
	}
	if s.FlushInterval < 0 {
		add("flush_interval", "{flush_interval} must not be negative")
	}
	if s.Budget < 0 {
		add("budget_usd", "{budget_usd} must not be negative")
	}
	if err := s.Shard.Validate(); err != nil {
		errs = append(errs, NewFieldError("shard", err))
	}
	// The estimate checks the limits (concurrency among them) and the
	// chunking; the missing corpus path is reported above, in a rebuild's words.
	est := s.estimateRequest()
	if err := est.validate(false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// estimateRequest is the estimate of exactly this job (same corpus, chunking
// and packing), used to plan it and to predict it.
func (s *RebuildSpec) estimateRequest() EstimateRequest {
	opts := s.Corpus
	opts.Keep = s.Shard.Keep(opts.Keep)
	return EstimateRequest{
		Paths: s.Paths, Corpus: opts, Models: []pricing.Model{s.Model},
		ChunkTokens: s.ChunkTokens, ChunkOverlap: s.ChunkOverlap, Limits: s.Limits, Jobs: s.Jobs,
	}
}

// Manifest is the checkpoint manifest of the job.
func (s *RebuildSpec) Manifest() checkpoint.Manifest {
	enc := s.Model.Encoding
	if enc == "" {
		enc = tokenizer.EncodingCL100K
	}
	roots, err := corpus.CanonicalRoots(s.Paths)
	if err != nil {
		roots = s.Paths // corpus.Open reports the path that does not resolve
	}
	filters := s.Corpus.Filters
	filters.Exclude, filters.Include = nonNil(filters.Exclude), nonNil(filters.Include)
	return checkpoint.Manifest{
		Model: s.Model.Name, Dimensions: s.dimensions(), Encoding: enc,
		Chunking:  checkpoint.Chunking{ChunkTokens: s.ChunkTokens, ChunkOverlap: s.ChunkOverlap},
		PlainText: s.Corpus.PlainText, CorpusRoots: roots, Filters: filters, Shard: s.Shard,
		ReembedVersion: Version,
	}
}

// Version is the reembed version stamped into the manifests this process
// writes (reembed_version, informational). The command sets it at start.
var Version = ""
