package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
)

func runVerify(ctx context.Context, e *env, args []string) error {
	if storeVerifyRequested(args) {
		return runVerifyStore(ctx, e, args) // verify_store.go: a live pgvector table
	}
	fs := newFlagSet(e, "verify", "verify [flags] --checkpoint DIR [PATH...]\n\nReports how completely the checkpoint DIR covers the corpus at PATH (default: the corpus roots and filters\nDIR's manifest records), cut with the chunking recorded in DIR's manifest: present, missing, stale, extra. It reads the key columns only;\n--deep reads and checks every row. Exit 0 only when complete, 4 otherwise.")
	var cf corpusFlags
	cf.register(fs)
	dir := fs.String("checkpoint", "", "checkpoint written by rebuild: a directory or s3://, gs://, azblob:// URL (all shards are read)")
	pricingFile := fs.String("pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	format := fs.String("format", "table", "output format: table or json")
	corpusChanged := fs.Bool("corpus-changed", false, "verify against PATH or filters that differ from the corpus the checkpoint records")
	shard := fs.String("shard", "", "verify only shard i of N (i/N): its documents against its own parts (default: all shards as one)")
	deep := fs.Bool("deep", false, "read every column of every row and check it: text sha256 = chunk_sha256, the manifest's model and length, finite non-zero vector, valid UTF-8, no repeated key, each part's digest (reads every byte; default: key columns only)")
	for _, name := range verifyFromManifest {
		hideFlag(fs, name)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--checkpoint is required")
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	loc, err := parseStoreLocation("--checkpoint", *dir)
	if err != nil {
		return err
	}
	si, sn, err := parseShard(*shard)
	if err != nil {
		return err
	}
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	store = checkpoint.OnlyShard(store, checkpoint.Shard{Index: si, Count: sn})
	m, err := readAnyManifest(ctx, store)
	if err != nil {
		return usagef("--checkpoint %q: %v", loc, err)
	}
	if err := checkAgainstManifest(fs, m); err != nil {
		return err
	}
	cat, err := loadCatalog(*pricingFile)
	if err != nil {
		return err
	}
	model, err := cat.Lookup(m.Model)
	if err != nil {
		return usagef("--checkpoint %q: manifest model: %v", loc, err)
	}
	paths, filters, err := checkpointCorpus(e.stderr, fs.Args(), &m, cf.filter.filters(), cf.filter.given(fs), *corpusChanged)
	if err != nil {
		return err
	}
	opts := cf.options()
	opts.PlainText, opts.Filters = m.PlainText, filters
	spec := planner.RebuildSpec{Paths: paths, Corpus: opts, Model: model, Dimensions: m.Dimensions, ChunkTokens: m.Chunking.ChunkTokens,
		ChunkOverlap: m.Chunking.ChunkOverlap, Jobs: cf.jobs, Shard: checkpoint.Shard{Index: si, Count: sn}, Deep: *deep}
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	rep, match, err := planner.VerifyMatch(ctx, tok, store, spec)
	if err != nil {
		return err
	}
	if warn := match.Warning(); warn != "" {
		fmt.Fprintf(e.stderr, "reembed: warning: %s\n", warn)
	}
	if err := writeVerifyReport(e, rep, *deep, *format); err != nil {
		return err
	}
	return verifyVerdict(rep)
}

// writeVerifyReport prints the coverage report as a table or JSON.
func writeVerifyReport(e *env, rep *checkpoint.Report, deep bool, format string) error {
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Complete bool `json:"complete"`
			Deep     bool `json:"deep"`
			*checkpoint.Report
		}{rep.Complete(), deep, rep})
	}
	fmt.Fprintf(e.stdout, "Coverage of %d chunks: %d present, %d missing, %d stale, %d extra; %d duplicate and %d superseded rows; %d unreadable parts\n",
		rep.Expected, rep.Present, rep.Missing, rep.Stale, rep.Extra, rep.Duplicates, rep.Superseded, rep.UnreadableParts)
	for _, k := range rep.MissingKeys {
		fmt.Fprintf(e.stdout, "  missing: %s\n", k)
	}
	for _, k := range rep.StaleKeys {
		fmt.Fprintf(e.stdout, "  stale: %s\n", k)
	}
	printChecked(e, rep, deep)
	return nil
}

// verifyVerdict is verify's exit: nil when the coverage is complete, else
// exit 4 saying how to fill it.
func verifyVerdict(rep *checkpoint.Report) error {
	if !rep.Complete() {
		hint := "run rebuild with the same --out to fill it"
		if rep.InvalidRows > 0 {
			hint = "run rebuild --deep with the same --out to embed the invalid rows again"
		}
		return &exitCodeError{exitIncomplete, fmt.Errorf("coverage incomplete: %d missing, %d stale (%s)", rep.Missing, rep.Stale, hint)}
	}
	return nil
}

// printChecked says how deep verify looked, and lists the invalid rows.
func printChecked(e *env, rep *checkpoint.Report, deep bool) {
	if !deep {
		fmt.Fprintln(e.stdout, "Keys checked (doc_id, chunk_index, chunk_sha256): fast, reads no text or vectors; --deep checks every row.")
		return
	}
	fmt.Fprintf(e.stdout, "Every row checked (--deep): %d invalid rows (not counted as present).\n", rep.InvalidRows)
	for _, r := range rep.InvalidSample {
		fmt.Fprintf(e.stdout, "  invalid: %s in %s row %d: %s\n", r.Key, r.Part, r.Row, r.Reason)
	}
}

// readAnyManifest returns the manifest of the unsharded checkpoint, or of any
// shard when the checkpoint is sharded.
func readAnyManifest(ctx context.Context, store checkpoint.Store) (checkpoint.Manifest, error) {
	m, err := checkpoint.ReadManifest(ctx, store, checkpoint.Shard{})
	if err == nil {
		return m, nil
	}
	files, lerr := store.List(ctx)
	if lerr != nil {
		return m, fmt.Errorf("no manifest: %w", err)
	}
	for _, f := range files {
		var s checkpoint.Shard
		if _, err := fmt.Sscanf(f.Name, "shard-%d-of-%d/", &s.Index, &s.Count); err == nil && s.Count > 0 &&
			checkpoint.ManifestPath(s) == f.Name {
			return checkpoint.ReadManifest(ctx, store, s)
		}
	}
	return m, fmt.Errorf("no manifest.json: not a reembed checkpoint (%w)", err)
}

// verifyFromManifest are the corpus flags verify takes from the checkpoint's
// manifest instead: accepted (a runbook may pass rebuild's flags), left out of
// the help, and refused when they disagree with the manifest.
var verifyFromManifest = []string{"chunk-tokens", "chunk-overlap", "plain-text"}

// checkAgainstManifest refuses a chunking flag given to verify that
// disagrees with the manifest, which verify uses.
func checkAgainstManifest(fs *flag.FlagSet, m checkpoint.Manifest) error {
	want := map[string]string{"chunk-tokens": fmt.Sprint(m.Chunking.ChunkTokens),
		"chunk-overlap": fmt.Sprint(m.Chunking.ChunkOverlap), "plain-text": fmt.Sprint(m.PlainText)}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if w, ok := want[f.Name]; ok && err == nil && f.Value.String() != w {
			err = usagef("--%s %s: verify cuts chunks as the checkpoint's manifest says (%s %s); leave the flag out", f.Name, f.Value, f.Name, w)
		}
	})
	return err
}
