package main

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

// TestEveryFieldHasItsFlag holds the CLI's side of the one vocabulary: each
// {field} that a package below cmd/ writes in a message is rendered as a
// flag that some command has (or the PATH argument), so that no
// message tells a CLI user to set a flag that does not exist.
func TestEveryFieldHasItsFlag(t *testing.T) {
	flags := map[string]bool{}
	flagLine := regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*)`)
	for _, c := range commands() {
		_, stdout, stderr := runMain(t, c.name, "--help")
		for _, m := range flagLine.FindAllStringSubmatch(stdout+stderr, -1) {
			flags["--"+m[1]] = true
		}
	}
	if len(flags) < 50 {
		t.Fatalf("found %d flags in the commands' help: the help format changed", len(flags))
	}
	for field, where := range messageFields(t, filepath.Join("..", "..")) {
		name := flagName(field)
		if !flags[name] && name != "PATH" {
			t.Errorf("%s: {%s} renders as %s, which no command has (map it in flagOfField)", where, field, name)
		}
	}
}

// messageFields returns the {field} placeholders of the string literals of
// the packages below cmd/ (tests, scripts and the HTTP routes' {id} left
// out), each with where it is written.
func messageFields(t *testing.T, root string) map[string]string {
	t.Helper()
	placeholder := regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "cmd" || rel == "scripts" || rel == "api" || path != root && strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules" {
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
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				for _, m := range placeholder.FindAllStringSubmatch(lit.Value, -1) {
					out[m[1]] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found %d fields: the walk missed the tree", len(out))
	}
	return out
}
