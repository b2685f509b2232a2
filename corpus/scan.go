package corpus

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// MaxInvalidExamples is how many documents with invalid UTF-8 a [Stats] names.
const MaxInvalidExamples = 10

// Stats describes what a [Scan] read.
type Stats struct {
	// Files is the number of files read (not skipped).
	Files int `json:"files"`
	// Documents is the number of documents passed to work (after sampling).
	Documents int64 `json:"documents"`
	// Bytes is the source size of those documents.
	Bytes int64 `json:"bytes"`
	// InvalidUTF8Documents counts documents that held invalid UTF-8.
	InvalidUTF8Documents int64 `json:"invalid_utf8_documents"`
	// InvalidUTF8Examples names the first few of them, in corpus order.
	InvalidUTF8Examples []string `json:"invalid_utf8_examples"`
	// Skipped lists files and records that were not read, and why.
	Skipped []Skip `json:"skipped"`
	// SkippedFiles counts the entries of Skipped that are whole files (the
	// others are records).
	SkippedFiles int `json:"skipped_files"`
	// Excluded counts the files and directories the filters left out
	// (filter.go): they are not listed in Skipped.
	Excluded int64 `json:"excluded"`
	// DefaultExcluded names the first few directories left out by default
	// ([DefaultExcludes]), so that output can say so.
	DefaultExcluded []string `json:"default_excluded"`
	// UnsampledBytes is the source size of the documents a sample left
	// out (those passing Options.Keep): with Bytes, the corpus's whole size,
	// which a sampled estimate extrapolates to.
	UnsampledBytes int64 `json:"unsampled_bytes"`
	// UnsampledSqBytes is the sum of the squares of those documents' sizes,
	// which bounds how far the documents left out can move the total.
	UnsampledSqBytes float64 `json:"unsampled_sq_bytes"`
}

// item is one unit of ordered output: a document's result, a skip, or (with
// neither) the bytes of a document the sample left out.
type item[R any] struct {
	r         R
	doc       *docMeta
	skip      *Skip
	fileSkip  bool // skip is a whole file
	unsampled int64
	part      bool // r is a part of a document's results (ScanStream)
}

type docMeta struct {
	id      string
	bytes   int64
	invalid int
}

// Scan reads every document of s in corpus order with jobs worker goroutines
// (GOMAXPROCS when jobs ≤ 0). work runs on the workers, concurrently; it must
// not keep doc.Text after it returns. emit runs on the calling goroutine, once
// per document, in corpus order, so its output is deterministic. Memory is
// bounded: at most about ReadAhead×jobs files ([Options.ReadAhead], default
// 2) are in flight and each file's results stream through a bounded channel.
//
// In strict mode the first skip ends the scan with an error wrapping
// [ErrSkipped]. The first error from work or emit ends it too.
func Scan[R any](ctx context.Context, s *Source, jobs int, work func(doc Document) (R, error), emit func(R) error) (*Stats, error) {
	return ScanStream(ctx, s, jobs, func(doc Document, _ func(R) error) (R, error) { return work(doc) }, emit)
}

// ScanStream is [Scan] where work may hand over a document's results in
// parts: it calls part with each result but the last (on its worker, in
// order) and returns the last. emit receives them all, in corpus order, the
// last one after the others. A streamed document ([Document.Streamed]) can
// so pass its chunks on while it is read, instead of collecting them: the
// parts wait in a bounded channel for emit, which bounds the memory.
func ScanStream[R any](ctx context.Context, s *Source, jobs int, work func(doc Document, part func(R) error) (R, error), emit func(R) error) (*Stats, error) {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	g, ctx := errgroup.WithContext(ctx)
	type job struct {
		ref fileRef
		out chan item[R]
	}
	jobsCh := make(chan job, jobs)
	order := make(chan chan item[R], s.opts.readAhead()*jobs)

	// The walker hands files to workers and their output channels to the collector, in order.
	var ws walkStats // the walker's; read after g.Wait
	g.Go(func() error {
		defer close(jobsCh)
		defer close(order)
		return s.walk(ctx, &ws, func(ref fileRef) error {
			out := make(chan item[R], 64)
			if ref.skip != nil {
				out <- item[R]{skip: ref.skip, fileSkip: true}
				close(out)
				select {
				case order <- out:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case order <- out:
			case <-ctx.Done():
				ref.dir.release()
				return ctx.Err()
			}
			select {
			case jobsCh <- job{ref, out}:
				return nil
			case <-ctx.Done():
				close(out) // the collector may be waiting on it
				ref.dir.release()
				return ctx.Err()
			}
		})
	})
	for range jobs {
		g.Go(func() error {
			for j := range jobsCh {
				if err := runJob(ctx, s, j.ref, j.out, work); err != nil {
					return err
				}
			}
			return nil
		})
	}
	st := &Stats{}
	g.Go(func() error {
		for {
			var out chan item[R]
			select {
			case o, ok := <-order:
				if !ok {
					return nil
				}
				out = o
			case <-ctx.Done():
				// A failed worker leaves queued files unread: stop waiting.
				return ctx.Err()
			}
			read, err := collectFile(ctx, st, s.opts.Strict, out, emit)
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if read {
				st.Files++
			}
		}
	})
	err := g.Wait()
	for j := range jobsCh { // left by a worker that failed
		j.ref.dir.release()
	}
	st.Excluded, st.DefaultExcluded = ws.excluded, ws.defaultExcluded
	st.Skipped = append(st.Skipped, ws.badIgnoreLines...)
	return st, err
}

// collectFile passes the items of one file's output to emit, in order, and
// counts them in st; read reports whether the file had a document.
func collectFile[R any](ctx context.Context, st *Stats, strict bool, out <-chan item[R], emit func(R) error) (read bool, err error) {
	for it := range recv(ctx, out) {
		switch {
		case it.part:
			if err := emit(it.r); err != nil {
				return read, err
			}
		case it.doc == nil && it.skip == nil:
			st.UnsampledBytes += it.unsampled
			st.UnsampledSqBytes += float64(it.unsampled) * float64(it.unsampled)
		case it.skip != nil:
			if strict {
				return read, fmt.Errorf("%w: %s: %s (strict mode)", ErrSkipped, it.skip.Path, it.skip.Reason)
			}
			st.Skipped = append(st.Skipped, *it.skip)
			if it.fileSkip {
				st.SkippedFiles++
			}
		default:
			read = true
			st.Documents++
			st.Bytes += it.doc.bytes
			if it.doc.invalid > 0 {
				st.InvalidUTF8Documents++
				if len(st.InvalidUTF8Examples) < MaxInvalidExamples {
					st.InvalidUTF8Examples = append(st.InvalidUTF8Examples, it.doc.id)
				}
			}
			if err := emit(it.r); err != nil {
				return read, err
			}
		}
	}
	return read, nil
}

// recv yields the items of out until it is closed or ctx ends.
func recv[R any](ctx context.Context, out <-chan item[R]) func(yield func(item[R]) bool) {
	return func(yield func(item[R]) bool) {
		for {
			select {
			case it, ok := <-out:
				if !ok || !yield(it) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}

// runJob reads one file, sends each document's result (or skip) to out in
// order, and closes out.
func runJob[R any](ctx context.Context, s *Source, ref fileRef, out chan<- item[R], work func(Document, func(R) error) (R, error)) error {
	defer close(out)
	defer ref.dir.release()
	send := func(it item[R]) error {
		select {
		case out <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fileSkip, err := s.readFile(ctx, ref, sink{
		emit: func(d Document) error {
			r, err := work(d, func(r R) error { return send(item[R]{r: r, part: true}) })
			if err != nil {
				return fmt.Errorf("processing document %q: %w", d.ID, err)
			}
			meta := &docMeta{id: d.ID, bytes: d.Bytes, invalid: d.InvalidUTF8}
			if st := d.stream; st != nil && st.read { // what reading it found
				meta.bytes, meta.invalid = st.bytes, st.invalid
			}
			return send(item[R]{r: r, doc: meta})
		},
		skip:      func(sk Skip) error { return send(item[R]{skip: &sk}) },
		unsampled: func(n int64) error { return send(item[R]{unsampled: n}) },
	})
	if err != nil {
		return err
	}
	if fileSkip != nil {
		return send(item[R]{skip: fileSkip, fileSkip: true})
	}
	return nil
}
