package pricing_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/pricing"
)

func builtin(t *testing.T) *pricing.Catalog {
	t.Helper()
	c, err := pricing.Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	return c
}

func TestBuiltinOpenAIModelsExact(t *testing.T) {
	c := builtin(t)
	tests := []struct {
		model        string
		price, batch pricing.Micros
		dims         int
	}{
		{"text-embedding-3-small", 20_000, 10_000, 1536},
		{"text-embedding-3-large", 130_000, 65_000, 3072},
		{"text-embedding-ada-002", 100_000, 50_000, 1536},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			m, err := c.Lookup(tt.model)
			if err != nil {
				t.Fatal(err)
			}
			if m.Provider != "openai" || !m.Exact() || m.TokenCount() != "exact" || m.Encoding != pricing.EncodingCL100K {
				t.Errorf("provider %q, encoding %q, token_count %q; want openai, cl100k_base, exact", m.Provider, m.Encoding, m.TokenCount())
			}
			if m.PricePer1M != tt.price {
				t.Errorf("price $%s per 1M, want $%s", m.PricePer1M, tt.price)
			}
			if m.BatchPricePer1M == nil || *m.BatchPricePer1M != tt.batch {
				t.Errorf("batch price %v, want $%s", m.BatchPricePer1M, tt.batch)
			}
			if m.BatchWindowDuration() != 24*time.Hour {
				t.Errorf("batch window %v, want 24h", m.BatchWindowDuration())
			}
			if m.MaxTokensPerInput != 8191 || m.MaxInputsPerRequest != 2048 || m.MaxTokensPerRequest != 300_000 {
				t.Errorf("limits %d tokens/input, %d inputs, %d tokens/request; want 8191, 2048, 300000",
					m.MaxTokensPerInput, m.MaxInputsPerRequest, m.MaxTokensPerRequest)
			}
			if m.DefaultDimensions != tt.dims {
				t.Errorf("dimensions %d, want %d", m.DefaultDimensions, tt.dims)
			}
		})
	}
}

func TestBuiltinEntriesCiteSourceAndDate(t *testing.T) {
	c := builtin(t)
	models := c.Models()
	if len(models) < 10 {
		t.Fatalf("built-in catalog has %d models", len(models))
	}
	if _, err := time.Parse(time.DateOnly, c.Version); err != nil {
		t.Errorf("catalog version %q is not a date", c.Version)
	}
	for _, m := range models {
		t.Run(m.Name, func(t *testing.T) {
			if !strings.HasPrefix(m.Source, "https://") {
				t.Errorf("source %q, want an https URL", m.Source)
			}
			if _, err := time.Parse(time.DateOnly, m.AsOf); err != nil {
				t.Errorf("as_of %q is not a date", m.AsOf)
			}
			if m.Provider != "openai" {
				if m.Exact() || m.TokenCount() != "estimated" || m.CharsPerToken <= 0 {
					t.Errorf("token_count %q, chars_per_token %v; want estimated with a ratio", m.TokenCount(), m.CharsPerToken)
				}
			}
			if (m.BatchPricePer1M == nil) != (m.BatchWindowDuration() == 0) {
				t.Errorf("batch price %v but window %v: want both or neither", m.BatchPricePer1M, m.BatchWindowDuration())
			}
			if m.BatchPricePer1M != nil && *m.BatchPricePer1M >= m.PricePer1M {
				t.Errorf("batch price $%s is not below the sync price $%s", *m.BatchPricePer1M, m.PricePer1M)
			}
		})
	}
}

func TestModelsSortedByProviderThenName(t *testing.T) {
	ms := builtin(t).Models()
	for i := 1; i < len(ms); i++ {
		a, b := ms[i-1], ms[i]
		if a.Provider > b.Provider || a.Provider == b.Provider && a.Name >= b.Name {
			t.Errorf("%s/%s before %s/%s", a.Provider, a.Name, b.Provider, b.Name)
		}
	}
}

func TestLookupAndResolve(t *testing.T) {
	c := builtin(t)
	t.Run("UnknownModelIsErrUnknownModel", func(t *testing.T) {
		_, err := c.Lookup("text-embedding-4")
		if !errors.Is(err, pricing.ErrUnknownModel) || !strings.Contains(err.Error(), "text-embedding-4") {
			t.Errorf("err = %v, want ErrUnknownModel naming the model", err)
		}
	})
	t.Run("AllIsEveryModel", func(t *testing.T) {
		ms, err := c.Resolve([]string{"all"})
		if err != nil || len(ms) != len(c.Models()) {
			t.Errorf("Resolve(all) = %d models, %v; want %d", len(ms), err, len(c.Models()))
		}
	})
	t.Run("ListKeepsOrderAndDropsRepeats", func(t *testing.T) {
		ms, err := c.Resolve([]string{"text-embedding-3-large", "voyage-3", "text-embedding-3-large"})
		if err != nil || len(ms) != 2 || ms[0].Name != "text-embedding-3-large" || ms[1].Name != "voyage-3" {
			t.Errorf("Resolve = %v, %v", ms, err)
		}
	})
	t.Run("UnknownInListIsError", func(t *testing.T) {
		if _, err := c.Resolve([]string{"text-embedding-3-small", "nope"}); !errors.Is(err, pricing.ErrUnknownModel) {
			t.Errorf("err = %v, want ErrUnknownModel", err)
		}
	})
}

// writeFile writes content to name in a new temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const yamlEntry = `
  - provider: acme
    model: acme-embed
    price_per_1m: 0.07
    batch_price_per_1m: 0.035
    batch_window: 12h
    chars_per_token: 3.5
    max_tokens_per_input: 4096
    max_inputs_per_request: 64
    default_dimensions: 768
    as_of: "2026-10-01"
    source: https://example.com/acme/pricing
`

func TestLoadOverridesAddAndReplace(t *testing.T) {
	tests := []struct {
		name, file, content string
	}{
		{"YAMLList", "p.yaml", yamlEntry + `
  - provider: openai
    model: text-embedding-3-small
    price_per_1m: 0.025
    encoding: cl100k_base
    max_tokens_per_input: 8191
    max_inputs_per_request: 2048
    max_tokens_per_request: 300000
    default_dimensions: 1536
    as_of: "2026-12-01"
    source: https://example.com/negotiated
`},
		{"YAMLObject", "p.yml", "version: x\nmodels:" + yamlEntry + `
  - {provider: openai, model: text-embedding-3-small, price_per_1m: 0.025, encoding: cl100k_base,
     max_tokens_per_input: 8191, max_inputs_per_request: 2048, max_tokens_per_request: 300000,
     default_dimensions: 1536, as_of: "2026-12-01", source: "https://example.com/negotiated"}
`},
		{"JSONList", "p.json", `[
 {"provider":"acme","model":"acme-embed","price_per_1m":0.07,"batch_price_per_1m":"0.035","batch_window":"12h","chars_per_token":3.5,
  "max_tokens_per_input":4096,"max_inputs_per_request":64,"default_dimensions":768,"as_of":"2026-10-01","source":"https://example.com/acme/pricing"},
 {"provider":"openai","model":"text-embedding-3-small","price_per_1m":0.025,"encoding":"cl100k_base","max_tokens_per_input":8191,
  "max_inputs_per_request":2048,"max_tokens_per_request":300000,"default_dimensions":1536,"as_of":"2026-12-01","source":"https://example.com/negotiated"}]`},
		{"JSONObject", "p.JSON", `{"version":"x","models":[
 {"provider":"acme","model":"acme-embed","price_per_1m":0.07,"batch_price_per_1m":0.035,"batch_window":"12h","chars_per_token":3.5,
  "max_tokens_per_input":4096,"max_inputs_per_request":64,"default_dimensions":768,"as_of":"2026-10-01","source":"https://example.com/acme/pricing"},
 {"provider":"openai","model":"text-embedding-3-small","price_per_1m":0.025,"encoding":"cl100k_base","max_tokens_per_input":8191,
  "max_inputs_per_request":2048,"max_tokens_per_request":300000,"default_dimensions":1536,"as_of":"2026-12-01","source":"https://example.com/negotiated"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := builtin(t)
			before := len(c.Models())
			if err := c.LoadOverrides(writeFile(t, tt.file, tt.content)); err != nil {
				t.Fatal(err)
			}
			if got := len(c.Models()); got != before+1 {
				t.Errorf("%d models after override, want %d (one added, one replaced)", got, before+1)
			}
			acme, err := c.Lookup("acme-embed")
			if err != nil {
				t.Fatal(err)
			}
			if acme.PricePer1M != 70_000 || acme.BatchPricePer1M == nil || *acme.BatchPricePer1M != 35_000 ||
				acme.BatchWindowDuration() != 12*time.Hour || acme.CharsPerToken != 3.5 || acme.TokenCount() != "estimated" {
				t.Errorf("added entry = %+v", acme)
			}
			small, _ := c.Lookup("text-embedding-3-small")
			if small.PricePer1M != 25_000 || small.BatchPricePer1M != nil || small.AsOf != "2026-12-01" || small.Source != "https://example.com/negotiated" {
				t.Errorf("replaced entry = %+v, want price 0.025 and no batch price", small)
			}
			if large, _ := c.Lookup("text-embedding-3-large"); large.PricePer1M != 130_000 {
				t.Errorf("untouched entry changed: %+v", large)
			}
		})
	}
}

func TestLoadOverridesRejectsMalformedFiles(t *testing.T) {
	good := func(extra string, drop ...string) string {
		lines := []string{
			"- provider: acme", "  model: acme-embed", "  price_per_1m: 0.07", "  chars_per_token: 4",
			"  max_tokens_per_input: 4096", "  max_inputs_per_request: 64", "  default_dimensions: 768",
			`  as_of: "2026-10-01"`, "  source: https://example.com",
		}
		var out []string
		for _, l := range lines {
			keep := true
			for _, d := range drop {
				if strings.HasPrefix(strings.TrimLeft(l, "- "), d+":") {
					keep = false
				}
			}
			if keep {
				out = append(out, l)
			}
		}
		if extra != "" {
			out = append(out, "  "+extra)
		}
		return strings.Join(out, "\n") + "\n"
	}
	tests := []struct {
		name, file, content string
		wantField           string
	}{
		{"BadYAML", "p.yaml", "- provider: [unclosed\n", "decoding YAML"},
		{"UnknownFieldYAML", "p.yaml", good("price_per_token: 1"), "price_per_token"},
		{"UnknownFieldJSON", "p.json", `[{"provider":"acme","model":"m","colour":"red"}]`, "colour"},
		{"BadJSON", "p.json", `[{"provider":`, "decoding JSON"},
		{"NegativePriceYAML", "p.yaml", strings.Replace(good(""), "0.07", "-0.07", 1), "price_per_1m"},
		{"NegativePriceJSON", "p.json", `[{"provider":"acme","model":"m","price_per_1m":-0.07,"chars_per_token":4,"max_tokens_per_input":1,"max_inputs_per_request":1,"default_dimensions":1,"as_of":"2026-01-01","source":"s"}]`, "price_per_1m"},
		{"NegativeBatchPrice", "p.yaml", good("batch_price_per_1m: -0.01"), "batch_price_per_1m"},
		{"UnparseablePriceYAML", "p.yaml", strings.Replace(good(""), "0.07", "cheap", 1), "price_per_1m"},
		{"UnparseablePriceJSON", "p.json", `[{"provider":"acme","model":"m","price_per_1m":"cheap"}]`, "price_per_1m"},
		{"TooPrecisePrice", "p.yaml", strings.Replace(good(""), "0.07", "0.0000001", 1), "price_per_1m"},
		{"MissingAsOf", "p.yaml", good("", "as_of"), `"as_of" is required`},
		{"BadAsOf", "p.yaml", strings.Replace(good(""), "2026-10-01", "Oct 2026", 1), `"as_of"`},
		{"MissingSource", "p.yaml", good("", "source"), `"source" is required`},
		{"BadBatchWindow", "p.yaml", good("batch_window: one day"), `"batch_window"`},
		{"MissingModel", "p.yaml", good("", "model"), `"model" is required`},
		{"MissingRatioForEstimated", "p.yaml", good("", "chars_per_token"), `"chars_per_token"`},
		{"UnavailableEncoding", "p.yaml", good("encoding: o200k_base"), `"encoding"`},
		{"ZeroInputs", "p.yaml", strings.Replace(good(""), "max_inputs_per_request: 64", "max_inputs_per_request: 0", 1), `"max_inputs_per_request"`},
		{"EmptyFile", "p.yaml", "", "no models"},
		{"MissingFile", "", "", "reading pricing file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := builtin(t)
			before := c.Models()
			path := filepath.Join(t.TempDir(), "missing.yaml")
			if tt.file != "" {
				path = writeFile(t, tt.file, tt.content)
			}
			err := c.LoadOverrides(path)
			if err == nil {
				t.Fatalf("LoadOverrides accepted:\n%s", tt.content)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("err = %v; want it to name the file %s and %q", err, path, tt.wantField)
			}
			if len(c.Models()) != len(before) {
				t.Errorf("a failed load changed the catalog")
			}
		})
	}
}

func TestLoadOverridesChangesOnlyPriceOfBuiltin(t *testing.T) {
	c := builtin(t)
	entry := `[{"provider":"openai","model":"text-embedding-3-small","price_per_1m":0.025,"encoding":"cl100k_base",
  "max_tokens_per_input":8191,"max_inputs_per_request":%d,"default_dimensions":1536,"as_of":"2026-12-01","source":"https://example.com/x"}]`
	err := c.LoadOverrides(writeFile(t, "p.json", fmt.Sprintf(entry, 4096)))
	if err == nil || !strings.Contains(err.Error(), "max_inputs_per_request") || !strings.Contains(err.Error(), "only the price") {
		t.Errorf("raising a built-in model's max_inputs_per_request: err = %v; want it refused naming the field", err)
	}
	if err := c.LoadOverrides(writeFile(t, "q.json", fmt.Sprintf(entry, 2048))); err != nil {
		t.Fatalf("changing only the price: %v", err)
	}
	small, _ := c.Lookup("text-embedding-3-small")
	if small.PricePer1M != 25_000 || small.MaxTokensPerRequest != 300000 {
		t.Errorf("after a price override: %+v; want the new price and the built-in max_tokens_per_request kept", small)
	}
}
