package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// runMain runs reembed with args, as main does, and returns the exit code and
// what it printed.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"NoCommandIsUsageError", nil, exitUsage, "Commands:", ""},
		{"HelpIsOK", []string{"help"}, exitOK, "estimate", ""},
		{"DashHelpIsOK", []string{"--help"}, exitOK, "models", ""},
		{"UnknownCommandIsUsageError", []string{"estimat"}, exitUsage, "", `unknown command "estimat"`},
		{"EstimateHelpIsOK", []string{"estimate", "-h"}, exitOK, "-chunk-overlap", ""},
		{"ModelsHelpIsOK", []string{"models", "--help"}, exitOK, "-pricing", ""},
		{"UnknownFlagIsUsageError", []string{"models", "--bogus"}, exitUsage, "", "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runMain(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantStdout) || !strings.Contains(errOut, tt.wantStderr) {
				t.Errorf("reembed %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					tt.args, code, out, errOut, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestModels(t *testing.T) {
	t.Run("TableListsCatalog", func(t *testing.T) {
		code, out, errOut := runMain(t, "models")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"PROVIDER", "text-embedding-3-small", "$0.02", "$0.01", "exact", "estimated", "voyage-3", "2026-11-01"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("JSONListsCatalog", func(t *testing.T) {
		code, out, errOut := runMain(t, "models", "--format", "json")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got struct {
			CatalogVersion string           `json:"catalog_version"`
			Models         []map[string]any `json:"models"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if got.CatalogVersion == "" || len(got.Models) < 10 {
			t.Errorf("catalog_version %q, %d models", got.CatalogVersion, len(got.Models))
		}
		byName := map[string]map[string]any{}
		for _, m := range got.Models {
			byName[m["model"].(string)] = m
			for _, f := range []string{"provider", "price_per_1m", "max_tokens_per_input", "max_inputs_per_request", "default_dimensions", "as_of", "source"} {
				if _, ok := m[f]; !ok {
					t.Errorf("%v lacks %q", m["model"], f)
				}
			}
		}
		small := byName["text-embedding-3-small"]
		if small == nil || small["price_per_1m"] != 0.02 || small["batch_price_per_1m"] != 0.01 || small["max_tokens_per_request"] != 300000.0 {
			t.Errorf("text-embedding-3-small = %v", small)
		}
	})
	t.Run("PricingFileAddsModel", func(t *testing.T) {
		p := writeTemp(t, "p.yaml", pricingYAML)
		code, out, errOut := runMain(t, "models", "--pricing", p)
		if code != exitOK || !strings.Contains(out, "acme-embed") {
			t.Errorf("exit %d, stdout %q, stderr %q; want acme-embed listed", code, out, errOut)
		}
	})
	t.Run("BadFormatIsUsageError", func(t *testing.T) {
		code, _, errOut := runMain(t, "models", "--format", "csv")
		if code != exitUsage || !strings.Contains(errOut, "--format") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("MalformedPricingIsUsageError", func(t *testing.T) {
		p := writeTemp(t, "bad.yaml", "- model: [\n")
		code, _, errOut := runMain(t, "models", "--pricing", p)
		if code != exitUsage || !strings.Contains(errOut, "--pricing") || !strings.Contains(errOut, p) {
			t.Errorf("exit %d, stderr %q; want 2 naming --pricing and %s", code, errOut, p)
		}
	})
}
