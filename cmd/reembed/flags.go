package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// flagEnvs remembers the env of each FlagSet made by newFlagSet, so that
// parseFlags can read REEMBED_<FLAG> variables and print help without every
// command passing its env again.
var flagEnvs sync.Map // *flag.FlagSet -> *env

// flagAliases maps a deprecated flag name to the name every command now uses
// for the same setting. A command that declares the old name gets the new one
// too (same value); the old one still works, with a warning, and is left out
// of the help.
var flagAliases = map[string]string{
	"provider-base-url": "base-url", // serve
	"sim-latency":       "latency",  // rebuild, serve
}

// envPrefix is the prefix of the environment variables that set flags:
// REEMBED_CHUNK_TOKENS=256 is --chunk-tokens 256 unless the flag is given.
const envPrefix = "REEMBED_"

// envName returns the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// addAliases declares, for each deprecated name fs has, the current name on
// the same value, and marks the old one deprecated in its usage; for a
// command that declares the current name itself (drill), the old one is
// declared as the deprecated alias.
func addAliases(fs *flag.FlagSet) {
	for old, cur := range flagAliases {
		if f := fs.Lookup(cur); f != nil && fs.Lookup(old) == nil && fs.Name() == "drill" {
			fs.Var(f.Value, old, "deprecated: use --"+cur)
		}
	}
	for old, cur := range flagAliases {
		f := fs.Lookup(old)
		if f == nil || fs.Lookup(cur) != nil {
			continue
		}
		fs.Var(f.Value, cur, f.Usage)
		fs.Lookup(cur).DefValue = f.DefValue
		f.Usage = "deprecated: use --" + cur
	}
}

// isDeprecated reports whether f is a deprecated alias added by addAliases.
func isDeprecated(f *flag.Flag) bool {
	return strings.HasPrefix(f.Usage, "deprecated: use --")
}

// isHidden reports whether f is left out of the help and completion: a
// deprecated alias, or a flag hidden with hideFlag.
func isHidden(f *flag.Flag) bool {
	return isDeprecated(f) || strings.HasPrefix(f.Usage, hiddenPrefix)
}

// takesValue reports whether flag f needs a value after it (not a bool flag).
func takesValue(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// reorderArgs moves every flag (and its value) in front of the positional
// arguments, so that flags may come before or after them; "--" ends the
// flags, and what follows is positional even if it starts with a dash.
// Unknown flags are kept among the flags, for Parse to report.
func reorderArgs(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil && !hasValue && takesValue(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}

// parseFlags parses args, with flags anywhere among the arguments, then fills
// the flags not given from REEMBED_<FLAG> environment variables. Errors are
// usage errors, printed once by run with a "did you mean" and no usage dump.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var e *env
	if v, ok := flagEnvs.LoadAndDelete(fs); ok {
		e = v.(*env)
	}
	addAliases(fs)
	if wantsHelp(args) {
		fs.Usage()
		return flag.ErrHelp
	}
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(reorderArgs(fs, args))
	fs.Usage = usage
	fs.SetOutput(out)
	if err != nil {
		return &usageError{parseError(fs, err)}
	}
	given := map[flag.Value]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Value] = true
		if isDeprecated(f) && e != nil {
			fmt.Fprintf(e.stderr, "reembed: %s --%s is deprecated: use --%s\n", fs.Name(), f.Name, flagAliases[f.Name])
		}
	})
	if e != nil && e.getenv != nil {
		if err := setFromEnv(fs, e.getenv, given); err != nil {
			return err
		}
	}
	return checkFlagValues(fs)
}

// setFromEnv sets each flag of fs that was not given from its REEMBED_<FLAG>
// variable, if set.
func setFromEnv(fs *flag.FlagSet, getenv func(string) string, given map[flag.Value]bool) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Value] || isHidden(f) {
			return
		}
		v := getenv(envName(f.Name))
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, usagef("%s=%q (--%s): %v", envName(f.Name), v, f.Name, err))
		}
		given[f.Value] = true
	})
	return errors.Join(errs...)
}

// parseError rewrites the flag package's error for a person: "--name" with two
// dashes, and a suggestion for an unknown flag.
func parseError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	const unknown = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, unknown); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) {
			if !isHidden(f) {
				names = append(names, f.Name)
			}
		})
		s := fmt.Sprintf("%s: unknown flag --%s", fs.Name(), name)
		if best := closest(name, names); best != "" {
			s += fmt.Sprintf("; did you mean --%s?", best)
		}
		return fmt.Errorf("%s (reembed help %s lists the flags)", s, fs.Name())
	}
	return fmt.Errorf("%s: %s", fs.Name(), strings.Replace(msg, " -", " --", 1))
}

// closest returns the candidate nearest to s (edit distance at most a third of
// its length, at least 2; or a candidate that s is a prefix of), or "".
func closest(s string, candidates []string) string {
	sort.Strings(candidates)
	best, bestD := "", max(2, len(s)/3)+1
	for _, c := range candidates {
		d := editDistance(s, c)
		if strings.HasPrefix(c, s) && len(s) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// printFlags prints fs's flags as --name VALUE, with their defaults and
// REEMBED_ variables, leaving out deprecated aliases.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if isHidden(f) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if takesValue(f) {
			if name == "" {
				name = "value"
			}
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, " [$%s]\n", envName(f.Name))
	})
}
