package field_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// flagWord is a CLI flag name in text: --budget-usd.
var flagWord = regexp.MustCompile(`(^|[^-\w])--[a-z][a-z0-9-]*`)

// commandLines are the directories whose strings may name flags: the CLI,
// the scripts' own commands, and the test helper that runs PostgreSQL's
// tools with theirs.
var commandLines = []string{"cmd", "scripts", filepath.Join("store", "pgvector", "pgtest")}

// TestNoFlagNamesBelowCmd holds issue 12's rule: no string literal of a
// package below cmd/ names a CLI flag; errors and hints name settings as
// {snake_case} fields, which the CLI renders as flags and the API as JSON
// fields. It fails naming each literal that does.
func TestNoFlagNamesBelowCmd(t *testing.T) {
	root := ".."
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			for _, c := range commandLines {
				if rel == c {
					return filepath.SkipDir
				}
			}
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && flagWord.MatchString(lit.Value) {
				t.Errorf("%s: %s names a CLI flag; name the setting as a {snake_case} field (package field)", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
		files++
		return nil
	})
	if files < 100 {
		t.Errorf("read %d Go files: the walk missed the tree", files)
	}
	if err != nil {
		t.Fatal(err)
	}
}
