package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
)

// patternList is a repeatable flag of glob patterns (not split on commas:
// "{a,b}" is one pattern).
type patternList []string

func (p *patternList) String() string     { return strings.Join(*p, " ") }
func (p *patternList) Set(v string) error { *p = append(*p, v); return nil }

// filterFlags choose which files of the corpus are read (corpus/filter.go).
type filterFlags struct {
	exclude, include  patternList
	noDefaultExcludes bool
	noIgnoreFile      bool
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.exclude, "exclude", "leave out files and directories matching this glob (repeatable; ** spans directories; a name without / matches at any depth)")
	fs.Var(&f.include, "include", "read only files matching this glob (repeatable); --exclude wins")
	fs.BoolVar(&f.noDefaultExcludes, "no-default-excludes", false, "also read .git, .hg and .svn directories (skipped by default)")
	fs.BoolVar(&f.noIgnoreFile, "no-ignore-file", false, "disregard "+corpus.IgnoreFileName+" files (.gitignore syntax, honoured by default)")
}

func (f *filterFlags) filters() corpus.Filters {
	return corpus.Filters{Exclude: slices.Clone(f.exclude), Include: slices.Clone(f.include),
		NoDefaultExcludes: f.noDefaultExcludes, NoIgnoreFile: f.noIgnoreFile}
}

// args returns the flags that give these filters to a child process.
func (f *filterFlags) args() []string {
	var out []string
	for _, p := range f.exclude {
		out = append(out, "--exclude", p)
	}
	for _, p := range f.include {
		out = append(out, "--include", p)
	}
	if f.noDefaultExcludes {
		out = append(out, "--no-default-excludes")
	}
	if f.noIgnoreFile {
		out = append(out, "--no-ignore-file")
	}
	return out
}

// given reports whether any filter flag was set on the command line.
func (f *filterFlags) given(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "exclude", "include", "no-default-excludes", "no-ignore-file":
			given = true
		}
	})
	return given
}

// checkpointCorpus is the corpus a command that takes a checkpoint reads
// (issue 14.4: the bundled sample is the default of estimate and drill only).
// With no PATH, the roots and filters the manifest m records (nil: no
// checkpoint yet, so a PATH is needed). With PATHs, they must be the
// manifest's roots (canonically) and the filters its filters, unless changed
// (--corpus-changed) says the corpus moved or is meant to change.
func checkpointCorpus(stderr io.Writer, args []string, m *checkpoint.Manifest, filters corpus.Filters, filtersGiven, changed bool) ([]string, corpus.Filters, error) {
	if len(args) > 0 {
		for _, p := range args {
			if _, err := os.Stat(p); err != nil {
				return nil, filters, usagef("corpus path %q: %v", p, errors.Unwrap(err))
			}
		}
	}
	if m == nil {
		if len(args) == 0 {
			return nil, filters, usagef("no corpus PATH given, and the checkpoint records none: give the corpus to read (the bundled sample is the default of estimate and drill only)")
		}
		return args, filters, nil
	}
	if !filtersGiven {
		filters = m.Filters
	} else if !filters.Equal(m.Filters) && !changed {
		return nil, filters, usagef("the filters given (%s) differ from the checkpoint's (%s): give none to use the checkpoint's, or --corpus-changed to read with these", filters, m.Filters)
	}
	if len(args) == 0 {
		if len(m.CorpusRoots) == 0 {
			return nil, filters, usagef("the checkpoint records no corpus roots: give the corpus PATH")
		}
		for _, r := range m.CorpusRoots {
			if _, err := os.Stat(r); err != nil {
				return nil, filters, usagef("the checkpoint's corpus root %q: %v: give the corpus PATH (with --corpus-changed if it moved)", r, errors.Unwrap(err))
			}
		}
		fmt.Fprintf(stderr, "reembed: reading the checkpoint's corpus: %s\n", strings.Join(m.CorpusRoots, ", "))
		return slices.Clone(m.CorpusRoots), filters, nil
	}
	if !changed && !sameRoots(args, m.CorpusRoots) {
		return nil, filters, usagef("corpus %s is not the checkpoint's corpus %s: give no PATH to read the checkpoint's, or --corpus-changed if the corpus moved or you mean to change it (document IDs are relative to each root)",
			strings.Join(args, ", "), strings.Join(m.CorpusRoots, ", "))
	}
	return args, filters, nil
}

// sameRoots reports whether paths name the roots a manifest recorded, in the
// same order, once both are canonical (old manifests may hold relative paths).
func sameRoots(paths, recorded []string) bool {
	if len(paths) != len(recorded) {
		return false
	}
	for i := range paths {
		a, err := corpus.CanonicalRoot(paths[i])
		if err != nil {
			return false
		}
		b, err := corpus.CanonicalRoot(recorded[i])
		if err != nil {
			b = recorded[i]
		}
		if a != b {
			return false
		}
	}
	return true
}

// emptyCorpusError returns the warning for a corpus that yielded no
// documents, or whose files were mostly skipped (exit 2 unless
// --allow-empty), or nil. One shard of a sharded job may hold no documents.
func emptyCorpusError(c planner.CorpusSummary, sharded bool) error {
	if c.WhatIf || sharded && c.Documents == 0 {
		return nil
	}
	var msg string
	switch {
	case c.Documents == 0 && c.Sampled:
		msg = fmt.Sprintf("the sample (%g) read 0 documents of the corpus: raise --sample", c.SampleFraction)
	case c.Documents == 0:
		msg = fmt.Sprintf("the corpus yielded 0 documents (%d files skipped, %d entries excluded by filters)", c.SkippedFiles, c.Excluded)
	case c.SkippedFiles > c.Files:
		msg = fmt.Sprintf("most files were skipped: %d skipped, %d read", c.SkippedFiles, c.Files)
	default:
		return nil
	}
	return &exitCodeError{exitUsage, fmt.Errorf("warning: %s; check the corpus path and filters, or pass --allow-empty", msg)}
}

// readManifestIfAny returns the checkpoint's manifest, or nil when the store
// holds none yet.
func readManifestIfAny(ctx context.Context, store checkpoint.Store) (*checkpoint.Manifest, error) {
	files, err := store.List(ctx)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing the checkpoint: %w", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f.Name, checkpoint.ManifestName) {
			m, err := readAnyManifest(ctx, store)
			if err != nil {
				return nil, err
			}
			return &m, nil
		}
	}
	return nil, nil
}
