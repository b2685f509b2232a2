package corpus

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Document IDs and several roots.
//
// A document's ID is its path relative to its own root, whatever other roots
// are read with it: a root keeps its IDs when roots are added (or removed), so
// a checkpoint made of one root is reused when a second root joins it.
//
// Two roots may hold the same relative path. The first root given keeps the
// plain ID; a later root's file whose path an earlier root also holds (any
// entry at that path, read or not) is named "<root name>//<path>", where the
// root name is the base name of the directory root (the file name of a
// single-file root). A double slash never appears in a plain ID, so the two
// cannot meet. Roots are therefore read in the order given, and a checkpoint's
// manifest records that order. Two roots with the same name, and roots that
// overlap (one inside the other, or the same path twice), are refused.

// CollisionSeparator joins a root's name and a relative path in the document
// ID of a file that an earlier root also holds (see the package notes).
const CollisionSeparator = "//"

// CanonicalRoot returns the canonical form of a corpus path: absolute,
// cleaned, with symlinks resolved. Checkpoint manifests record roots in this
// form, so that two spellings of one directory compare equal.
func CanonicalRoot(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolving corpus path %q: %w", p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolving corpus path %q: %w", p, err)
	}
	return filepath.Clean(real), nil
}

// CanonicalRoots is [CanonicalRoot] for each path, in order.
func CanonicalRoots(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		c, err := CanonicalRoot(p)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// nameRoots gives each root its name and refuses roots that share a name or
// overlap. With one root there is nothing to check.
func (s *Source) nameRoots() error {
	if len(s.roots) < 2 {
		return nil
	}
	seen := map[string]string{}
	canon := make([]string, len(s.roots))
	for i, r := range s.roots {
		c, err := CanonicalRoot(r.name)
		if err != nil {
			return err
		}
		canon[i] = c
		r.label = r.only
		if r.label == "" {
			r.label = filepath.Base(c)
		}
		if other, ok := seen[r.label]; ok {
			return fmt.Errorf("%w: corpus paths %q and %q have the same name %q, which would not tell their documents apart when both hold a path: give one directory that holds both, or paths with different names", ErrCorpusPath, other, r.name, r.label)
		}
		seen[r.label] = r.name
	}
	for i := range canon {
		for j := range i {
			if within(canon[i], canon[j]) || within(canon[j], canon[i]) {
				return fmt.Errorf("%w: corpus paths %q and %q overlap, so some documents would be read twice: give only the outer one", ErrCorpusPath, s.roots[j].name, s.roots[i].name)
			}
		}
	}
	return nil
}

// within reports whether path p is dir or inside it (both canonical).
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// docID is the document ID of a file of root number i at rel (see the
// package notes): rel, unless an earlier root holds rel too.
func (s *Source) docID(i int, rel string) string {
	for _, earlier := range s.roots[:i] {
		if earlier.holds(rel) {
			return s.roots[i].label + CollisionSeparator + rel
		}
	}
	return rel
}

// holds reports whether the root has an entry at rel.
func (r *root) holds(rel string) bool {
	if r.only != "" {
		return rel == r.only
	}
	_, err := r.dir.Lstat(rel)
	return err == nil
}
