package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/pricing"
)

// inspection describes a checkpoint without reading a corpus (reembed inspect).
type inspection struct {
	Checkpoint      string   `json:"checkpoint"`
	Model           string   `json:"model"`
	Dimensions      int      `json:"dimensions"`
	Encoding        string   `json:"encoding"`
	ChunkTokens     int      `json:"chunk_tokens"`
	ChunkOverlap    int      `json:"chunk_overlap"`
	PlainText       bool     `json:"plain_text"`
	CorpusRoots     []string `json:"corpus_roots"`
	Shards          []string `json:"shards"`
	Rows            int64    `json:"rows"`
	Tokens          int64    `json:"tokens"`
	Parts           int      `json:"parts"`
	Bytes           int64    `json:"bytes"`
	UnreadableParts []string `json:"unreadable_parts"`
	// CostUSD is what the checkpointed tokens cost at the catalog price: the
	// spend the checkpoint holds (retries and chunks lost at a crash are
	// not in it).
	CostUSD *pricing.Micros `json:"cost_usd"`
	// Spend is the checkpoint's spend ledger (spend.json, summed over
	// shards): what its runs paid, settled, abandoned at kills and open;
	// nil when the checkpoint has none.
	Spend *checkpoint.Spend `json:"spend"`
	// SpentUSD is Spend's total, rounded up to the micro-dollar.
	SpentUSD     *pricing.Micros `json:"spent_usd"`
	CreatedAt    time.Time       `json:"created_at"`
	LastCommitAt *time.Time      `json:"last_commit_at"`
	// LastPart is the part with the highest name (the last committed).
	LastPart       string `json:"last_part"`
	ReembedVersion string `json:"reembed_version"`
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "inspect", "inspect --checkpoint DIR\n\nDescribes the checkpoint DIR (a directory or s3://, gs://, azblob:// URL) without reading a corpus: model,\ndimensions, chunking, rows, parts, corpus roots, shards, bytes, the cost of its tokens, created, last commit.")
	dir := fs.String("checkpoint", "", "checkpoint written by rebuild: a directory or s3://, gs://, azblob:// URL")
	format := fs.String("format", "table", "output format: table or json")
	pricingFile := fs.String("pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" && fs.NArg() == 1 {
		*dir = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usagef("inspect takes no arguments besides --checkpoint DIR (got %q)", fs.Args())
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
	if err := loc.exists(); err != nil {
		return usagef("--checkpoint %q: no such directory", *dir)
	}
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	in, err := inspectStore(ctx, store)
	if err != nil {
		return usagef("--checkpoint %q: %v", loc, err)
	}
	in.Checkpoint = loc.String()
	if cat, err := loadCatalog(*pricingFile); err != nil {
		return err
	} else if m, err := cat.Lookup(in.Model); err == nil {
		c := pricing.Cost(in.Tokens, m.PricePer1M)
		in.CostUSD = &c
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	writeInspection(e.stdout, in)
	return nil
}

// inspectStore reads the manifest and every part of store.
func inspectStore(ctx context.Context, store checkpoint.Store) (*inspection, error) {
	m, err := readAnyManifest(ctx, store)
	if err != nil {
		return nil, err
	}
	in := &inspection{Model: m.Model, Dimensions: m.Dimensions, Encoding: m.Encoding, ChunkTokens: m.Chunking.ChunkTokens,
		ChunkOverlap: m.Chunking.ChunkOverlap, PlainText: m.PlainText, CorpusRoots: m.CorpusRoots, CreatedAt: m.CreatedAt,
		ReembedVersion: m.ReembedVersion, Shards: []string{}, UnreadableParts: []string{}}
	files, err := store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing: %w", err)
	}
	shards := map[string]bool{}
	for _, f := range files {
		in.Bytes += f.Size
		if strings.HasSuffix(f.Name, checkpoint.ManifestName) {
			if d, _, ok := strings.Cut(f.Name, "/"); ok {
				shards[d] = true
			}
		}
		if path.Base(f.Name) == checkpoint.SpendName {
			if err := in.addSpend(ctx, store, f.Name); err != nil {
				return nil, fmt.Errorf("reading %s: %w", f.Name, err)
			}
		}
		if !strings.HasSuffix(f.Name, ".parquet") || strings.Contains(f.Name, "/.") || strings.HasPrefix(f.Name, ".") {
			continue
		}
		if err := in.addPart(ctx, store, f.Name); err != nil {
			in.UnreadableParts = append(in.UnreadableParts, f.Name)
		}
	}
	for s := range shards {
		in.Shards = append(in.Shards, s)
	}
	sort.Strings(in.Shards)
	return in, nil
}

// addSpend adds the spend ledger name.
func (in *inspection) addSpend(ctx context.Context, store checkpoint.Store, name string) error {
	r, err := store.Open(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	var s checkpoint.Spend
	if err := json.NewDecoder(io.NewSectionReader(r, 0, r.Size())).Decode(&s); err != nil {
		return err
	}
	if in.Spend == nil {
		in.Spend = &checkpoint.Spend{}
	}
	t := in.Spend
	t.SettledPico += s.SettledPico
	t.SettledToken += s.SettledToken
	t.ChargedPico += s.ChargedPico
	t.Requests += s.Requests
	t.AbandonedPico += s.AbandonedPico
	t.OpenPico += s.OpenPico
	t.Runs += s.Runs
	usd := pricing.Micros((t.TotalPico() + 999_999) / 1_000_000)
	in.SpentUSD = &usd
	return nil
}

// addPart adds the rows of part name.
func (in *inspection) addPart(ctx context.Context, store checkpoint.Store, name string) error {
	r, err := store.Open(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	rows, err := checkpoint.ReadRows(r, r.Size())
	if err != nil {
		return err
	}
	in.Parts++
	if name > in.LastPart {
		in.LastPart = name
	}
	for _, row := range rows {
		in.Rows++
		in.Tokens += int64(row.Tokens)
		if in.Dimensions == 0 {
			in.Dimensions = len(row.Embedding)
		}
		if t := row.EmbeddedAt; in.LastCommitAt == nil || t.After(*in.LastCommitAt) {
			in.LastCommitAt = &t
		}
	}
	return nil
}

func writeInspection(w io.Writer, in *inspection) {
	fmt.Fprintf(w, "Checkpoint: %s\n", in.Checkpoint)
	fmt.Fprintf(w, "  model       %s, %d dimensions, %s\n", in.Model, in.Dimensions, in.Encoding)
	fmt.Fprintf(w, "  chunking    %d tokens, overlap %d, plain text %v\n", in.ChunkTokens, in.ChunkOverlap, in.PlainText)
	fmt.Fprintf(w, "  corpus      %s\n", strings.Join(in.CorpusRoots, ", "))
	if len(in.Shards) > 0 {
		fmt.Fprintf(w, "  shards      %s\n", strings.Join(in.Shards, ", "))
	}
	fmt.Fprintf(w, "  rows        %s, %s\n", plural(in.Rows, "row", "rows"), plural(in.Tokens, "token", "tokens"))
	fmt.Fprintf(w, "  parts       %s, %.1f MB\n", plural(int64(in.Parts), "part", "parts"), float64(in.Bytes)/1e6)
	if in.SpentUSD != nil {
		fmt.Fprintf(w, "  spend       %s in %s over %s (spend ledger)\n", money(*in.SpentUSD, moneyDecimals(*in.SpentUSD)),
			plural(in.Spend.Requests, "request", "requests"), plural(in.Spend.Runs, "run", "runs"))
	}
	if in.CostUSD != nil {
		fmt.Fprintf(w, "  value       %s (the checkpointed tokens at the catalog price)\n", money(*in.CostUSD, moneyDecimals(*in.CostUSD)))
	}
	fmt.Fprintf(w, "  created     %s by reembed %s\n", in.CreatedAt.Format(time.RFC3339), orDash(in.ReembedVersion))
	if in.LastCommitAt != nil {
		fmt.Fprintf(w, "  last commit %s (%s)\n", in.LastCommitAt.Format(time.RFC3339), in.LastPart)
	}
	if len(in.UnreadableParts) > 0 {
		fmt.Fprintf(w, "  unreadable  %s\n", strings.Join(in.UnreadableParts, ", "))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
