package corpus

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Choosing what is read.
//
// Filters apply to the files found by walking a directory root; a file given
// as a root itself is always read. Paths are matched relative to their root
// with '/' separators, by these rules (the rules of .gitignore):
//
//   - a pattern with no '/' but a trailing one matches a file or directory
//     name at any depth ("*.log", "node_modules");
//   - a pattern with a '/' matches the path from the root (a leading '/' is
//     dropped): "docs/*.md", "build/**", "**/testdata/*.json";
//   - "**" matches any number of directories; "*", "?", "[a-z]" and "{a,b}"
//     work as in github.com/bmatcuk/doublestar;
//   - a trailing '/' matches directories only.
//
// An excluded directory is not entered, so nothing under it is read.
// [Filters.Exclude] patterns leave out what they match; when
// [Filters.Include] is given, only files that match one of its patterns are
// read (directories are entered unless excluded); an exclusion always wins.
//
// By default the version-control directories [DefaultExcludes] are not
// entered ([Filters.NoDefaultExcludes] reads them), and a file named
// [IgnoreFileName] in any directory lists patterns in .gitignore syntax
// relative to that directory: '#' comments, '!' re-includes what an earlier
// line excluded, the last matching line wins, and nothing can be re-included
// under an excluded directory ([Filters.NoIgnoreFile] disables them). The
// ignore files themselves are never read as documents. What the filters left
// out is counted in [Stats.Excluded], not listed as skipped.

// IgnoreFileName is the per-directory ignore file, in .gitignore syntax.
const IgnoreFileName = ".reembedignore"

// DefaultExcludes are the directory names skipped unless
// [Filters.NoDefaultExcludes] is set: version-control metadata.
var DefaultExcludes = []string{".git", ".hg", ".svn"}

// ErrBadFilter is wrapped by [Open]'s error for a pattern that is not a glob.
var ErrBadFilter = errors.New("invalid filter pattern")

// Filters choose which files of a directory root are read. The zero value
// reads everything but the [DefaultExcludes] and what ignore files exclude.
// A checkpoint's manifest records them, so that resume and verify read the
// same files.
type Filters struct {
	// Exclude lists patterns of files and directories not to read.
	Exclude []string `json:"exclude"`
	// Include, when not empty, lists patterns of the only files to read.
	Include []string `json:"include"`
	// NoDefaultExcludes reads the [DefaultExcludes] directories too.
	NoDefaultExcludes bool `json:"no_default_excludes"`
	// NoIgnoreFile disregards [IgnoreFileName] files.
	NoIgnoreFile bool `json:"no_ignore_file"`
}

// Equal reports whether two filters select the same files.
func (f Filters) Equal(g Filters) bool {
	eq := func(a, b []string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	return eq(f.Exclude, g.Exclude) && eq(f.Include, g.Include) &&
		f.NoDefaultExcludes == g.NoDefaultExcludes && f.NoIgnoreFile == g.NoIgnoreFile
}

// String describes the filters in words, for messages.
func (f Filters) String() string {
	var parts []string
	for _, p := range f.Exclude {
		parts = append(parts, "exclude "+p)
	}
	for _, p := range f.Include {
		parts = append(parts, "include "+p)
	}
	if f.NoDefaultExcludes {
		parts = append(parts, "no default excludes")
	}
	if f.NoIgnoreFile {
		parts = append(parts, "no "+IgnoreFileName)
	}
	if len(parts) == 0 {
		return "default filters"
	}
	return strings.Join(parts, ", ")
}

// Validate checks every pattern; the error names the field (exclude or
// include) and the pattern.
func (f Filters) Validate() error {
	var errs []error
	for field, pats := range map[string][]string{"exclude": f.Exclude, "include": f.Include} {
		for _, p := range pats {
			if _, err := parseRule(".", p); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s pattern %q: %v", ErrBadFilter, field, p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// rule is one pattern, relative to the directory base ("." for the root).
type rule struct {
	base     string
	pattern  string
	negate   bool
	dirOnly  bool
	anchored bool
}

// parseRule parses one pattern (in .gitignore syntax, without comments).
func parseRule(base, p string) (rule, error) {
	r := rule{base: base}
	if strings.HasPrefix(p, "!") {
		r.negate, p = true, p[1:]
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly, p = true, strings.TrimRight(p, "/")
	}
	if strings.Contains(p, "/") {
		r.anchored, p = true, strings.TrimPrefix(p, "/")
	}
	if p == "" {
		return r, errors.New("empty pattern")
	}
	if !doublestar.ValidatePattern(p) {
		return r, errors.New("not a valid glob")
	}
	r.pattern = p
	return r, nil
}

// matches reports whether the rule matches the entry at rel (relative to the
// root), a directory or not.
func (r rule) matches(rel string, dir bool) bool {
	if r.dirOnly && !dir {
		return false
	}
	sub := rel
	if r.base != "." {
		if !strings.HasPrefix(rel, r.base+"/") {
			return false
		}
		sub = rel[len(r.base)+1:]
	}
	if !r.anchored {
		sub = path.Base(sub)
	}
	return doublestar.MatchUnvalidated(r.pattern, sub)
}

// parseIgnoreFile reads the rules of an ignore file in directory base.
// Lines that are not valid patterns are returned as problems, not rules.
func parseIgnoreFile(base string, data []byte) (rules []rule, bad []string) {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if !strings.HasSuffix(line, `\ `) {
			line = strings.TrimRight(line, " \t")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, `\#`) || strings.HasPrefix(line, `\!`) {
			line = line[1:]
		}
		r, err := parseRule(base, line)
		if err != nil {
			bad = append(bad, line)
			continue
		}
		rules = append(rules, r)
	}
	return rules, bad
}

// matcher holds compiled filters.
type matcher struct {
	exclude, include []rule
	defaults         bool
	ignoreFiles      bool
}

func newMatcher(f Filters) (*matcher, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	m := &matcher{defaults: !f.NoDefaultExcludes, ignoreFiles: !f.NoIgnoreFile}
	for _, p := range f.Exclude {
		r, _ := parseRule(".", p)
		m.exclude = append(m.exclude, r)
	}
	for _, p := range f.Include {
		r, _ := parseRule(".", p)
		m.include = append(m.include, r)
	}
	return m, nil
}

// verdict says why an entry is left out: "" when it is read.
type verdict int

const (
	keep verdict = iota
	excludedByDefault
	excluded
)

// judge decides about the entry at rel given the ignore-file rules in force
// (parents' first).
func (m *matcher) judge(rel string, dir bool, ignored []rule) verdict {
	name := path.Base(rel)
	if dir && m.defaults {
		for _, d := range DefaultExcludes {
			if name == d {
				return excludedByDefault
			}
		}
	}
	if !dir && name == IgnoreFileName && m.ignoreFiles {
		return excluded
	}
	for _, r := range m.exclude {
		if r.matches(rel, dir) {
			return excluded
		}
	}
	out := false
	for _, r := range ignored {
		if r.matches(rel, dir) {
			out = !r.negate
		}
	}
	if out {
		return excluded
	}
	if !dir && len(m.include) > 0 {
		for _, r := range m.include {
			if r.matches(rel, dir) {
				return keep
			}
		}
		return excluded
	}
	return keep
}
