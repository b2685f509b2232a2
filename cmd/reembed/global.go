package main

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// globalFlagsHelp documents the flags every command takes.
const globalFlagsHelp = `
Global flags (any command, anywhere before --):
  --quiet           no progress and only warnings and errors on stderr [$REEMBED_QUIET]
  --verbose         debug logs on stderr [$REEMBED_VERBOSE]
  --log-format F    log lines as text or json [$REEMBED_LOG_FORMAT]
  --version         print the version and exit
`

// globalOpts are the flags every command takes.
type globalOpts struct {
	quiet, verbose, version bool
	logFormat               string
}

// parseGlobal removes the global flags from args (up to "--") and returns the
// rest; REEMBED_QUIET, REEMBED_VERBOSE and REEMBED_LOG_FORMAT apply when the
// flag is not given.
func parseGlobal(args []string, getenv func(string) string) ([]string, globalOpts, error) {
	var g globalOpts
	given := map[string]bool{}
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		switch name {
		case "quiet", "verbose", "version":
			b, err := strconv.ParseBool(value)
			if !hasValue {
				b, err = true, nil
			}
			if err != nil {
				return nil, g, usagef("--%s=%q: want true or false", name, value)
			}
			given[name] = true
			switch name {
			case "quiet":
				g.quiet = b
			case "verbose":
				g.verbose = b
			default:
				g.version = b
			}
		case "log-format":
			if !hasValue {
				if i+1 >= len(args) {
					return nil, g, usagef("--log-format needs a value: text or json")
				}
				i++
				value = args[i]
			}
			g.logFormat, given[name] = value, true
		default:
			rest = append(rest, a)
		}
	}
	if err := g.fromEnv(getenv, given); err != nil {
		return nil, g, err
	}
	if g.logFormat == "" {
		g.logFormat = "text"
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return nil, g, usagef("--log-format %q: want text or json", g.logFormat)
	}
	if g.quiet && g.verbose {
		return nil, g, usagef("--quiet and --verbose contradict each other: give one")
	}
	return rest, g, nil
}

// fromEnv fills the options not given from REEMBED_ variables.
func (g *globalOpts) fromEnv(getenv func(string) string, given map[string]bool) error {
	if getenv == nil {
		return nil
	}
	for name, dst := range map[string]*bool{"quiet": &g.quiet, "verbose": &g.verbose} {
		if v := getenv(envName(name)); v != "" && !given[name] {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return usagef("%s=%q: want true or false", envName(name), v)
			}
			*dst = b
		}
	}
	if v := getenv(envName("log-format")); v != "" && !given["log-format"] {
		g.logFormat = v
	}
	return nil
}

// logger returns the logger the options ask for, writing to w.
func (g globalOpts) logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case g.quiet:
		level = slog.LevelWarn
	case g.verbose:
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if g.logFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if s, ok := w.(*statusWriter); ok {
		h = waitWatcher{h, s}
	}
	return slog.New(h)
}
