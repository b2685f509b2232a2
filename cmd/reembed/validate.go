package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/reembed/reembed/pricing"
)

// flagMinimums are the smallest values integer flags accept, whatever the
// command: 0 where 0 means "default" or "unlimited", 1 where 0 would stall or
// mean nothing. A flag not listed has no minimum here.
var flagMinimums = map[string]int64{
	"concurrency": 1, "jobs": 0, "part-rows": 1, "batch-size": 0, "rpm": 0, "tpm": 0,
	"chunk-tokens": 0, "chunk-overlap": 0, "dimensions": 0, "max-running": 1, "shards": 0,
	"max-inputs": 1, "max-input-tokens": 1, "max-request-tokens": 1,
}

// flagChoices are the values enumerated flags accept, whatever the command
// and provider.
var flagChoices = map[string][]string{
	"encoding-format": {"base64", "float"},
	"provider":        {"simulated", "openai"},
}

// checkFlagValues checks the integer minimums and the enumerations of every
// flag of fs, given or from the environment.
func checkFlagValues(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if lo, ok := flagMinimums[f.Name]; ok {
			if n, perr := strconv.ParseInt(f.Value.String(), 10, 64); perr == nil && n < lo {
				what := "must not be negative"
				if lo > 0 {
					what = fmt.Sprintf("must be at least %d", lo)
				}
				err = usagef("--%s %d: %s", f.Name, n, what)
			}
		}
		if choices, ok := flagChoices[f.Name]; ok && !slices.Contains(choices, f.Value.String()) {
			err = usagef("--%s %q: want one of %v", f.Name, f.Value.String(), choices)
		}
	})
	return err
}

// checkBatchSize refuses a --batch-size above a model's inputs per request:
// the provider would refuse every request.
func checkBatchSize(batch int, models ...pricing.Model) error {
	for _, m := range models {
		if m.MaxInputsPerRequest > 0 && batch > m.MaxInputsPerRequest {
			return usagef("--batch-size %d: %s takes at most %d inputs per request", batch, m.Name, m.MaxInputsPerRequest)
		}
	}
	return nil
}

// hideFlag marks flag name of fs as accepted but left out of the help.
func hideFlag(fs *flag.FlagSet, name string) {
	if f := fs.Lookup(name); f != nil {
		f.Usage = hiddenPrefix + f.Usage
	}
}

const hiddenPrefix = "hidden: "

// nopCloser is an io.WriteCloser that does not close (stdout).
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
