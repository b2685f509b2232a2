package planner

import (
	"fmt"
	"strings"

	"github.com/reembed/reembed/field"
)

// FieldError is one invalid field of a request: an [EstimateRequest], a
// [RebuildSpec] or a job spec. Field is the field's snake_case name, the one
// vocabulary of every validation error; the CLI maps it to its flag
// (chunk_tokens -> --chunk-tokens) and the API to its JSON field, both
// mechanically. Validate methods return their field errors joined with
// errors.Join, in the order of the checks.
type FieldError struct {
	// Field is the snake_case name of the invalid field.
	Field string
	// Message says what is wrong. It names fields, its own included, as
	// {snake_case} placeholders, which [FieldError.Render] fills in.
	Message string
	// Err is the cause, if any (e.g. corpus.ErrOutsideRoot, fs.ErrNotExist,
	// pricing.ErrUnknownModel); errors.Is sees it.
	Err error
}

// Error returns the message with fields named in snake_case.
func (e *FieldError) Error() string { return e.Render(func(f string) string { return f }) }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// Render returns the message with each {field} replaced by name(field).
func (e *FieldError) Render(name func(field string) string) string {
	return field.Text(e.Message, name)
}

// fieldErrorf returns a *FieldError about field; format may name fields as
// {snake_case} (its own field too) and is formatted with args first.
func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// NewFieldError returns a *FieldError about field whose message is
// "{field}: " and the cause's text; errors.Is sees the cause.
func NewFieldError(field string, cause error) *FieldError {
	return &FieldError{Field: field, Message: "{" + field + "}: " + escapeBraces(cause.Error()), Err: cause}
}

// escapeBraces keeps a cause's text (a path, a model name) from being read as
// placeholders.
func escapeBraces(s string) string { return strings.NewReplacer("{", "(", "}", ")").Replace(s) }

// FieldErrors returns the field errors in err (joined or wrapped), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// RenderErrors returns err's text with the fields of every error in it
// named by name (see [field.Render]): field errors one per line, other
// errors in their own words, those written with [field.Errorf] rendered too.
func RenderErrors(err error, name func(field string) string) string {
	return field.Render(err, name)
}
