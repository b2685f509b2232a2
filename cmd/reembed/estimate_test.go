package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/reembed/reembed/pricing"
)

const pricingYAML = `- provider: acme
  model: acme-embed
  price_per_1m: 0.07
  chars_per_token: 4
  max_tokens_per_input: 4096
  max_inputs_per_request: 64
  default_dimensions: 768
  as_of: "2026-10-01"
  source: https://example.com/acme
`

// writeTemp writes content to name in a new temporary directory.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// smallCorpus writes a corpus of 40 documents of different sizes in several
// formats, one of them longer than 8191 tokens.
func smallCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := range 30 {
		p := filepath.Join(dir, "txt", fmt.Sprintf("doc-%02d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat(" word", 50+37*i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var jsonl strings.Builder
	for i := range 10 {
		fmt.Fprintf(&jsonl, "{\"id\":\"r%d\",\"text\":%q}\n", i, strings.Repeat(" record", 20*(i+1)))
	}
	os.WriteFile(filepath.Join(dir, "records.jsonl"), []byte(jsonl.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "long.md"), []byte(strings.Repeat(" word", 9000)), 0o644)
	return dir
}

// TestEstimateBundledSample runs the README's first command, with
// --per-document, and checks both outputs.
func TestEstimateBundledSample(t *testing.T) {
	p := filepath.Join(t.TempDir(), "docs.tsv")
	code, out, errOut := runMain(t, "estimate", "--per-document", p)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Corpus: (bundled sample corpus)", "269 documents", "548,156 tokens", "text-embedding-3-small", "618,042", "$0.012361", "$0.006180", "tpm"} {
		if !strings.Contains(out, want) {
			t.Errorf("estimate output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "doc_id\ttokens\tchunks\tbilled_tokens\tmodel\ttoken_count" || len(lines) != 1+269 {
		t.Errorf("--per-document: header %q and %d rows; want the header and 269 rows", lines[0], len(lines)-1)
	}
	if !slices.Contains(lines, "txt/go-api-go1.20.txt\t212245\t474\t242517\ttext-embedding-3-small\texact") {
		t.Errorf("--per-document: no row for txt/go-api-go1.20.txt with its path relative to the root")
	}
}

func TestEstimateBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	badPricing := writeTemp(t, "bad.yaml", "- provider: acme\n  model: m\n  price_per_1m: -1\n")
	unknownField := writeTemp(t, "unknown.json", `[{"model":"m","colour":"red"}]`)
	binDir := filepath.Join(dir, "bin")
	os.MkdirAll(binDir, 0o755)
	os.WriteFile(filepath.Join(binDir, "x.bin"), []byte("a\x00b"), 0o644)
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		args []string
		want []string // each must appear in stderr
	}{
		{"MissingPath", []string{missing}, []string{missing}},
		{"MissingSecondPath", []string{dir, missing}, []string{missing}},
		{"UnknownModel", []string{"--model", "text-embedding-4"}, []string{"--model", "text-embedding-4"}},
		{"UnknownModelInList", []string{"--model", "text-embedding-3-small,nope"}, []string{"--model", "nope"}},
		{"OverlapEqualsChunk", []string{"--chunk-tokens", "100", "--chunk-overlap", "100"}, []string{"--chunk-overlap"}},
		{"OverlapAboveChunk", []string{"--chunk-tokens", "100", "--chunk-overlap", "200"}, []string{"--chunk-overlap"}},
		{"OverlapWithoutChunks", []string{"--chunk-tokens", "0", "--chunk-overlap", "5"}, []string{"--chunk-overlap"}},
		{"NegativeRPM", []string{"--rpm", "-1"}, []string{"--rpm"}},
		{"NegativeTPM", []string{"--tpm", "-5"}, []string{"--tpm"}},
		{"NegativeConcurrency", []string{"--concurrency", "-2"}, []string{"--concurrency"}},
		{"NegativeChunkTokens", []string{"--chunk-tokens", "-1"}, []string{"--chunk-tokens"}},
		{"NegativeChunkOverlap", []string{"--chunk-overlap", "-1"}, []string{"--chunk-overlap"}},
		{"NegativeBatchSize", []string{"--batch-size", "-1"}, []string{"--batch-size"}},
		{"NegativeLatency", []string{"--latency", "-1s"}, []string{"--latency"}},
		{"NegativeRTO", []string{"--rto", "-1h"}, []string{"--rto"}},
		{"NotANumber", []string{"--rpm", "lots"}, []string{"rpm"}},
		{"MalformedPricing", []string{"--pricing", badPricing}, []string{"--pricing", badPricing, "price_per_1m"}},
		{"PricingUnknownField", []string{"--pricing", unknownField}, []string{"--pricing", unknownField, "colour"}},
		{"MissingPricing", []string{"--pricing", filepath.Join(dir, "nope.yaml")}, []string{"--pricing", "nope.yaml"}},
		{"SampleZero", []string{"--sample", "0"}, []string{"--sample"}},
		{"SampleAboveOne", []string{"--sample", "1.5"}, []string{"--sample"}},
		{"SampleNegative", []string{"--sample", "-1"}, []string{"--sample"}},
		{"SampleNaN", []string{"--sample", "NaN"}, []string{"--sample"}},
		{"BadFormat", []string{"--format", "xml"}, []string{"--format", "xml"}},
		{"WhatIfNoDocuments", []string{"--tokens-per-document", "100"}, []string{"--documents"}},
		{"WhatIfNoTokens", []string{"--documents", "100"}, []string{"--tokens-per-document"}},
		{"WhatIfWithPath", []string{"--documents", "1", "--tokens-per-document", "1", dir}, []string{"no corpus path"}},
		{"WhatIfSampled", []string{"--documents", "1", "--tokens-per-document", "1", "--sample", "0.5"}, []string{"--sample"}},
		{"StrictSkip", []string{"--strict", binDir}, []string{"x.bin", "binary"}},
		{"PerDocumentUnwritable", []string{"--per-document", filepath.Join(missing, "out.tsv")}, []string{"--per-document"}},
		{"UnknownFlag", []string{"--chunk-size", "5"}, []string{"chunk-size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runMain(t, append([]string{"estimate"}, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, exitUsage, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not name %q", errOut, w)
				}
			}
			if strings.Contains(out, "MODEL") {
				t.Errorf("printed an estimate despite the error:\n%s", out)
			}
		})
	}
}

// TestEstimateJSONFieldsDocumented: --format json parses, has the fields the
// README documents, and every field it has is documented there.
func TestEstimateJSONFieldsDocumented(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--format", "json", "--model", "text-embedding-3-small,embed-english-v3.0", "--rto", "1h", "--sample", "0.5", smallCorpus(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var keys []string
	collectKeys(doc, "", &keys)
	for _, want := range []string{
		"version", "corpus.roots", "corpus.what_if", "corpus.sampled", "corpus.sample_fraction", "corpus.files", "corpus.documents",
		"corpus.bytes", "corpus.tokens", "corpus.invalid_utf8_documents", "corpus.invalid_utf8_examples", "corpus.skipped_count",
		"corpus.skipped", "corpus.read_seconds", "chunking.chunk_tokens", "chunking.chunk_overlap", "limits.rpm", "limits.tpm",
		"limits.rto_seconds", "estimates[].model", "estimates[].token_count", "estimates[].chunks", "estimates[].tokens",
		"estimates[].requests", "estimates[].cost_usd", "estimates[].batch_cost_usd", "estimates[].duration_seconds",
		"estimates[].duration_terms.tpm_seconds", "estimates[].bottleneck", "estimates[].meets_rto", "estimates[].recommendations",
		"estimates[].intervals.tokens.low", "estimates[].price_as_of", "estimates[].price_source",
	} {
		if !slices.Contains(keys, want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skipf("no README: %v", err)
	}
	section := string(readme)
	if i := strings.Index(section, "#### The estimate JSON"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[5:], "\n#"); j >= 0 {
			section = section[:j+5]
		}
	} else {
		t.Fatal("README has no section \"The estimate JSON\"")
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "estimates[].intervals.") && (strings.HasSuffix(k, ".low") || strings.HasSuffix(k, ".high")) {
			continue // the README documents .intervals as a whole ("95% intervals of ...")
		}
		leaf := k[strings.LastIndex(k, ".")+1:]
		leaf = strings.TrimSuffix(leaf, "[]")
		if !regexp.MustCompile("`[^`\n]*\\b" + regexp.QuoteMeta(leaf) + "\\b[^`\n]*`").MatchString(section) {
			t.Errorf("field %s is not documented in README.md's estimate JSON section", k)
		}
	}
	var est struct {
		Corpus struct {
			Sampled bool `json:"sampled"`
		} `json:"corpus"`
		Estimates []struct {
			Model        string          `json:"model"`
			TokenCount   string          `json:"token_count"`
			CostUSD      json.Number     `json:"cost_usd"`
			BatchCostUSD *json.Number    `json:"batch_cost_usd"`
			MeetsRTO     *bool           `json:"meets_rto"`
			Intervals    json.RawMessage `json:"intervals"`
		} `json:"estimates"`
	}
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatal(err)
	}
	if !est.Corpus.Sampled || len(est.Estimates) != 2 {
		t.Fatalf("sampled %v, %d estimates", est.Corpus.Sampled, len(est.Estimates))
	}
	e0, e1 := est.Estimates[0], est.Estimates[1]
	if e0.TokenCount != "exact" || e1.TokenCount != "estimated" || e0.BatchCostUSD == nil || e1.BatchCostUSD != nil ||
		e0.MeetsRTO == nil || !*e0.MeetsRTO || len(e0.Intervals) == 0 {
		t.Errorf("estimates %+v", est.Estimates)
	}
}

// collectKeys lists the key paths of a JSON document ("a.b", "a[].c").
func collectKeys(v any, prefix string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if !slices.Contains(*out, p) {
				*out = append(*out, p)
			}
			collectKeys(x, p, out)
		}
	case []any:
		for _, x := range v {
			collectKeys(x, strings.TrimSuffix(prefix, "[]")+"[]", out)
		}
	}
}

func TestEstimateWhatIfJSON(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--format", "json", "--model", "text-embedding-ada-002",
		"--documents", "10000000", "--tokens-per-document", "1000", "--chunk-tokens", "0")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var est struct {
		Corpus struct {
			WhatIf bool `json:"what_if"`
		} `json:"corpus"`
		Estimates []struct {
			Chunks   int64          `json:"chunks"`
			Tokens   int64          `json:"tokens"`
			Requests int64          `json:"requests"`
			CostUSD  pricing.Micros `json:"cost_usd"`
		} `json:"estimates"`
	}
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatal(err)
	}
	e := est.Estimates[0]
	if !est.Corpus.WhatIf || e.Chunks != 10_000_000 || e.Tokens != 10_000_000_000 || e.Requests != 33_334 || e.CostUSD != 1_000_000_000 {
		t.Errorf("what-if %+v; want 10M chunks, 1e10 tokens, 33,334 requests, $1000", est)
	}
}

func TestEstimateCSVOneRowPerModel(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--format", "csv", "--model", "all", "--rto", "4h", smallCorpus(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, out)
	}
	cat, err := pricing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+len(cat.Models()) {
		t.Fatalf("%d rows, want a header and %d models", len(rows), len(cat.Models()))
	}
	header := rows[0]
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("no column %q in %q", name, header)
		}
		return i
	}
	model, tokens, cost, batch, meets := col("model"), col("tokens"), col("cost_usd"), col("batch_cost_usd"), col("meets_rto")
	var names []string
	for _, r := range rows[1:] {
		names = append(names, r[model])
		if r[cost] == "" || r[meets] != "true" {
			t.Errorf("row %q: cost %q, meets_rto %q", r[model], r[cost], r[meets])
		}
		// 512-token windows with 64 overlap bill 64 more tokens per extra
		// window. 30 files of n = 50+37i tokens: Σn = 17,595, plus 64 for
		// each of the 12 with 512 < n ≤ 960 and 128 for each of the 5 with
		// n > 960: 19,003. 10 records of 20(i+1) tokens: 1,100. One document
		// of 9,000 tokens in 20 windows: 9,000 + 19×64 = 10,216. In all
		// 30,319 tokens: $0.02/1M gives 606.38 µ$ -> $0.000606, batch
		// $0.01/1M gives 303.19 µ$ -> $0.000303.
		if r[model] == "text-embedding-3-small" && (r[tokens] != "30319" || r[cost] != "0.000606" || r[batch] != "0.000303") {
			t.Errorf("text-embedding-3-small: tokens %s, cost %q, batch %q; want 30319, 0.000606 and 0.000303 (sync and batch side by side)", r[tokens], r[cost], r[batch])
		}
	}
	for _, m := range cat.Models() {
		if !slices.Contains(names, m.Name) {
			t.Errorf("no row for %s", m.Name)
		}
	}
}

func TestEstimateChunkTokensZeroReportsSplits(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--chunk-tokens", "0", smallCorpus(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "text-embedding-3-small: 1 document exceeded the model's input limit and was split") {
		t.Errorf("output does not report split documents:\n%s", out)
	}
}
