// Package field names settings in text written for people. Errors, hints,
// notes and recommendations written below cmd/ name a setting by its
// snake_case field as a placeholder ({budget_usd}, {out_dir}); each front
// end renders the placeholders in its own vocabulary: the CLI as flags
// (--budget-usd, --out), the API as JSON fields (budget_usd). Error() texts
// name fields plainly (budget_usd), so logs and the API need no rendering.
//
// It imports nothing of ours: every package may use it.
package field

import (
	"fmt"
	"regexp"
	"strings"
)

// placeholder matches a {field} placeholder.
var placeholder = regexp.MustCompile(`\{[a-z][a-z0-9_]*\}`)

// Plain names a field as itself, in snake_case: the vocabulary of Error()
// texts and of the API's JSON fields.
func Plain(field string) string { return field }

// Text returns s with each {field} placeholder replaced by name(field).
// Use it on text whose every brace is a placeholder (a format, a constant);
// text holding user input (paths, causes) goes through [Errorf] or
// [Sprintf], which render the format only.
func Text(s string, name func(field string) string) string {
	if name == nil {
		name = Plain
	}
	return placeholder.ReplaceAllStringFunc(s, func(p string) string { return name(p[1 : len(p)-1]) })
}

// Sprintf formats args by format after rendering format's placeholders with
// name: the args themselves (paths, model names) are never read as
// placeholders.
func Sprintf(name func(field string) string, format string, args ...any) string {
	return fmt.Sprintf(Text(format, name), args...)
}

// Renderer is an error whose text names fields: Render returns its text with
// them named by name. Error() is Render(Plain).
type Renderer interface {
	error
	Render(name func(field string) string) string
}

// Errorf is fmt.Errorf whose format may name fields as {snake_case}
// placeholders. The error's text names them plainly; [Render] names them as
// a front end asks. %w wraps as with fmt.Errorf (errors.Is and errors.As see
// the wrapped errors), and wrapped errors that name fields are rendered too.
func Errorf(format string, args ...any) error {
	return &fmtError{format: format, args: args, err: fmt.Errorf(Text(format, Plain), args...)}
}

// fmtError is the error of [Errorf].
type fmtError struct {
	format string
	args   []any
	err    error // fmt.Errorf of the plain text, for Error and Unwrap
}

func (e *fmtError) Error() string { return e.err.Error() }

// Unwrap returns the errors the format wraps with %w.
func (e *fmtError) Unwrap() []error {
	switch u := e.err.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	}
	return nil
}

// Render formats the error again with fields named by name, and with each
// error argument rendered.
func (e *fmtError) Render(name func(field string) string) string {
	args := make([]any, len(e.args))
	for i, a := range e.args {
		if err, ok := a.(error); ok {
			a = rendered{text: Render(err, name), err: err}
		}
		args[i] = a
	}
	return fmt.Errorf(Text(e.format, name), args...).Error()
}

// rendered stands for an error argument in a rendered format.
type rendered struct {
	text string
	err  error
}

func (r rendered) Error() string { return r.text }
func (r rendered) Unwrap() error { return r.err }

// Render returns err's text with the fields of every error in its tree named
// by name: a [Renderer] renders itself; any other error keeps its own words,
// with the text of each error it wraps replaced by that error's rendering
// (so fmt.Errorf("estimating: %w", err) and errors.Join render the fields of
// what they wrap). A nil name names fields plainly.
func Render(err error, name func(field string) string) string {
	if err == nil {
		return ""
	}
	if name == nil {
		name = Plain
	}
	if r, ok := err.(Renderer); ok {
		return r.Render(name)
	}
	text := err.Error()
	for _, inner := range unwrap(err) {
		if inner == nil {
			continue
		}
		plain := inner.Error()
		if plain == "" {
			continue
		}
		if r := Render(inner, name); r != plain {
			text = strings.Replace(text, plain, r, 1)
		}
	}
	return text
}

// unwrap returns the errors err wraps, one or many.
func unwrap(err error) []error {
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	}
	return nil
}
