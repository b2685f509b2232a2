package main

import (
	"strings"

	"github.com/reembed/reembed/planner"
)

// flagOfField maps the fields whose flag is not their kebab-case name.
// Every other field is its flag: chunk_tokens is --chunk-tokens.
var flagOfField = map[string]string{
	"paths":   "PATH",
	"out_dir": "--out",
}

// flagName returns the flag of a request field, as the CLI names it.
func flagName(field string) string {
	if f, ok := flagOfField[field]; ok {
		return f
	}
	return "--" + strings.ReplaceAll(field, "_", "-")
}

// flagError is a validation error of the planner worded for the command
// line: its fields named as flags. errors.Is and errors.As see the cause.
type flagError struct{ err error }

func (e flagError) Error() string { return planner.RenderErrors(e.err, flagName) }
func (e flagError) Unwrap() error { return e.err }

// usageOfInvalid returns the usage error of a failed Validate, fields named
// as flags.
func usageOfInvalid(err error) error { return &usageError{flagError{err}} }
