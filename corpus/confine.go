package corpus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Corpus roots: the directories a server reads corpora from. Every path a
// client names is confined to them (ResolvePath), and every path shown back
// to a client is made relative to them again (RelPath, ClientPaths), so
// answers never reveal the server's directory layout.

// RealDir returns dir as an absolute path with symlinks resolved; it must be
// a directory.
func RealDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return real, nil
}

// ResolvePath resolves a corpus path of a request against roots (absolute
// directories without symlinks): a relative path is taken inside the first
// root where it exists, an absolute one must lie inside a root. `..`,
// absolute paths elsewhere and symlinks that leave the root give an error
// wrapping ErrOutsideRoot; a path that exists in no root wraps
// fs.ErrNotExist. The result is the real path (symlinks resolved).
func ResolvePath(roots []string, p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%q: %w", p, ErrOutsideRoot)
	}
	var candidates [][2]string // root, rel
	if filepath.IsAbs(p) {
		clean := filepath.Clean(p)
		for _, r := range roots {
			rel, err := filepath.Rel(r, clean)
			if err == nil && filepath.IsLocal(rel) || rel == "." {
				candidates = append(candidates, [2]string{r, rel})
			}
		}
		if len(candidates) == 0 {
			// Maybe the path reaches a root through a symlink.
			if real, err := filepath.EvalSymlinks(clean); err == nil {
				for _, r := range roots {
					if rel, err := filepath.Rel(r, real); err == nil && (filepath.IsLocal(rel) || rel == ".") {
						candidates = append(candidates, [2]string{r, rel})
					}
				}
			}
		}
		if len(candidates) == 0 {
			return "", fmt.Errorf("%q: %w", p, ErrOutsideRoot)
		}
	} else {
		if !filepath.IsLocal(p) && filepath.Clean(p) != "." {
			return "", fmt.Errorf("%q: %w", p, ErrOutsideRoot)
		}
		for _, r := range roots {
			candidates = append(candidates, [2]string{r, filepath.Clean(p)})
		}
	}
	var firstErr error
	for _, c := range candidates {
		root, rel := c[0], c[1]
		r, err := os.OpenRoot(root)
		if err != nil {
			return "", fmt.Errorf("opening corpus root: %w", err)
		}
		_, err = r.Stat(rel)
		r.Close()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				firstErr = cmpErr(firstErr, fmt.Errorf("%q: %w", p, fs.ErrNotExist))
				continue
			}
			// os.Root refuses ".." and symlinks that leave the root.
			return "", fmt.Errorf("%q: %w", p, ErrOutsideRoot)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", p, err)
		}
		if rel2, err := filepath.Rel(root, real); err != nil || !(filepath.IsLocal(rel2) || rel2 == ".") {
			return "", fmt.Errorf("%q: %w", p, ErrOutsideRoot)
		}
		return real, nil
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%q: no corpus root is configured: %w", p, fs.ErrNotExist)
	}
	return "", firstErr
}

func cmpErr(have, next error) error {
	if have != nil {
		return have
	}
	return next
}

// ClientPaths returns err with the server's (resolved) paths replaced by
// the paths the client gave, so that answers do not reveal the server's
// directory layout. errors.Is and errors.As still see err.
func ClientPaths(err error, server, client []string) error {
	return &rewordedError{msg: ClientText(err.Error(), server, client, nil), err: err}
}

// ClientText returns msg with the server's paths rewritten for a client:
// each server path (a resolved corpus path) becomes the path the client
// gave for it, then any other path inside one of roots becomes relative to
// that root. Longer paths are rewritten first, so a root never shadows a
// path inside it.
func ClientText(msg string, server, client, roots []string) string {
	type pair struct{ from, to string }
	var pairs []pair
	for i := range server {
		if server[i] != "" && i < len(client) {
			pairs = append(pairs, pair{server[i], client[i]})
		}
	}
	for _, r := range roots {
		if r != "" {
			pairs = append(pairs, pair{r + string(filepath.Separator), ""})
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return len(b.from) - len(a.from) })
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p.from, p.to)
	}
	return strings.NewReplacer(args...).Replace(msg)
}

// rewordedError is an error with another text and the same cause.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }
