// Command tokcount counts the cl100k_base tokens of every file under a
// directory, for scripts/bench-tokens.sh. Each file is read whole, decoded by
// reembed's text rule (corpus.ToValidUTF8: one U+FFFD per maximal invalid
// subsequence) and counted with encode_ordinary semantics.
//
//	tokcount [--jobs N] [--impl ours|tiktoken-go] [--out FILE] [--cpuprofile FILE] DIR
//
// --impl picks the counter: ours (tokenizer.NewCL100K, the default) or
// tiktoken-go (github.com/pkoukk/tiktoken-go, tokenizer.NewReference).
// --jobs is the number of counting workers (default GOMAXPROCS). --out
// writes "path<TAB>tokens<TAB>bytes" per file, paths relative to DIR,
// sorted by byte order (the format of testdata/tokens/counts.tsv). The
// summary goes to stdout as one line of key=value pairs: files, bytes,
// tokens, seconds (wall time from the first read to the last count, after
// the tokenizer is loaded), mb_per_s (10^6 bytes per second) and
// peak_rss_kib (VmHWM of this process).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tokcount:", err)
		os.Exit(1)
	}
}

// result is one counted file.
type result struct {
	path   string
	tokens int
	bytes  int
}

func run(args []string, stdout io.Writer) error {
	fset := flag.NewFlagSet("tokcount", flag.ContinueOnError)
	jobs := fset.Int("jobs", runtime.GOMAXPROCS(0), "counting workers")
	impl := fset.String("impl", "ours", "counter: ours or tiktoken-go")
	out := fset.String("out", "", "write per-file counts (TSV) to this file")
	cpuprofile := fset.String("cpuprofile", "", "write a CPU profile of the counting to this file")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 || *jobs < 1 {
		return errors.New("usage: tokcount [--jobs N] [--impl ours|tiktoken-go] [--out FILE] DIR")
	}
	root := fset.Arg(0)

	var tok tokenizer.Tokenizer
	var err error
	switch *impl {
	case "ours":
		tok, err = tokenizer.NewCL100K()
	case "tiktoken-go":
		tok, err = tokenizer.NewReference()
	default:
		return fmt.Errorf("unknown --impl %q (want ours or tiktoken-go)", *impl)
	}
	if err != nil {
		return err
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	paths := make(chan string, 256)
	results := make(chan result, 256)
	var walkErr error
	go func() {
		defer close(paths)
		walkErr = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				paths <- p
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	errs := make([]error, *jobs)
	for w := range *jobs {
		wg.Go(func() { errs[w] = countFiles(root, tok, paths, results) })
	}
	go func() { wg.Wait(); close(results) }()

	var all []result
	var files, bytes, tokens int
	for r := range results {
		files++
		bytes += r.bytes
		tokens += r.tokens
		if *out != "" {
			all = append(all, r)
		}
	}
	secs := time.Since(start).Seconds()
	if err := errors.Join(append(errs, walkErr)...); err != nil {
		return err
	}
	if *out != "" {
		if err := writeCounts(*out, all); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "impl=%s jobs=%d files=%d bytes=%d tokens=%d seconds=%.3f mb_per_s=%.2f peak_rss_kib=%d\n",
		*impl, *jobs, files, bytes, tokens, secs, float64(bytes)/secs/1e6, peakRSS())
	return err
}

// countFiles counts the files it receives, reusing one read buffer.
func countFiles(root string, tok tokenizer.Tokenizer, paths <-chan string, results chan<- result) error {
	var buf []byte
	for p := range paths {
		var err error
		buf, err = readInto(buf[:0], p)
		if err != nil {
			return fmt.Errorf("reading %q: %w", p, err)
		}
		text, _ := corpus.ToValidUTF8(buf)
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("naming %q: %w", p, err)
		}
		results <- result{path: filepath.ToSlash(rel), tokens: tok.Count(text), bytes: len(buf)}
	}
	return nil
}

// readInto appends the contents of the file at p to buf.
func readInto(buf []byte, p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && int(st.Size()) > cap(buf) {
		buf = slices.Grow(buf, int(st.Size())+512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writeCounts writes the per-file counts sorted by path bytes.
func writeCounts(name string, all []result) error {
	slices.SortFunc(all, func(a, b result) int { return strings.Compare(a.path, b.path) })
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("creating %q: %w", name, err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "path\ttokens\tbytes")
	for _, r := range all {
		fmt.Fprintf(w, "%s\t%d\t%d\n", r.path, r.tokens, r.bytes)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %q: %w", name, err)
	}
	return f.Close()
}

// peakRSS returns this process's peak resident set size in KiB (VmHWM), or
// 0 where /proc is missing.
func peakRSS() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib
		}
	}
	return 0
}
