package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/reembed/reembed/field"
)

// Exit codes. They are documented in README.md ("Exit codes"); runbooks branch on them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// env is what a command may touch of the outside world. Tests pass their own.
type env struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	logger *slog.Logger
	// quiet is --quiet: no progress, only warnings and errors on stderr.
	quiet bool
}

// command is one subcommand of reembed.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists every subcommand; each lives in its own file.
func commands() []command {
	return []command{
		{"estimate", "price and time a rebuild of a corpus, or a what-if", runEstimate},
		{"models", "list the pricing catalog", runModels},
		{"rebuild", "embed a corpus into resumable Parquet checkpoints", runRebuild},
		{"verify", "report how completely a checkpoint covers a corpus", runVerify},
		{"restore", "load a checkpoint into a pgvector table, indexed and swapped in; resumable", runRestore},
		{"export", "write a checkpoint as a vector store's import files (Pinecone Parquet)", runExport},
		{"drill", "prove a rebuild end to end: estimate, rebuild, SIGKILL, resume, verify", runDrill},
		{"simulate", "serve a simulated OpenAI-compatible embeddings API", runSimulate},
		{"serve", "serve the REST API for runbooks (openapi.yaml)", runServe},
		{"inspect", "describe a checkpoint: model, rows, parts, spend, last commit (no corpus needed)", runInspect},
		{"version", "print the version", runVersion},
		{"completion", "print a shell completion script: bash, zsh or fish", runCompletion},
	}
}

// usageError is a bad flag, argument or input file: exit code 2.
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCodeError carries a specific exit code for conditions runbooks branch on.
type exitCodeError struct {
	code int
	err  error
}

func (x *exitCodeError) Error() string { return x.err.Error() }
func (x *exitCodeError) Unwrap() error { return x.err }

// run executes reembed with args (without the program name) and returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	args, g, err := parseGlobal(args, e.getenv)
	if err != nil {
		return exitCode(e, err)
	}
	e.quiet = g.quiet
	sw := newStatusWriter(e.stderr)
	sw.silent = g.quiet
	e.stderr = sw
	if e.logger == nil {
		e.logger = g.logger(e.stderr)
	}
	if g.version {
		return exitCode(e, runVersion(ctx, e, nil))
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		printUsage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "help" {
		return exitCode(e, runHelp(ctx, e, args[1:]))
	}
	if c, ok := lookupCommand(args[0]); ok {
		return exitCode(e, c.run(ctx, e, args[1:]))
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if best := closest(args[0], names); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	fmt.Fprintf(e.stderr, "reembed: %s (reembed help lists the commands)\n", msg)
	return exitUsage
}

// lookupCommand returns the command called name.
func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// runHelp prints the usage, or a command's help with its flags.
func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return nil
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		if best := closest(args[0], names); best != "" {
			return usagef("help: unknown command %q; did you mean %q?", args[0], best)
		}
		return usagef("help: unknown command %q (reembed help lists the commands)", args[0])
	}
	return c.run(ctx, e, []string{"--help"})
}

// exitCode prints err once and maps it to an exit code.
func exitCode(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "reembed: %s\n", field.Render(err, flagName)) // settings named as flags
	var u *usageError
	var x *exitCodeError
	switch {
	case errors.As(err, &x):
		return x.code
	case errors.As(err, &u):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("reembed: price, time and run a rebuild of lost embeddings.\n\nUsage:\n  reembed <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'reembed help <command>' for a command's flags.\n")
	b.WriteString(globalFlagsHelp)
	io.WriteString(w, b.String())
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and prints
// its help to e.stdout.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: reembed %s\n\nFlags (anywhere among the arguments; -- ends them; each also from the $REEMBED_ variable shown):\n", synopsis)
		printFlags(e.stdout, fs)
		io.WriteString(e.stdout, globalFlagsHelp)
	}
	flagEnvs.Store(fs, e)
	return fs
}
