package field_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/reembed/reembed/field"
)

func flag(f string) string { return "--" + strings.ReplaceAll(f, "_", "-") }

func TestText(t *testing.T) {
	got := field.Text("raise {budget_usd} or {out_dir}; {Not} {} {x-y} stay", flag)
	if want := "raise --budget-usd or --out-dir; {Not} {} {x-y} stay"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got := field.Text("{part_rows}", nil); got != "part_rows" {
		t.Errorf("Text(nil) = %q, want plain", got)
	}
}

// TestErrorf checks that Error() names fields plainly, Render as asked, that
// arguments (a path with braces) are never read as placeholders, and that
// %w still wraps.
func TestErrorf(t *testing.T) {
	err := field.Errorf("%w: %q is held; write to another {out_dir}", fs.ErrExist, "/data/{out_dir}")
	if got, want := err.Error(), `file already exists: "/data/{out_dir}" is held; write to another out_dir`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := field.Render(err, flag), `file already exists: "/data/{out_dir}" is held; write to another --out-dir`; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Error("errors.Is does not see the wrapped error")
	}
	if got := field.Sprintf(flag, "%s: raise {tpm}", "{rpm}"); got != "{rpm}: raise --tpm" {
		t.Errorf("Sprintf = %q", got)
	}
}

// TestRenderWrapped checks that fields are rendered through wrapping by
// fmt.Errorf, errors.Join and Errorf itself.
func TestRenderWrapped(t *testing.T) {
	inner := field.Errorf("raise {budget_usd} above $%d", 5)
	outer := fmt.Errorf("rebuilding: %w", inner)
	joined := errors.Join(errors.New("first {plain} error"), outer)
	wrapped := field.Errorf("job: %w (see {data_dir})", joined)
	want := "job: first {plain} error\nrebuilding: raise --budget-usd above $5 (see --data-dir)"
	if got := field.Render(wrapped, flag); got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if got := wrapped.Error(); strings.Contains(got, "--") || !strings.Contains(got, "raise budget_usd above $5") {
		t.Errorf("Error() = %q, want fields named plainly", got)
	}
	if field.Render(nil, flag) != "" {
		t.Error("Render(nil) is not empty")
	}
	if got := field.Render(errors.New("no {fields} here"), flag); got != "no {fields} here" {
		t.Errorf("a plain error's braces were rendered: %q", got)
	}
}
