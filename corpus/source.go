package corpus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Options selects how a corpus is read.
type Options struct {
	// PlainText reads every file as plain text, with no format-specific extraction.
	PlainText bool
	// Strict makes any skipped file or record an error (wrapping [ErrSkipped]).
	Strict bool
	// TextField is the JSONL field, CSV column or Parquet column holding the
	// text. Default "text".
	TextField string
	// IDField is the field or column holding a record's id. Default "id"; a
	// record without one is named by its line (JSONL) or row (CSV, Parquet).
	IDField string
	// Sample, when in (0, 1), keeps each document with that probability,
	// chosen by a hash of Seed and the document ID (so a sample is repeatable).
	Sample float64
	// Seed varies which documents a sample keeps.
	Seed int64
	// Keep, when set, is a further filter on document IDs (shards use it).
	Keep func(docID string) bool
	// Filters choose which files of a directory root are read (filter.go).
	Filters Filters
	// MaxDecompressedBytes caps the decompressed size of one compressed
	// file (decompress.go); 0 means [DefaultMaxDecompressedBytes].
	MaxDecompressedBytes int64
	// StreamAbove is the size in bytes above which an uncompressed
	// plain-text file is streamed (streamdoc.go); 0 means
	// [DefaultStreamAbove], a negative value never streams.
	StreamAbove int64
	// ReadAhead is how many files per worker may be read ahead of the one
	// emit is waiting for; 0 means [DefaultReadAhead]. A file read ahead
	// keeps its results in memory until emit takes them, so a caller whose
	// results are small (the estimate's counts) reads far ahead, and one
	// whose results hold chunk text (the rebuild) keeps the default. Reading
	// ahead keeps the workers busy while one of them reads a large file.
	ReadAhead int
}

// DefaultReadAhead is [Options.ReadAhead]'s default: files per worker.
const DefaultReadAhead = 2

func (o *Options) readAhead() int {
	if o.ReadAhead <= 0 {
		return DefaultReadAhead
	}
	return o.ReadAhead
}

func (o *Options) textField() string {
	if o.TextField == "" {
		return "text"
	}
	return o.TextField
}

func (o *Options) idField() string {
	if o.IDField == "" {
		return "id"
	}
	return o.IDField
}

// kept reports whether the document passes the Keep filter (it belongs to
// the corpus being read, whether or not the sample reads it).
func (o *Options) kept(docID string) bool { return o.Keep == nil || o.Keep(docID) }

// inSample reports whether the sample, if any, reads the document.
func (o *Options) inSample(docID string) bool {
	return o.Sample <= 0 || o.Sample >= 1 || SampleKeeps(o.Seed, docID, o.Sample)
}

// SampleKeeps reports whether a sample of the given fraction and seed keeps
// docID. The choice is a stable hash (FNV-1a 64 of the seed and the ID), so the
// same seed picks the same documents on every run and machine.
func SampleKeeps(seed int64, docID string, fraction float64) bool {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s", seed, docID)
	return float64(h.Sum64()>>11)/float64(1<<53) < fraction
}

// Source is an opened set of corpus roots. Each root is a directory, or a
// single file whose parent directory is its root. A Source is read by [Scan].
type Source struct {
	opts  Options
	roots []*root
	match *matcher
}

type root struct {
	dir  *os.Root
	name string // the path the user gave
	only string // for a single-file root: the one file's name within dir
	// index is the root's position among the roots; label names it in the
	// IDs of files an earlier root also holds (roots.go).
	index int
	label string
}

// Open opens the corpus paths. Each path must exist; the error names it.
func Open(paths []string, opts Options) (*Source, error) {
	if len(paths) == 0 {
		return nil, errors.New("no corpus path given")
	}
	m, err := newMatcher(opts.Filters)
	if err != nil {
		return nil, err
	}
	s := &Source{opts: opts, match: m}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening corpus path %q: %w", p, err)
		}
		dir, only := p, ""
		if !fi.IsDir() {
			dir, only = filepath.Dir(p), filepath.Base(p)
		}
		r, err := os.OpenRoot(dir)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening corpus path %q: %w", p, err)
		}
		s.roots = append(s.roots, &root{dir: r, name: p, only: only, index: len(s.roots)})
	}
	if err := s.nameRoots(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the roots.
func (s *Source) Close() error {
	for _, r := range s.roots {
		r.dir.Close()
	}
	return nil
}

// Roots returns the corpus paths as given to Open.
func (s *Source) Roots() []string {
	out := make([]string, len(s.roots))
	for i, r := range s.roots {
		out[i] = r.name
	}
	return out
}

// id is the document ID of the file (roots.go): its path relative to its
// root, unless an earlier root holds that path too.
// It is made valid UTF-8 reversibly (EscapeDocID).
func (ref fileRef) id() string { return EscapeDocID(ref.docID) }

// fileRef is one file to read, or a skip to report, in walk order.
type fileRef struct {
	root  *root
	rel   string // slash-separated, relative to the root
	docID string
	skip  *Skip
	// dir, when set, is the file's directory, listed as holding a regular
	// file of that name: the file is opened there (see dirHandle).
	dir *dirHandle
}

// open opens the file: in its directory when the walk left it one, else
// by its path under the root (a symlink, which may lead anywhere in the root).
func (ref fileRef) open() (*os.File, error) {
	if ref.dir != nil {
		return ref.dir.root.Open(path.Base(ref.rel))
	}
	return ref.root.dir.Open(ref.rel)
}

// dirHandle is a directory of a walk, open as an [os.Root] under the
// corpus root and shared by the fileRefs of its regular files, so that each
// file is opened with one openat: an os.Root opens a nested path one
// component at a time, with a descriptor for each, which cost as much as
// reading a small file. The walk and each fileRef hold a reference; the
// last release closes it.
type dirHandle struct {
	root *os.Root
	refs atomic.Int32
}

// hold takes a reference for a fileRef.
func (h *dirHandle) hold() *dirHandle {
	h.refs.Add(1)
	return h
}

// release drops a reference; nil is a no-op.
func (h *dirHandle) release() {
	if h != nil && h.refs.Add(-1) == 0 {
		h.root.Close()
	}
}

// walkStats counts what the filters left out during a walk.
type walkStats struct {
	excluded        int64
	defaultExcluded []string
	badIgnoreLines  []Skip
}

// walk calls fn for every regular file under the roots in a deterministic
// order (root by root, each in byte order of the slash-separated relative
// path), and for every entry it skips. What the filters leave out is counted
// in ws.
// Symlinks are followed only to files inside the root; a symlinked directory
// is never followed (no loops), and a link out of the root is skipped.
func (s *Source) walk(ctx context.Context, ws *walkStats, fn func(fileRef) error) error {
	for _, r := range s.roots {
		if r.only != "" {
			if err := s.visit(ctx, r, r.only, fn); err != nil {
				return err
			}
			continue
		}
		if err := s.walkDir(ctx, r, ".", nil, ws, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkDir walks dir; ignored are the ignore-file rules of its parents.
func (s *Source) walkDir(ctx context.Context, r *root, dir string, ignored []rule, ws *walkStats, fn func(fileRef) error) error {
	sub, err := r.dir.OpenRoot(dir)
	if err != nil {
		return fn(fileRef{root: r, rel: dir, skip: &Skip{Path: displayPath(r, dir), Reason: "cannot open directory: " + errReason(err)}})
	}
	h := &dirHandle{root: sub}
	h.refs.Store(1)
	defer h.release()
	f, err := sub.Open(".")
	if err != nil {
		return fn(fileRef{root: r, rel: dir, skip: &Skip{Path: displayPath(r, dir), Reason: "cannot open directory: " + errReason(err)}})
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fn(fileRef{root: r, rel: dir, skip: &Skip{Path: displayPath(r, dir), Reason: "cannot list directory: " + errReason(err)}})
	}
	// os.File.ReadDir does not sort; sort for a stable, byte-ordered walk.
	sortEntries(entries)
	ignored = s.readIgnoreFile(r, h, dir, ignored, ws)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := path.Join(dir, e.Name())
		switch s.match.judge(rel, e.IsDir(), ignored) {
		case excludedByDefault:
			ws.excluded++
			if len(ws.defaultExcluded) < MaxInvalidExamples {
				ws.defaultExcluded = append(ws.defaultExcluded, displayPath(r, rel))
			}
			continue
		case excluded:
			ws.excluded++
			continue
		}
		if e.IsDir() {
			if err := s.walkDir(ctx, r, rel, ignored, ws, fn); err != nil {
				return err
			}
			continue
		}
		if e.Type().IsRegular() { // the listing says so: no stat needed
			ref := fileRef{root: r, rel: rel, docID: s.docID(r.index, rel), dir: h.hold()}
			if err := fn(ref); err != nil {
				return err
			}
			continue
		}
		if err := s.visit(ctx, r, rel, fn); err != nil {
			return err
		}
	}
	return nil
}

// readIgnoreFile returns the rules in force in dir: its parents' and those
// of its ignore file, if any. Lines that are not patterns are noted in ws.
func (s *Source) readIgnoreFile(r *root, h *dirHandle, dir string, parents []rule, ws *walkStats) []rule {
	if !s.match.ignoreFiles {
		return parents
	}
	data, err := h.root.ReadFile(IgnoreFileName)
	if err != nil {
		return parents
	}
	rules, bad := parseIgnoreFile(dir, data)
	for _, b := range bad {
		ws.badIgnoreLines = append(ws.badIgnoreLines, Skip{Path: displayPath(r, path.Join(dir, IgnoreFileName)), Reason: fmt.Sprintf("pattern %q is not a valid glob (line ignored)", b)})
	}
	return append(parents[:len(parents):len(parents)], rules...)
}

// visit classifies one non-directory entry that is not listed as a regular
// file: a symlink, a special file, or an entry of unknown type.
func (s *Source) visit(ctx context.Context, r *root, rel string, fn func(fileRef) error) error {
	li, err := r.dir.Lstat(rel)
	if err != nil {
		return fn(fileRef{root: r, rel: rel, skip: &Skip{Path: displayPath(r, rel), Reason: "cannot stat: " + errReason(err)}})
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		fi, err := r.dir.Stat(rel) // os.Root refuses links that leave the root
		switch {
		case err != nil && isEscape(err):
			return fn(fileRef{root: r, rel: rel, skip: &Skip{Path: displayPath(r, rel), Reason: "symlink points outside the corpus root"}})
		case err != nil:
			return fn(fileRef{root: r, rel: rel, skip: &Skip{Path: displayPath(r, rel), Reason: "broken symlink: " + errReason(err)}})
		case fi.IsDir():
			return fn(fileRef{root: r, rel: rel, skip: &Skip{Path: displayPath(r, rel), Reason: "symlinked directory not followed"}})
		}
		li = fi
	}
	if !li.Mode().IsRegular() {
		return fn(fileRef{root: r, rel: rel, skip: &Skip{Path: displayPath(r, rel), Reason: "not a regular file"}})
	}
	return fn(fileRef{root: r, rel: rel, docID: s.docID(r.index, rel)})
}

func isEscape(err error) bool {
	return strings.Contains(err.Error(), "escapes from parent") || strings.Contains(err.Error(), "path escapes")
}

func errReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// displayPath is the path shown to users for a file of a root.
func displayPath(r *root, rel string) string {
	if r.only != "" {
		return r.name
	}
	return filepath.Join(r.name, filepath.FromSlash(rel))
}

// sortEntries sorts a directory's entries so that the walk visits files in
// byte order of their whole relative paths: a directory sorts as its name
// followed by '/', so "go.mod" comes before the files of "go/" ('.' < '/').
func sortEntries(es []fs.DirEntry) {
	key := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(key(a), key(b)) })
}

// binarySniffLen is how much of a file is searched for a NUL byte.
const binarySniffLen = 8 << 10

// format names a reader.
type format int

const (
	formatText format = iota
	formatHTML
	formatJSONL
	formatCSV
	formatTSV
	formatParquet
)

func (s *Source) formatOf(rel string) format {
	if s.opts.PlainText {
		return formatText
	}
	switch strings.ToLower(path.Ext(rel)) {
	case ".html", ".htm", ".xhtml":
		return formatHTML
	case ".jsonl", ".ndjson":
		return formatJSONL
	case ".csv":
		return formatCSV
	case ".tsv":
		return formatTSV
	case ".parquet":
		return formatParquet
	}
	return formatText
}

// sink receives what reading a file finds, in order.
type sink struct {
	emit func(Document) error
	skip func(Skip) error // a record that cannot be read
	// unsampled receives the source bytes of a document that passes Keep
	// but that the sample leaves out.
	unsampled func(bytes int64) error
}

// readFile reads the documents of one file and passes each document that
// passes the filters to out.emit. Problems that make the file unreadable are
// returned as a *Skip; problems with single records go to out.skip.
func (s *Source) readFile(ctx context.Context, ref fileRef, out sink) (*Skip, error) {
	f, err := ref.open()
	if err != nil {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot open: " + errReason(err)}, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot stat: " + errReason(err)}, nil
	}
	fmtKind := s.formatOf(stripCompressionExt(ref.rel))
	if fmtKind == formatParquet {
		return s.readParquet(ctx, ref, f, fi.Size(), out)
	}
	if fmtKind == formatText || fmtKind == formatHTML { // one document per file: filtered before reading a byte
		if !s.opts.kept(ref.id()) {
			return nil, nil
		}
		if !s.opts.inSample(ref.id()) {
			return nil, out.unsampled(fi.Size())
		}
	}
	rd, head, kind, release, skip := s.openContent(ref, f)
	if skip != nil {
		return skip, nil
	}
	defer release()
	if bytes.IndexByte(head, 0) >= 0 {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "binary file (a NUL byte in the first 8 KB)"}, nil
	}
	if s.streams(fmtKind, kind, fi.Size()) {
		return nil, out.emit(s.streamedDocument(ref, rd, fi.Size()))
	}
	skip, err = s.readContent(ctx, ref, rd, fmtKind, kind, fi.Size(), out)
	if de, ok := errors.AsType[*decodeError](err); ok {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: de.Error()}, nil
	}
	return skip, err
}

// openContent returns a reader of the file's content, decompressed when the
// file is compressed (decompress.go), and the content's first bytes (up to
// binarySniffLen), which the reader yields again, and the file's
// compression. release frees a decoder.
func (s *Source) openContent(ref fileRef, f io.Reader) (rd io.Reader, head []byte, kind compression, release func(), skip *Skip) {
	fileHead := headBufs.Get().(*[binarySniffLen]byte)
	head, err := readHead(f, fileHead)
	if err != nil {
		headBufs.Put(fileHead)
		return nil, nil, kind, nil, &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot read: " + errReason(err)}
	}
	rd = io.MultiReader(bytes.NewReader(head), f)
	kind = sniffCompression(head)
	if kind == compressNone {
		return rd, head, kind, func() { headBufs.Put(fileHead) }, nil
	}
	dec, decRelease, err := decompress(kind, rd, s.opts.maxDecompressed())
	contentHead := headBufs.Get().(*[binarySniffLen]byte)
	release = func() {
		if decRelease != nil {
			decRelease()
		}
		headBufs.Put(contentHead)
		headBufs.Put(fileHead)
	}
	if err == nil {
		head, err = readHead(dec, contentHead)
	}
	if err != nil {
		release()
		return nil, nil, kind, nil, &Skip{Path: displayPath(ref.root, ref.rel), Reason: decodeReason(kind, err)}
	}
	return io.MultiReader(bytes.NewReader(head), dec), head, kind, release, nil
}

func decodeReason(kind compression, err error) string {
	if de, ok := errors.AsType[*decodeError](err); ok {
		return de.Error()
	}
	return (&decodeError{kind, err}).Error()
}

// headBufs holds the buffers readHead reads into, for reuse across files.
var headBufs = sync.Pool{New: func() any { return new([binarySniffLen]byte) }}

// readHead reads up to binarySniffLen bytes into buf.
func readHead(r io.Reader, buf *[binarySniffLen]byte) ([]byte, error) {
	head := buf[:]
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return head[:n], nil
}

// readContent reads the documents of a file's content in its format.
// size is the file's size, the expected size of its content (larger when
// it is compressed).
func (s *Source) readContent(ctx context.Context, ref fileRef, rd io.Reader, fmtKind format, kind compression, size int64, out sink) (*Skip, error) {
	switch fmtKind {
	case formatJSONL:
		return nil, s.readJSONL(ctx, ref, rd, kind == compressNone, out)
	case formatCSV, formatTSV:
		return s.readCSV(ctx, ref, rd, fmtKind == formatTSV, out)
	}
	limit := int64(-1) // a compressed text larger than limit is streamed
	if fmtKind == formatText && kind != compressNone {
		limit = s.opts.streamAbove()
	}
	whole := rd
	if limit >= 0 {
		whole, size = io.LimitReader(rd, limit+1), min(size, limit+1)
	}
	raw, release, err := readPooled(whole, size) // reused: work never keeps doc.Text
	defer release()
	if err == nil && limit >= 0 && int64(len(raw)) > limit {
		return s.streamCompressed(ref, rd, int64(len(raw)), out)
	}
	if err != nil {
		if _, ok := errors.AsType[*decodeError](err); ok {
			return nil, err
		}
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot read: " + errReason(err)}, nil
	}
	text, invalid := ToValidUTF8(raw)
	if fmtKind == formatHTML {
		text = HTMLText(text)
	}
	return nil, out.emit(Document{ID: ref.id(), Text: text, Bytes: int64(len(raw)), InvalidUTF8: invalid})
}
