package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
)

func runModels(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "models", "models [flags]\n\nLists the pricing catalog: prices per 1M tokens, limits, tokenizer, source and date.")
	format := fs.String("format", "table", "output format: table or json")
	pricingFile := fs.String("pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	cat, err := loadCatalog(*pricingFile)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"catalog_version": cat.Version, "models": cat.Models()})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PROVIDER\tMODEL\tPRICE/1M\tBATCH/1M\tTOKENS\tMAX INPUT\tINPUTS/REQ\tTOKENS/REQ\tDIMS\tAS OF\n")
	for _, m := range cat.Models() {
		batch := "-"
		if m.BatchPricePer1M != nil {
			batch = "$" + m.BatchPricePer1M.String()
		}
		perReq := "-"
		if m.MaxTokensPerRequest > 0 {
			perReq = fmt.Sprint(m.MaxTokensPerRequest)
		}
		fmt.Fprintf(tw, "%s\t%s\t$%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", m.Provider, m.Name, m.PricePer1M, batch, m.TokenCount(),
			m.MaxTokensPerInput, m.MaxInputsPerRequest, perReq, m.DefaultDimensions, m.AsOf)
	}
	return tw.Flush()
}
