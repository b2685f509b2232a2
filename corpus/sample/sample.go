// Package sample holds the sample corpus embedded in reembed (see SOURCES.md):
// a couple of MB of real text in HTML, Markdown, plain text, JSONL and CSV, so
// that the estimate and the drill run with no flags and no network.
package sample

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed data
var data embed.FS

// Name is how the sample corpus is named in output.
const Name = "(bundled sample corpus)"

// FS returns the sample corpus files, rooted at its top directory.
func FS() fs.FS {
	sub, err := fs.Sub(data, "data")
	if err != nil {
		panic(err) // cannot happen: "data" is embedded
	}
	return sub
}

// Extract writes the sample corpus under dir (created if needed) and returns
// the corpus root. Document IDs are paths relative to that root, so they do
// not depend on dir.
func Extract(dir string) (string, error) {
	root := filepath.Join(dir, "sample")
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(root, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("extracting the sample corpus to %q: %w", dir, err)
	}
	return root, nil
}
