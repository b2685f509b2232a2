// Package pricing is reembed's model catalog: for each embedding model its
// prices, request limits, tokenizer encoding and the source and date of each
// fact. The built-in catalog (catalog.json, embedded) is compiled from
// ../shared/reference; a YAML or JSON file can add or replace entries.
//
// It imports nothing of ours.
package pricing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultModel is the model estimates, rebuilds, drills, the API and the
// simulated provider use when none is named.
const DefaultModel = "text-embedding-3-small"

// ErrUnknownModel is returned by [Catalog.Lookup] for a model the catalog lacks.
var ErrUnknownModel = errors.New("unknown model")

// EncodingCL100K is the encoding of OpenAI's embedding models. Models with this
// encoding are counted exactly; all others are estimated.
const EncodingCL100K = "cl100k_base"

// Model is one catalog entry. Token limits are in tokens of the model's own
// tokenizer; prices are micro-dollars per million input tokens.
type Model struct {
	Provider            string  `json:"provider" yaml:"provider"`
	Name                string  `json:"model" yaml:"model"`
	PricePer1M          Micros  `json:"price_per_1m" yaml:"price_per_1m"`
	BatchPricePer1M     *Micros `json:"batch_price_per_1m,omitempty" yaml:"batch_price_per_1m"`
	BatchWindow         string  `json:"batch_window,omitempty" yaml:"batch_window"`
	Encoding            string  `json:"encoding,omitempty" yaml:"encoding"`
	CharsPerToken       float64 `json:"chars_per_token,omitempty" yaml:"chars_per_token"`
	MaxTokensPerInput   int     `json:"max_tokens_per_input" yaml:"max_tokens_per_input"`
	MaxInputsPerRequest int     `json:"max_inputs_per_request" yaml:"max_inputs_per_request"`
	MaxTokensPerRequest int     `json:"max_tokens_per_request,omitempty" yaml:"max_tokens_per_request"`
	DefaultDimensions   int     `json:"default_dimensions" yaml:"default_dimensions"`
	MaxDimensions       int     `json:"max_dimensions,omitempty" yaml:"max_dimensions"`
	FixedDimensions     bool    `json:"fixed_dimensions,omitempty" yaml:"fixed_dimensions"`
	AsOf                string  `json:"as_of" yaml:"as_of"`
	Source              string  `json:"source" yaml:"source"`
	Notes               string  `json:"notes,omitempty" yaml:"notes"`
}

// Exact reports whether the model's tokens are counted exactly (cl100k_base)
// rather than estimated with CharsPerToken.
func (m Model) Exact() bool { return m.Encoding == EncodingCL100K }

// TokenCount is "exact" or "estimated", the value every response carries.
func (m Model) TokenCount() string {
	if m.Exact() {
		return "exact"
	}
	return "estimated"
}

// BatchWindowDuration returns the batch API's completion window, or 0 when the
// model has no batch price.
func (m Model) BatchWindowDuration() time.Duration {
	if m.BatchPricePer1M == nil || m.BatchWindow == "" {
		return 0
	}
	d, _ := time.ParseDuration(m.BatchWindow) // validated on load
	return d
}

// validate checks one entry; the error names the field.
func (m Model) validate() error {
	switch {
	case m.Name == "":
		return errors.New("field \"model\" is required")
	case m.Provider == "":
		return fmt.Errorf("model %q: field \"provider\" is required", m.Name)
	case m.PricePer1M < 0:
		return fmt.Errorf("model %q: field \"price_per_1m\" must not be negative", m.Name)
	case m.MaxTokensPerInput <= 0:
		return fmt.Errorf("model %q: field \"max_tokens_per_input\" must be a positive number of tokens", m.Name)
	case m.MaxInputsPerRequest <= 0:
		return fmt.Errorf("model %q: field \"max_inputs_per_request\" must be positive", m.Name)
	case m.MaxTokensPerRequest < 0:
		return fmt.Errorf("model %q: field \"max_tokens_per_request\" must not be negative (0 means no limit)", m.Name)
	case m.DefaultDimensions <= 0:
		return fmt.Errorf("model %q: field \"default_dimensions\" must be positive", m.Name)
	case !m.Exact() && m.CharsPerToken <= 0:
		return fmt.Errorf("model %q: field \"chars_per_token\" is required when \"encoding\" is not %s", m.Name, EncodingCL100K)
	case m.Encoding != "" && m.Encoding != EncodingCL100K:
		return fmt.Errorf("model %q: field \"encoding\" %q is not available offline; leave it empty and set \"chars_per_token\"", m.Name, m.Encoding)
	case m.AsOf == "":
		return fmt.Errorf("model %q: field \"as_of\" is required (the date the price was read)", m.Name)
	case m.Source == "":
		return fmt.Errorf("model %q: field \"source\" is required (where the price comes from)", m.Name)
	}
	if _, err := time.Parse(time.DateOnly, m.AsOf); err != nil {
		return fmt.Errorf("model %q: field \"as_of\" %q is not a YYYY-MM-DD date", m.Name, m.AsOf)
	}
	if m.BatchPricePer1M != nil && *m.BatchPricePer1M < 0 {
		return fmt.Errorf("model %q: field \"batch_price_per_1m\" must not be negative", m.Name)
	}
	if m.BatchWindow != "" {
		if d, err := time.ParseDuration(m.BatchWindow); err != nil || d <= 0 {
			return fmt.Errorf("model %q: field \"batch_window\" %q is not a duration such as \"24h\"", m.Name, m.BatchWindow)
		}
	}
	if m.MaxDimensions != 0 && m.MaxDimensions < m.DefaultDimensions {
		return fmt.Errorf("model %q: field \"max_dimensions\" is below \"default_dimensions\"", m.Name)
	}
	return nil
}

// Catalog is a set of models by name. It is not safe for concurrent
// modification; read-only use from several goroutines is safe.
type Catalog struct {
	// Version is the date of the built-in catalog.
	Version string
	models  map[string]Model
}

//go:embed catalog.json
var builtinJSON []byte

type catalogFile struct {
	Version string `json:"version" yaml:"version"`
	// CatalogVersion is the key `reembed models --format json` writes, so that
	// its output is accepted back as a pricing file.
	CatalogVersion string  `json:"catalog_version" yaml:"catalog_version"`
	Models         []Model `json:"models" yaml:"models"`
}

// Builtin returns the catalog compiled into reembed.
func Builtin() (*Catalog, error) {
	var f catalogFile
	dec := json.NewDecoder(bytes.NewReader(builtinJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding built-in catalog: %w", err)
	}
	c := &Catalog{Version: f.Version, models: map[string]Model{}}
	for i, m := range f.Models {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("built-in catalog entry %d: %w", i+1, err)
		}
		c.models[m.Name] = m
	}
	return c, nil
}

// LoadOverrides reads a YAML or JSON pricing file and adds its entries to c,
// replacing entries with the same model name. The file holds either a list of
// models or an object with a "models" list. Every error names the file and the
// entry; on error c is unchanged.
func (c *Catalog) LoadOverrides(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading pricing file %q: %w", path, err)
	}
	models, err := parseModels(data, strings.ToLower(filepath.Ext(path)) == ".json")
	if err != nil {
		return fmt.Errorf("pricing file %q: %w", path, err)
	}
	if len(models) == 0 {
		return fmt.Errorf("pricing file %q: no models", path)
	}
	for i, m := range models {
		if err := m.validate(); err != nil {
			return fmt.Errorf("pricing file %q: entry %d: %w", path, i+1, err)
		}
	}
	for i, m := range models {
		if old, ok := c.models[m.Name]; ok {
			if models[i], err = overridePrice(old, m); err != nil {
				return fmt.Errorf("pricing file %q: entry %d: %w", path, i+1, err)
			}
		}
	}
	for _, m := range models {
		c.models[m.Name] = m
	}
	return nil
}

// overridePrice returns the entry m that replaces the catalog's entry old:
// only the price and its provenance (price_per_1m, batch_price_per_1m,
// batch_window, as_of, source, notes) may differ; a limit or tokenizer field
// left out (zero) keeps old's value, and one that differs is an error, since
// reembed cuts and sends requests by those and the provider's are fixed.
func overridePrice(old, m Model) (Model, error) {
	ints := []struct {
		name     string
		old, new *int
	}{
		{"max_tokens_per_input", &old.MaxTokensPerInput, &m.MaxTokensPerInput},
		{"max_inputs_per_request", &old.MaxInputsPerRequest, &m.MaxInputsPerRequest},
		{"max_tokens_per_request", &old.MaxTokensPerRequest, &m.MaxTokensPerRequest},
		{"default_dimensions", &old.DefaultDimensions, &m.DefaultDimensions},
		{"max_dimensions", &old.MaxDimensions, &m.MaxDimensions},
	}
	for _, f := range ints {
		if *f.new == 0 {
			*f.new = *f.old
		} else if *f.new != *f.old {
			return m, priceOnly(m.Name, f.name, fmt.Sprint(*f.old), fmt.Sprint(*f.new))
		}
	}
	switch {
	case m.Provider != old.Provider:
		return m, priceOnly(m.Name, "provider", old.Provider, m.Provider)
	case m.Encoding != old.Encoding:
		return m, priceOnly(m.Name, "encoding", old.Encoding, m.Encoding)
	case m.CharsPerToken != 0 && m.CharsPerToken != old.CharsPerToken:
		return m, priceOnly(m.Name, "chars_per_token", fmt.Sprint(old.CharsPerToken), fmt.Sprint(m.CharsPerToken))
	case m.FixedDimensions != old.FixedDimensions:
		return m, priceOnly(m.Name, "fixed_dimensions", fmt.Sprint(old.FixedDimensions), fmt.Sprint(m.FixedDimensions))
	}
	m.CharsPerToken = old.CharsPerToken
	return m, nil
}

func priceOnly(model, field, old, new string) error {
	return fmt.Errorf("model %q: field %q is %s in the built-in catalog, not %s: a pricing file may change only the price of a built-in model (price_per_1m, batch_price_per_1m, batch_window, as_of, source, notes); give another model name for other limits", model, field, old, new)
}

// parseModels decodes a list of models, strictly: unknown fields are errors.
func parseModels(data []byte, isJSON bool) ([]Model, error) {
	trimmed := bytes.TrimSpace(data)
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if len(trimmed) > 0 && trimmed[0] == '[' {
			var ms []Model
			if err := dec.Decode(&ms); err != nil {
				return nil, fmt.Errorf("decoding JSON: %w", err)
			}
			return ms, nil
		}
		var f catalogFile
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("decoding JSON: %w", err)
		}
		return f.Models, nil
	}
	// YAML is decoded untrimmed: leading white space is indentation.
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return nil, fmt.Errorf("decoding YAML: %w", err)
	}
	if len(node.Content) == 0 {
		return nil, nil
	}
	if err := checkYAMLAmounts(&node); err != nil {
		return nil, fmt.Errorf("decoding YAML: %w", err)
	}
	root := node.Content[0]
	if root.Kind == yaml.MappingNode {
		var f catalogFile
		if err := decodeYAMLStrict(data, &f); err != nil {
			return nil, err
		}
		return f.Models, nil
	}
	var ms []Model
	if err := decodeYAMLStrict(data, &ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// checkYAMLAmounts checks every money field of a YAML document, so that a bad
// amount is reported with its field's name (Micros.UnmarshalYAML sees only
// the value).
func checkYAMLAmounts(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value != "price_per_1m" && k.Value != "batch_price_per_1m" || v.ShortTag() == "!!null" {
				continue
			}
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: field %q: amount is not a number", v.Line, k.Value)
			}
			if _, err := parseAmount(v.Value); err != nil {
				return fmt.Errorf("line %d: field %q: %w", v.Line, k.Value, err)
			}
		}
	}
	for _, c := range n.Content {
		if err := checkYAMLAmounts(c); err != nil {
			return err
		}
	}
	return nil
}

func decodeYAMLStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding YAML: %w", err)
	}
	return nil
}

// UnmarshalYAML reads a YAML scalar of dollars exactly (no float rounding),
// with an optional leading minus sign, as UnmarshalJSON does.
func (m *Micros) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: amount is not a number", n.Line)
	}
	v, err := parseAmount(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = v
	return nil
}

// Lookup returns the model called name, or an error wrapping ErrUnknownModel.
func (c *Catalog) Lookup(name string) (Model, error) {
	m, ok := c.models[name]
	if !ok {
		return Model{}, fmt.Errorf("%w %q (run 'reembed models' for the list)", ErrUnknownModel, name)
	}
	return m, nil
}

// Models returns every model, sorted by provider then name.
func (c *Catalog) Models() []Model {
	out := make([]Model, 0, len(c.models))
	for _, m := range c.models {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Model) int {
		if a.Provider != b.Provider {
			return strings.Compare(a.Provider, b.Provider)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Resolve turns a list of names, or the single word "all", into models.
func (c *Catalog) Resolve(names []string) ([]Model, error) {
	if len(names) == 1 && names[0] == "all" {
		return c.Models(), nil
	}
	out := make([]Model, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		m, err := c.Lookup(n)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
