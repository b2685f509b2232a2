package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
)

func runVerify(ctx context.Context, e *env, args []string) error {
	if storeVerifyRequested(args) {
		return runVerifyStore(ctx, e, args) // verify_store.go: a live pgvector table
	}
	fs := newFlagSet(e, "verify", "verify [flags] --checkpoint DIR [PATH...]\n\nReports how completely the checkpoint DIR covers the corpus at PATH (default: the corpus roots and filters\nDIR's manifest records), cut with the chunking recorded in DIR's manifest: present, missing, stale, extra. Exit 0 only when complete, 4 otherwise.")
	var cf corpusFlags
	cf.register(fs)
	dir := fs.String("checkpoint", "", "checkpoint written by rebuild: a directory or s3://, gs://, azblob:// URL (all shards are read)")
	pricingFile := fs.String("pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	format := fs.String("format", "table", "output format: table or json")
	corpusChanged := fs.Bool("corpus-changed", false, "verify against PATH or filters that differ from the corpus the checkpoint records")
	shard := fs.String("shard", "", "verify only shard i of N (i/N): its documents against its own parts (default: all shards as one)")
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
	if sn > 0 {
		store = shardStore{Store: store, dir: checkpoint.ShardDir(checkpoint.Shard{Index: si, Count: sn})}
	}
	m, err := readAnyManifest(ctx, store)
	if err != nil {
		return usagef("--checkpoint %q: %v", loc, err)
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
	spec := planner.RebuildSpec{Paths: paths, Corpus: opts, Model: model, ChunkTokens: m.Chunking.ChunkTokens,
		ChunkOverlap: m.Chunking.ChunkOverlap, Jobs: cf.jobs, Shard: checkpoint.Shard{Index: si, Count: sn}}
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
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Complete bool `json:"complete"`
			*checkpoint.Report
		}{rep.Complete(), rep}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "Coverage of %d chunks: %d present, %d missing, %d stale, %d extra; %d duplicate and %d superseded rows; %d unreadable parts\n",
			rep.Expected, rep.Present, rep.Missing, rep.Stale, rep.Extra, rep.Duplicates, rep.Superseded, rep.UnreadableParts)
		for _, k := range rep.MissingKeys {
			fmt.Fprintf(e.stdout, "  missing: %s\n", k)
		}
		for _, k := range rep.StaleKeys {
			fmt.Fprintf(e.stdout, "  stale: %s\n", k)
		}
	}
	if !rep.Complete() {
		return &exitCodeError{exitIncomplete, fmt.Errorf("coverage incomplete: %d missing, %d stale (run rebuild with the same --out to fill it)", rep.Missing, rep.Stale)}
	}
	return nil
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
