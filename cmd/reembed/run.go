package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
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
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(e, c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "reembed: unknown command %q\n", args[0])
	printUsage(e.stderr)
	return exitUsage
}

// exitCode prints err once and maps it to an exit code.
func exitCode(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "reembed: %v\n", err)
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
	b.WriteString("\nRun 'reembed <command> -h' for a command's flags.\n")
	io.WriteString(w, b.String())
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and prints
// its help to e.stdout.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: reembed %s\n\nFlags:\n", synopsis)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	return nil
}
