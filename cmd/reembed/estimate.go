package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// stringList is a flag that may be repeated or given as a comma-separated list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// corpusFlags are the flags every command that reads a corpus shares.
type corpusFlags struct {
	plainText    bool
	strict       bool
	textField    string
	idField      string
	chunkTokens  int
	chunkOverlap int
	jobs         int
	filter       filterFlags
	filtersGiven bool // set by the commands that read a checkpoint's filters
	allowEmpty   bool
}

func (c *corpusFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.plainText, "plain-text", false, "read every file as plain text, with no HTML/JSONL/CSV/Parquet extraction")
	fs.BoolVar(&c.strict, "strict", false, "fail (exit 2) instead of skipping a binary or unreadable file or record")
	fs.StringVar(&c.textField, "text-field", "text", "JSONL field, CSV column or Parquet column holding the text")
	fs.StringVar(&c.idField, "id-field", "id", "JSONL field, CSV column or Parquet column holding a record's id")
	fs.IntVar(&c.chunkTokens, "chunk-tokens", planner.DefaultChunkTokens, "tokens per chunk; 0 = one input per document, split at the model's input limit")
	fs.IntVar(&c.chunkOverlap, "chunk-overlap", planner.DefaultChunkOverlap, "tokens shared by consecutive chunks (must be < --chunk-tokens; 0 with --chunk-tokens 0)")
	fs.IntVar(&c.jobs, "jobs", 0, "reader and tokenizer workers (default GOMAXPROCS)")
	c.filter.register(fs)
	fs.BoolVar(&c.allowEmpty, "allow-empty", false, "accept a corpus that yields no documents or whose files were mostly skipped (otherwise a warning and exit 2)")
}

func (c *corpusFlags) options() corpus.Options {
	return corpus.Options{PlainText: c.plainText, Strict: c.strict, TextField: c.textField, IDField: c.idField, Filters: c.filter.filters()}
}

// childArgs are the flags that make a child rebuild read and cut the corpus
// exactly as these flags do (the drills' children).
func (c *corpusFlags) childArgs() []string {
	args := []string{"--chunk-tokens", strconv.Itoa(c.chunkTokens), "--chunk-overlap", strconv.Itoa(c.chunkOverlap),
		"--text-field", c.textField, "--id-field", c.idField}
	if c.plainText {
		args = append(args, "--plain-text")
	}
	return append(args, c.filter.args()...)
}

// setOverlapDefault makes --chunk-tokens 0 imply --chunk-overlap 0 unless the
// overlap was given explicitly.
func (c *corpusFlags) setOverlapDefault(fs *flag.FlagSet) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "chunk-overlap" })
	if !given && c.chunkTokens == 0 {
		c.chunkOverlap = 0
	}
}

// loadCatalog returns the built-in catalog plus the --pricing file, if any.
func loadCatalog(pricingFile string) (*pricing.Catalog, error) {
	cat, err := pricing.Builtin()
	if err != nil {
		return nil, err
	}
	if pricingFile != "" {
		if err := cat.LoadOverrides(pricingFile); err != nil {
			return nil, &usageError{fmt.Errorf("--pricing: %w", err)}
		}
	}
	return cat, nil
}

// corpusPaths returns the paths, or extracts the bundled sample when none is
// given; cleanup removes the extracted copy.
func corpusPaths(args []string) (paths []string, cleanup func(), err error) {
	if len(args) > 0 {
		for _, p := range args {
			if _, err := os.Stat(p); err != nil {
				return nil, nil, usagef("corpus path %q: %v", p, errors.Unwrap(err))
			}
		}
		return args, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "reembed-sample-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating a temporary directory for the sample corpus: %w", err)
	}
	root, err := sample.Extract(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return []string{root}, func() { os.RemoveAll(dir) }, nil
}

// estimateFlags are estimate's flags.
type estimateFlags struct {
	cf            corpusFlags
	models        stringList
	pricingFile   string
	perDoc        string
	format        string
	rpm, tpm      int
	concurrency   int
	batchSize     int
	latency       time.Duration
	rto           time.Duration
	sampleF       float64
	seed          int64
	documents     int64
	tokensPer     int64
	ckpt          string
	corpusChanged bool
	shard         string
	shards        int
	failOnRTO     bool
	batchPlan     planner.AutoOptions
	batchTier     int
	restore       restoreEstimateFlags // estimate_restore.go
}

func (f *estimateFlags) register(fs *flag.FlagSet) {
	f.cf.register(fs)
	f.restore.register(fs)
	fs.Var(&f.models, "model", "embedding model; repeat or comma-separate for several, or 'all' (default text-embedding-3-small)")
	fs.StringVar(&f.pricingFile, "pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	fs.StringVar(&f.perDoc, "per-document", "", "write a TSV of doc_id, tokens, chunks, billed_tokens, model, token_count (exact or estimated) per document to FILE (- : stdout, and the report goes to stderr)")
	fs.StringVar(&f.format, "format", "table", "output format: table, json or csv")
	fs.IntVar(&f.rpm, "rpm", planner.DefaultRPM, "requests per minute allowed (0 = unlimited)")
	fs.IntVar(&f.tpm, "tpm", planner.DefaultTPM, "tokens per minute allowed (0 = unlimited)")
	fs.IntVar(&f.concurrency, "concurrency", planner.DefaultConcurrency, "requests in flight at once")
	fs.DurationVar(&f.latency, "latency", planner.DefaultLatency, "expected latency of one request")
	fs.DurationVar(&f.rto, "rto", 0, "recovery time objective, e.g. 4h (0 = none)")
	fs.IntVar(&f.batchSize, "batch-size", 0, "inputs per request (default: the model's maximum)")
	registerBatchPlanFlags(fs, &f.batchPlan, &f.batchTier)
	fs.Float64Var(&f.sampleF, "sample", 0, "read only this fraction of documents, e.g. 0.05, and extrapolate with a 95% interval")
	fs.Int64Var(&f.seed, "seed", 1, "seed choosing the --sample documents")
	fs.Int64Var(&f.documents, "documents", 0, "what-if: number of documents (with --tokens-per-document; reads no corpus)")
	fs.Int64Var(&f.tokensPer, "tokens-per-document", 0, "what-if: tokens per document")
	fs.StringVar(&f.ckpt, "checkpoint", "", "price only the chunks this rebuild checkpoint (directory or s3://, gs://, azblob:// URL) lacks, and report the reused ones; its model, chunking and corpus are the defaults, and other ones are refused")
	fs.BoolVar(&f.corpusChanged, "corpus-changed", false, "with --checkpoint: price PATH or filters that differ from the corpus the checkpoint records")
	fs.StringVar(&f.shard, "shard", "", "estimate only shard i of N (i/N: the documents rebuild --shard i/N embeds)")
	fs.IntVar(&f.shards, "shards", 0, "add per-shard figures for N shards, each on its own key with these limits, and their total")
	fs.BoolVar(&f.failOnRTO, "fail-on-rto-miss", false, "exit 6 when a model's rebuild would not meet --rto (the report is printed first)")
}

// estimateRun is one estimate command between its flags and its report:
// the request it builds and what it opened (closed by close, last first).
type estimateRun struct {
	e       *env
	fs      *flag.FlagSet
	f       *estimateFlags
	given   map[string]bool // flags given on the command line
	ck      *estimateCheckpoint
	ms      []pricing.Model
	req     planner.EstimateRequest
	report  io.Writer // where the report goes (stderr when the TSV takes stdout)
	closers []func()
}

func runEstimate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "estimate", "estimate [flags] [PATH...]\n\nPrices and times a rebuild of the corpus at PATH (files or directories; default: the bundled\nsample corpus), or of a what-if corpus (--documents N --tokens-per-document T).")
	var f estimateFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := &estimateRun{e: e, fs: fs, f: &f, given: map[string]bool{}, report: e.stdout}
	defer r.close()
	for _, step := range []func(context.Context) error{r.checkFlags, r.openCheckpoint, r.resolveModels, r.checkVerdictFlags, r.buildRequest, r.selectCorpus, r.openOutputs} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	est, err := r.estimate(ctx)
	if err != nil {
		return err
	}
	return r.write(est)
}

// close closes what the run opened, last first.
func (r *estimateRun) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// checkFlags checks --format and notes which flags were given.
func (r *estimateRun) checkFlags(context.Context) error {
	f := r.f
	f.cf.setOverlapDefault(r.fs)
	if f.format != "table" && f.format != "json" && f.format != "csv" {
		return usagef("--format %q: want table, json or csv", f.format)
	}
	r.fs.Visit(func(fl *flag.Flag) { r.given[fl.Name] = true })
	return nil
}

// checkVerdictFlags checks --fail-on-rto-miss and --sample.
func (r *estimateRun) checkVerdictFlags(context.Context) error {
	f := r.f
	if f.failOnRTO && f.rto <= 0 {
		return usagef("--fail-on-rto-miss needs --rto, e.g. --rto 4h")
	}
	if r.given["sample"] && (f.sampleF <= 0 || f.sampleF > 1) {
		return usagef("--sample %v: want a fraction in (0, 1], e.g. 0.05", f.sampleF)
	}
	return nil
}

// openCheckpoint opens --checkpoint, if given, and adopts its model and
// chunking as defaults.
func (r *estimateRun) openCheckpoint(ctx context.Context) error {
	if r.f.ckpt == "" {
		return nil
	}
	c, err := openEstimateCheckpoint(ctx, r.f.ckpt)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, func() { c.close() })
	if err := c.adopt(&r.f.models, &r.f.cf, r.given); err != nil {
		return err
	}
	r.ck = c
	return nil
}

// resolveModels looks the models up in the catalog (and --pricing).
func (r *estimateRun) resolveModels(context.Context) error {
	if len(r.f.models) == 0 {
		r.f.models = stringList{pricing.DefaultModel}
	}
	cat, err := loadCatalog(r.f.pricingFile)
	if err != nil {
		return err
	}
	if r.ms, err = cat.Resolve(r.f.models); err != nil {
		return usagef("--model: %v", err)
	}
	if err := checkBatchSize(r.f.batchSize, r.ms...); err != nil {
		return err
	}
	for _, m := range cat.Models() {
		if m.Exact() {
			r.req.Alternatives = append(r.req.Alternatives, m)
		}
	}
	return nil
}

// buildRequest fills the request from the flags, but for its corpus.
func (r *estimateRun) buildRequest(ctx context.Context) error {
	f := r.f
	r.req = planner.EstimateRequest{
		Corpus: f.cf.options(), Models: r.ms,
		ChunkTokens: f.cf.chunkTokens, ChunkOverlap: f.cf.chunkOverlap,
		Limits: planner.Limits{RPM: f.rpm, TPM: f.tpm, Concurrency: f.concurrency, Latency: f.latency, BatchSize: f.batchSize},
		RTO:    f.rto, Jobs: f.cf.jobs, Alternatives: r.req.Alternatives, Batch: f.batchPlan,
		FieldName: flagName,
	}
	if err := checkBatchPlanFlags(&r.req.Batch, f.batchTier); err != nil {
		return err
	}
	r.req.Corpus.Sample, r.req.Corpus.Seed = f.sampleF, f.seed
	var err error
	if r.req.Restore, err = f.restore.target(ctx, r.e, r.ms[0].DefaultDimensions); err != nil {
		return err
	}
	si, sn, err := parseShard(f.shard)
	if err != nil {
		return err
	}
	r.req.Shard, r.req.Shards = checkpoint.Shard{Index: si, Count: sn}, f.shards
	return nil
}

// selectCorpus sets what is read: a what-if, the corpus the checkpoint
// records, the PATHs, or the bundled sample; then validates the request.
func (r *estimateRun) selectCorpus(context.Context) error {
	args := r.fs.Args()
	switch {
	case r.given["documents"] || r.given["tokens-per-document"]:
		r.req.WhatIf = &planner.WhatIf{Documents: r.f.documents, TokensPerDocument: r.f.tokensPer}
		r.req.Paths = args
	case r.ck != nil && r.ck.manifest != nil:
		filter := r.f.cf.filter
		paths, filters, err := checkpointCorpus(r.e.stderr, args, r.ck.manifest, filter.filters(), filter.given(r.fs), r.f.corpusChanged)
		if err != nil {
			return err
		}
		r.req.Paths, r.req.Corpus.Filters = paths, filters
	default:
		paths, cleanup, err := corpusPaths(args)
		if err != nil {
			return err
		}
		r.closers = append(r.closers, cleanup)
		if len(args) == 0 {
			fmt.Fprintln(r.e.stderr, "reembed: using the bundled sample corpus (give a PATH to estimate yours)")
		}
		r.req.Paths = paths
	}
	if err := r.req.Validate(); err != nil {
		return usageOfInvalid(err)
	}
	return nil
}

// openOutputs opens the per-document TSV and hands the checkpoint's keys to
// the request.
func (r *estimateRun) openOutputs(context.Context) error {
	if r.f.perDoc != "" {
		w, err := perDocumentWriter(r.e, r.f.perDoc, r.ms[0])
		if err != nil {
			return err
		}
		r.closers = append(r.closers, func() { w.Close() })
		r.req.PerDocument = w
		if r.f.perDoc == "-" {
			r.report = r.e.stderr
		}
	}
	if r.ck != nil {
		if len(r.ms) != 1 {
			return usagef("--checkpoint: give one --model, the checkpoint's")
		}
		r.req.Done = r.ck.done
	}
	return nil
}

// estimate runs the planner, with the read progress on a terminal.
func (r *estimateRun) estimate(ctx context.Context) (*planner.Estimate, error) {
	tok, err := tokenizer.Default()
	if err != nil {
		return nil, err
	}
	req := r.req
	var progress *readProgress
	if req.WhatIf == nil {
		if progress = startReadProgress(r.e, req.Paths); progress != nil {
			req.Corpus.Keep = progress.keep(req.Corpus.Keep)
			req.PerDocument = progress.perDocument(req.PerDocument)
		}
	}
	est, err := planner.Run(ctx, tok, req)
	progress.End()
	if err != nil {
		if errors.Is(err, corpus.ErrSkipped) || errors.Is(err, corpus.ErrCorpusPath) {
			return nil, &usageError{err}
		}
		return nil, fmt.Errorf("estimating: %w", err)
	}
	if len(r.fs.Args()) == 0 && req.WhatIf == nil && (r.ck == nil || r.ck.manifest == nil) {
		est.Corpus.Roots = []string{sample.Name}
	}
	if r.ck != nil {
		if warn := r.ck.match().Warning(); warn != "" {
			fmt.Fprintf(r.e.stderr, "reembed: warning: %s\n", warn)
			for i := range est.Estimates {
				est.Estimates[i].Notes = append(est.Estimates[i].Notes, warn)
			}
		}
	}
	return est, nil
}

// write prints the report, then returns the verdicts a runbook gates on:
// an empty corpus (exit 2) and, with --fail-on-rto-miss, a missed RTO.
func (r *estimateRun) write(est *planner.Estimate) error {
	if err := writeEstimate(r.report, est, r.f.format); err != nil {
		return err
	}
	if !r.f.cf.allowEmpty {
		if err := emptyCorpusError(est.Corpus, r.req.Shard.Count > 1); err != nil {
			return err
		}
	}
	if r.f.failOnRTO {
		return rtoVerdict(est)
	}
	return nil
}

// exitRTOMiss is estimate --fail-on-rto-miss's exit code when a model would
// not meet --rto (README "Exit codes").
const exitRTOMiss = 6

// rtoVerdict returns an exit-6 error naming the models that miss the RTO.
func rtoVerdict(est *planner.Estimate) error {
	var miss []string
	for _, m := range est.Estimates {
		if m.MeetsRTO != nil && !*m.MeetsRTO {
			miss = append(miss, fmt.Sprintf("%s (%s)", m.Model, m.Duration))
		}
	}
	if len(miss) == 0 {
		return nil
	}
	return &exitCodeError{exitRTOMiss, fmt.Errorf("RTO missed by %s", strings.Join(miss, ", "))}
}

// perDocumentWriter opens the per-document TSV (- : stdout) and adds the
// model and token_count columns to its lines.
func perDocumentWriter(e *env, path string, m pricing.Model) (io.WriteCloser, error) {
	var w io.WriteCloser = nopCloser{e.stdout}
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return nil, usagef("--per-document: %v", err)
		}
		w = f
	}
	cols := &tsvColumns{w: w, names: "model\ttoken_count", values: m.Name + "\t" + m.TokenCount()}
	return struct {
		io.Writer
		io.Closer
	}{cols, w}, nil
}

func writeEstimate(w io.Writer, est *planner.Estimate, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(est)
	case "csv":
		return writeEstimateCSV(w, est)
	}
	return writeEstimateTable(w, est)
}

func writeEstimateCSV(w io.Writer, est *planner.Estimate) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"model", "provider", "token_count", "documents", "chunks", "tokens", "requests", "cost_usd", "batch_cost_usd",
		"duration_seconds", "bottleneck", "meets_rto", "price_per_1m", "batch_price_per_1m", "price_as_of", "sampled"})
	for _, m := range est.Estimates {
		cw.Write([]string{m.Model, m.Provider, m.TokenCount, strconv.FormatInt(est.Corpus.Documents, 10),
			strconv.FormatInt(m.Chunks, 10), strconv.FormatInt(m.Tokens, 10), strconv.FormatInt(m.Requests, 10),
			m.CostUSD.String(), optMicros(m.BatchCostUSD), strconv.FormatFloat(m.DurationSeconds, 'f', 1, 64),
			m.Bottleneck, optBool(m.MeetsRTO), m.PricePer1M.String(), optMicros(m.BatchPricePer1M), m.PriceAsOf,
			strconv.FormatBool(est.Corpus.Sampled)})
	}
	cw.Flush()
	return cw.Error()
}

func optMicros(m *pricing.Micros) string {
	if m == nil {
		return ""
	}
	return m.String()
}

func optBool(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

func writeEstimateTable(w io.Writer, est *planner.Estimate) error {
	writeCorpusSummary(w, est)
	l := est.Limits
	fmt.Fprintf(w, "Chunking: %s, overlap %s.  Limits: %s RPM, %s TPM, concurrency %d, latency %s",
		plural(int64(est.Chunking.ChunkTokens), "token", "tokens"), commas(int64(est.Chunking.ChunkOverlap)),
		commas(int64(l.RPM)), commas(int64(l.TPM)), l.Concurrency, humanDuration(time.Duration(l.LatencyMS)*time.Millisecond))
	if l.RTOSeconds != nil {
		fmt.Fprintf(w, ", RTO %s", humanDuration(time.Duration(*l.RTOSeconds*float64(time.Second))))
	}
	fmt.Fprintf(w, "\n\n")
	var amounts []pricing.Micros
	for _, m := range est.Estimates {
		amounts = append(amounts, m.CostUSD)
		if m.BatchCostUSD != nil {
			amounts = append(amounts, *m.BatchCostUSD)
		}
	}
	dec := moneyDecimals(amounts...)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "MODEL\tTOKENS\tCHUNKS\tREQUESTS\tCOST\tBATCH COST\tDURATION\tBOTTLENECK\tMEETS RTO\t\n")
	for _, m := range est.Estimates {
		name := m.Model
		if m.TokenCount == "estimated" {
			name += " (est.)"
		}
		batch := "-"
		if m.BatchCostUSD != nil {
			batch = money(*m.BatchCostUSD, dec)
		}
		rto := "-"
		if m.MeetsRTO != nil {
			rto = map[bool]string{true: "yes", false: "NO"}[*m.MeetsRTO]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, commas(m.Tokens), commas(m.Chunks), commas(m.Requests),
			money(m.CostUSD, dec), batch, m.Duration, m.Bottleneck, rto)
	}
	tw.Flush()
	for _, m := range est.Estimates {
		writeModelNotes(w, m)
	}
	fmt.Fprintln(w)
	return nil
}

// writeCorpusSummary prints what was read (or assumed).
func writeCorpusSummary(w io.Writer, est *planner.Estimate) {
	c := est.Corpus
	if c.WhatIf {
		fmt.Fprintf(w, "What-if: %s, %s in all\n", plural(c.Documents, "document", "documents"), plural(c.Tokens, "token", "tokens"))
	} else {
		fmt.Fprintf(w, "Corpus: %s\n", strings.Join(c.Roots, ", "))
		fmt.Fprintf(w, "  %s, %s, %.1f MB, %s (cl100k_base, exact), read in %.2fs\n",
			plural(int64(c.Files), "file", "files"), plural(c.Documents, "document", "documents"), float64(c.Bytes)/1e6,
			plural(c.Tokens, "token", "tokens"), c.ReadSeconds)
		if c.Sampled {
			fmt.Fprintf(w, "  sampled: %.4g of documents read; figures extrapolated, 95%% intervals below\n", c.SampleFraction)
		}
		if c.InvalidUTF8Documents > 0 {
			fmt.Fprintf(w, "  %s held invalid UTF-8 (each bad sequence counted as U+FFFD), e.g. %s\n",
				plural(c.InvalidUTF8Documents, "document", "documents"), strings.Join(c.InvalidUTF8Examples, ", "))
		}
		if c.SkippedCount > 0 {
			fmt.Fprintf(w, "  %s\n", skippedSummary(c.SkippedCount, c.Skipped))
		}
		if c.Excluded > 0 {
			fmt.Fprintf(w, "  %s left out by filters", plural(int64(c.Excluded), "file", "files"))
			if len(c.DefaultExcluded) > 0 {
				fmt.Fprintf(w, ", by default: %s (--no-default-excludes reads them)", strings.Join(c.DefaultExcluded, ", "))
			}
			fmt.Fprintln(w)
		}
	}
	if s := est.Shard; s != nil {
		fmt.Fprintf(w, "  shard %d/%d only: the documents rebuild --shard %d/%d embeds\n", s.Index, s.Count, s.Index, s.Count)
	}
}

// writeModelNotes prints a model's notes, caveats and recommendations under
// the table.
func writeModelNotes(w io.Writer, m planner.ModelEstimate) {
	if m.SplitDocuments > 0 {
		verb := map[bool]string{true: "was", false: "were"}[m.SplitDocuments == 1]
		fmt.Fprintf(w, "\n%s: %s exceeded the model's input limit and %s split.", m.Model, plural(m.SplitDocuments, "document", "documents"), verb)
	}
	if m.ReusedChunks > 0 {
		fmt.Fprintf(w, "\n%s: %s (%s) already checkpointed, not priced.", m.Model, plural(m.ReusedChunks, "chunk", "chunks"), plural(m.ReusedTokens, "token", "tokens"))
	}
	if iv := m.Intervals; iv != nil {
		fmt.Fprintf(w, "\n%s: 95%% interval: tokens %s–%s, cost $%.4f–$%.4f", m.Model, commas(int64(iv.Tokens.Low)), commas(int64(iv.Tokens.High)), iv.CostUSD.Low, iv.CostUSD.High)
	}
	for _, n := range m.Notes {
		fmt.Fprintf(w, "\n%s: note: %s", m.Model, n)
	}
	if sh := m.Sharded; sh != nil {
		fmt.Fprintf(w, "\n%s in %d shards, each on its own key:", m.Model, sh.Count)
		for _, s := range append(sh.Shards, sh.Total) {
			name := fmt.Sprintf("shard %d/%d", s.Shard, sh.Count)
			if s.Shard < 0 {
				name = "total"
			}
			fmt.Fprintf(w, "\n  %-12s %s, %s, %s, %s, %s, %s (%s)", name, plural(s.Documents, "document", "documents"),
				plural(s.Chunks, "chunk", "chunks"), plural(s.Tokens, "token", "tokens"), plural(s.Requests, "request", "requests"),
				money(s.CostUSD, moneyDecimals(s.CostUSD)), s.Duration, s.Bottleneck)
			if s.MeetsRTO != nil {
				fmt.Fprintf(w, ", meets RTO: %s", map[bool]string{true: "yes", false: "NO"}[*s.MeetsRTO])
			}
		}
	}
	writeBatchPlan(w, m)
	printRestoreTerms(w, m) // estimate_restore.go
	for _, r := range m.Recommendations {
		fmt.Fprintf(w, "\n%s: %s", m.Model, r)
	}
}
