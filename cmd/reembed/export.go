package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pinecone"
)

func runExport(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "export", "export --format pinecone --checkpoint DIR --out DIR [flags]\n\n"+
		"Writes the checkpoint's winning rows as import files for a vector store. --format pinecone writes\n"+
		"Pinecone's Parquet import layout: OUT/NAMESPACE/*.parquet with columns id, values, metadata (JSON);\n"+
		"upload OUT to S3, GCS or Azure Blob Storage and start an import. A killed export resumes.")
	format := fs.String("format", "", "export format: pinecone")
	dir := fs.String("checkpoint", "", "checkpoint written by rebuild: a directory or s3://, gs://, azblob:// URL")
	out := fs.String("out", "", "local directory to write the import files to")
	ns := fs.String("namespace", "", "Pinecone namespace (a subdirectory; default __default__, the default namespace)")
	noText := fs.Bool("no-text", false, "leave the chunk text out of the metadata (Pinecone allows 40 KB of metadata per record)")
	summary := fs.String("summary", "table", "summary on stdout: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *format != "pinecone":
		return usagef("--format %q: want pinecone", *format)
	case *dir == "":
		return usagef("--checkpoint is required")
	case *out == "":
		return usagef("--out is required")
	case *summary != "table" && *summary != "json":
		return usagef("--summary %q: want table or json", *summary)
	}
	src, m, closeStore, err := openCheckpoint(ctx, *dir)
	if err != nil {
		return err
	}
	defer closeStore()
	sink := &pinecone.Sink{Dir: *out, Namespace: *ns, NoText: *noText}
	rep, err := store.Restore(ctx, src, m, sink, store.Options{Index: store.IndexOptions{Kind: "none"}, Logger: e.logger})
	if err != nil {
		return err
	}
	if *summary == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			store.Report
			Records     int `json:"records"`
			TextDropped int `json:"text_dropped"`
		}{rep, sink.Records, sink.TextDropped})
	}
	fmt.Fprintf(e.stdout, "Exported %d records (%d parts, %d already exported) to %s for Pinecone; %d without text (over 40 KB of metadata)\n",
		sink.Records, rep.PartsLoaded, rep.PartsSkipped, *out, sink.TextDropped)
	return nil
}
