package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// preflight checks, before anything is read or sent, what would otherwise
// fail after paying: the API key is set, --out is writable, and an existing
// checkpoint's manifest matches the model, dimensions and chunking. Each
// failure is a usage error (exit 2); the checks take milliseconds.
func preflight(ctx context.Context, e *env, f *rebuildFlags, spec planner.RebuildSpec, loc storeLocation) error {
	if err := checkAPIKey(e, &f.provider); err != nil {
		return err
	}
	if loc.isLocal() {
		if err := checkWritable(f.out, !f.dryRun); err != nil {
			return err
		}
	} else if err := checkStoreWritable(ctx, loc); err != nil {
		return err
	}
	return checkManifest(ctx, loc, spec, f.force)
}

// storeProbeTimeout bounds the object-storage probe: an endpoint that does
// not answer fails the preflight instead of hanging it.
const storeProbeTimeout = 30 * time.Second

// checkStoreWritable writes and deletes a small probe object, with a name
// only reembed makes, under an object-storage --out (s3://, gs://, azblob://,
// file://): credentials that may not write there, or may not delete (a
// rebuild removes and renames objects), fail now, before anything is sent.
// Dry runs probe too: the object is gone when it returns.
func checkStoreWritable(ctx context.Context, loc storeLocation) error {
	ctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	defer cancel()
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return &usageError{fmt.Errorf("--out: %w", err)}
	}
	defer closeStore()
	name := fmt.Sprintf(".reembed-preflight-%d-%d", os.Getpid(), time.Now().UnixNano())
	err = store.Commit(ctx, name, func(w io.Writer) error {
		_, err := io.WriteString(w, "reembed preflight\n")
		return err
	})
	if err != nil {
		return usagef("--out %s is not writable (%v): a rebuild would pay for chunks it cannot commit", loc, redactErr(err, loc.raw))
	}
	if err := store.Remove(ctx, name); err != nil {
		return usagef("--out %s: the probe object %s was written but cannot be deleted (%v): a rebuild deletes and renames objects there",
			loc, name, redactErr(err, loc.raw))
	}
	return nil
}

// checkAPIKey refuses a real provider without a key: the variable must be
// set and hold more than white space. A server on loopback (reembed
// simulate, a local TEI) may go without one.
func checkAPIKey(e *env, p *providerFlags) error {
	if p.provider != "openai" {
		return nil
	}
	key := e.getenv(p.apiKeyEnv)
	switch {
	case key != "" && strings.TrimSpace(key) == "":
		return usagef("--api-key-env: environment variable %s holds only white space", p.apiKeyEnv)
	case key == "" && !loopbackURL(p.baseURL):
		return usagef("--api-key-env: environment variable %s is not set or empty; a rebuild against %s would fail on its first request (set it, or use --provider simulated)",
			p.apiKeyEnv, orDefault(p.baseURL, "https://api.openai.com/v1"))
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loopbackURL reports whether u names a server on this machine.
func loopbackURL(u string) bool {
	if u == "" {
		return false
	}
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := pu.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkWritable writes and removes a probe file, with a name only reembed
// makes, in dir, which it creates when create is set; otherwise (a dry run)
// a missing dir is probed in its nearest existing parent.
func checkWritable(dir string, create bool) error {
	probe := dir
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return usagef("--out %q: cannot create it: %v", dir, errors.Unwrap(err))
		}
	} else {
		for {
			if _, err := os.Stat(probe); err == nil || filepath.Dir(probe) == probe {
				break
			}
			probe = filepath.Dir(probe)
		}
	}
	f, err := os.CreateTemp(probe, ".reembed-preflight-*")
	if err != nil {
		return usagef("--out %q is not writable (%v): a rebuild would pay for chunks it cannot commit", dir, errors.Unwrap(err))
	}
	name := f.Name()
	_, werr := f.Write([]byte("reembed preflight\n"))
	cerr := f.Close()
	os.Remove(name)
	if werr != nil || cerr != nil {
		return usagef("--out %q is not writable (%v): a rebuild would pay for chunks it cannot commit", dir, errors.Join(werr, cerr))
	}
	return nil
}

// checkManifest compares an existing manifest at loc with the job's; force
// lets through what --force may override (never model or dimensions).
func checkManifest(ctx context.Context, loc storeLocation, spec planner.RebuildSpec, force bool) error {
	if loc.isLocal() {
		if _, err := os.Stat(filepath.Join(loc.raw, filepath.FromSlash(checkpoint.ManifestPath(spec.Shard)))); err != nil {
			return nil // a new checkpoint
		}
	}
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	have, err := checkpoint.ReadManifest(ctx, store, spec.Shard)
	if err != nil {
		if loc.isLocal() {
			return usagef("--out %q: %v", loc, err)
		}
		return nil // none yet on object storage
	}
	if err := checkpoint.Compare(checkpoint.ManifestPath(spec.Shard), have, spec.Manifest()); err != nil {
		me, ok := errors.AsType[*checkpoint.MismatchError](err)
		if ok && me.Forceable() {
			if force {
				return nil
			}
			return usagef("--out %q: %w (--force resumes across a chunking change)", loc, err)
		}
		return usagef("--out %q: %w", loc, err)
	}
	return nil
}

// dryRun prints what the rebuild would do, after the preflight checks,
// and sends nothing.
func dryRun(ctx context.Context, e *env, f *rebuildFlags, spec planner.RebuildSpec, loc storeLocation) error {
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	req := planner.EstimateRequest{Paths: spec.Paths, Corpus: spec.Corpus, Models: []pricing.Model{spec.Model}, ChunkTokens: spec.ChunkTokens,
		ChunkOverlap: spec.ChunkOverlap, Limits: spec.Limits, Jobs: spec.Jobs, Shard: spec.Shard, FieldName: flagName}
	req.Limits.Latency = planner.DefaultLatency
	if err := loc.exists(); err == nil {
		store, closeStore, err := loc.open(ctx)
		if err != nil {
			return err
		}
		defer closeStore()
		if files, err := store.List(ctx); err == nil && len(files) > 0 {
			if req.Done, err = planner.CheckpointDone(ctx, store); err != nil {
				return usagef("--out %q: %v", loc, err)
			}
		}
	}
	est, err := planner.Run(ctx, tok, req)
	if err != nil {
		return fmt.Errorf("planning the dry run: %w", err)
	}
	head := e.stdout
	if f.format == "json" {
		head = e.stderr
	}
	fmt.Fprintf(head, "Dry run: nothing was sent and nothing was written. Checked: API key, --out %s writable, manifest, corpus.\n", loc)
	fmt.Fprintf(head, "Provider %s, model %s, budget %s. The plan:\n\n", f.provider.provider, spec.Model.Name, orDefault(f.budgetUSD, "none"))
	if f.format == "json" {
		return writeEstimate(e.stdout, est, "json")
	}
	return writeEstimateTable(e.stdout, est)
}
