package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"
)

// DefaultPartRows is the default number of rows per part. With 1536-dimension
// embeddings a part of 1000 rows is about 7 MB; a crash loses at most the rows
// not yet committed (fewer than PartRows, plus one part when pipelined), so
// smaller parts lose less and cost more files (and a little more time per row).
const DefaultPartRows = 1000

// ErrInvalidRow is returned (wrapped, naming the row) by [Writer.Add] for a row
// that would corrupt the checkpoint's meaning: empty doc_id, a chunk_sha256
// that is not 64 hex digits, another model than the manifest's, an embedding
// of another length than the manifest's dimensions, empty, with a NaN or
// infinite element or all zeros, a string column that is not valid UTF-8, or
// a zero embedded_at. It is the last line of defence: the embedder stack
// checks answers before they get here.
var ErrInvalidRow = errors.New("invalid checkpoint row")

// ErrClosed is returned by [Writer.Add] and [Writer.Flush] after Close.
var ErrClosed = errors.New("checkpoint writer closed")

// Options configures [Open].
type Options struct {
	// Manifest is the job's spec. Open fills FormatVersion and, when zero,
	// CreatedAt. Shard says which directory the Writer writes to.
	Manifest Manifest
	// Force resumes into a root whose manifest disagrees with the job on
	// encoding, chunking or plain_text ([ErrManifestMismatch]): chunks whose
	// text differs are embedded again, and the shard's manifest is rewritten
	// with the job's spec. It never overrides a model or dimensions mismatch
	// (a checkpoint never mixes them) nor [ErrUnsupportedFormat].
	Force bool
	// PartRows is the number of rows per committed part; 0 means [DefaultPartRows].
	PartRows int
	// Concurrency is how many parts are read at once on open; 0 means GOMAXPROCS.
	Concurrency int
	// Logger receives recovery events and one record per committed part; nil discards.
	Logger *slog.Logger
	// Now is the clock for the manifest's created_at; nil means time.Now.
	Now func() time.Time
	// Pipeline lets Add return while a full part commits in the background
	// (see [Writer]): encoding and fsync then overlap the work that produces
	// the next rows, and a crash can lose one more part. Without it Add
	// returns only once the part it filled is committed.
	Pipeline bool
	// Deep checks every row of the existing parts on open, as verify --deep
	// does ([ScanOptions.Deep]): rows that fail are not indexed, so the
	// rebuild embeds them again, and parts that fail as a whole are moved
	// aside. It reads every byte of the checkpoint.
	Deep bool
	// Lock takes the writer lock of the shard's directory when the store is
	// a [Locker] (one writer per checkpoint directory); Open then refuses
	// with a [*LockedError] while another writer holds it. The rebuild sets
	// it; Close or Release frees the lock.
	Lock bool
	// OnCommit, if set, is called on the writer's goroutine (from Add, Flush
	// or Close) once a part is known to be committed, including when the
	// commit returned [ErrNotDurable].
	OnCommit func(PartInfo)
}

// Recovery is what [Open] found and repaired.
type Recovery struct {
	// RemovedTemp are the shard's temporary files (unfinished commits) removed.
	RemovedTemp []string
	// Unreadable are the parts of every shard that could not be read. The
	// shard's own ones were moved aside (MovedTo set); their chunks are missing
	// from the index, so the rebuild embeds them again.
	Unreadable []BadPart
	// ManifestWritten is true when Open wrote the shard's manifest (new root,
	// or Force over a mismatch).
	ManifestWritten bool
	// Overridden lists the manifest mismatches that Force overrode.
	Overridden []*MismatchError
}

// Writer appends rows to one shard's directory as numbered Parquet parts.
//
// A part is committed every PartRows rows and on every [Writer.Flush]. With
// [Options.Pipeline], Add hands a full part to a background commit (encode,
// write, fsync, rename) and returns, so encoding and fsync overlap the work
// that produces the next rows; at most one commit is in flight, the next one
// waits for it, and Flush and Close wait for all.
//
// Crash guarantee: a part is committed atomically (see [Store.Commit]). A
// crash (kill -9, power loss) loses only the rows whose part had not finished
// committing ([Writer.Buffered]): fewer than PartRows buffered rows, plus,
// when pipelined, the PartRows rows of the commit in flight. It never leaves
// a committed part unreadable or partly written, and a committed part is never
// rewritten: every commit attempt, failed or not, takes a new part number.
// After a failed commit its rows are buffered again, ahead of newer ones, and
// the next Add or Flush reports the error; the one after tries again under the
// next number.
//
// A Writer is owned by one goroutine: it is not safe for concurrent use.
type Writer struct {
	store    Store
	dir      string
	manifest Manifest
	partRows int
	logger   *slog.Logger
	onCommit func(PartInfo)
	pipeline bool
	enc      encoder // used by one commit at a time

	index    *Index
	recovery Recovery
	// corpusChanged: the shard's manifest records other corpus roots or
	// filters than the job's, and is rewritten.
	corpusChanged bool
	next          int
	buf           []Row
	pending       *pendingCommit // the commit in flight, if any
	closed        bool

	parts, rows int
	unlock      func() error // frees the writer lock; nil when the store has none
}

// Release frees the writer lock of the directory ([Locker]) without
// committing anything: after it another writer may open the directory. Close
// calls it once everything is committed; call it yourself (deferred) to free
// the lock when a Writer is abandoned after an error. It may be called more
// than once. The Writer must not be used afterwards.
func (w *Writer) Release() error {
	if w == nil || w.unlock == nil {
		return nil
	}
	return w.unlock()
}

// Open prepares a shard of a checkpoint root for writing, resuming what is
// there. With [Options.Lock] and a [Locker] store it first takes the writer lock of the
// shard's directory, refusing with a [*LockedError] (wrapping [ErrLocked])
// when another writer holds it; [Writer.Close] frees it. Then it
//
//  1. removes the shard directory's temporary files (never another shard's:
//     it may be committing right now);
//  2. checks every manifest of the root against opts.Manifest, returning a
//     [*MismatchError] (wrapping [ErrManifestMismatch]) unless opts.Force, and
//     writes the shard's manifest atomically if it has none;
//  3. reads the key columns of every part of every shard into the [Index];
//  4. moves the shard's unreadable parts aside (renamed *.parquet.corrupt), so
//     their chunks count as missing and are embedded again.
//
// The store may be empty or not exist yet.
func Open(ctx context.Context, store Store, opts Options) (*Writer, error) {
	m := opts.Manifest
	if err := m.Shard.Validate(); err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	if m.Model == "" {
		return nil, errors.New("opening checkpoint: manifest has no model")
	}
	m.FormatVersion = FormatVersion
	if m.CreatedAt.IsZero() {
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		m.CreatedAt = now().UTC().Truncate(time.Millisecond)
	}
	w := &Writer{
		store:    store,
		dir:      ShardDir(m.Shard),
		manifest: m,
		partRows: cmp.Or(opts.PartRows, DefaultPartRows),
		logger:   opts.Logger,
		onCommit: opts.OnCommit,
		pipeline: opts.Pipeline,
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	if w.partRows < 0 {
		return nil, fmt.Errorf("opening checkpoint: part rows %d < 0", w.partRows)
	}
	if l, ok := store.(Locker); ok && opts.Lock {
		release, err := l.Lock(ctx, w.dir)
		if err != nil {
			return nil, fmt.Errorf("opening checkpoint: %w", err)
		}
		w.unlock = release
	}
	opened, err := w.open(ctx, opts)
	if err != nil {
		w.Release()
		return nil, err
	}
	return opened, nil
}

// open is Open after the lock is taken.
func (w *Writer) open(ctx context.Context, opts Options) (*Writer, error) {
	store := w.store

	files, err := store.List(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	ownManifest := false
	highest := 0
	for _, f := range files {
		fn := classify(f.Name)
		if fn.dir == w.dir && fn.kind != kindOther {
			highest = max(highest, fn.number)
		}
		switch {
		case fn.kind == kindTemp && fn.dir == w.dir:
			if err := store.Remove(ctx, f.Name); err != nil {
				return nil, fmt.Errorf("opening checkpoint: removing temporary file: %w", err)
			}
			w.recovery.RemovedTemp = append(w.recovery.RemovedTemp, f.Name)
			w.logger.Info("removed unfinished checkpoint commit", "file", f.Name)
		case fn.kind == kindManifest:
			if err := w.checkManifest(ctx, f.Name, opts.Force); err != nil {
				return nil, err
			}
			ownManifest = ownManifest || fn.dir == w.dir
		}
	}
	if !ownManifest || w.corpusChanged || w.recovery.Overridden != nil && w.ownOverridden() {
		if err := w.writeManifest(ctx); err != nil {
			return nil, err
		}
	}

	// scan reads only committed parts: the temporary files removed above are skipped.
	ix, err := scan(ctx, store, files, ScanOptions{Concurrency: opts.Concurrency, Logger: w.logger, Deep: opts.Deep,
		Expect: Expect{Model: w.manifest.Model, Dimensions: w.manifest.Dimensions}})
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	for i, bad := range ix.unreadable {
		if classify(bad.Name).dir != w.dir {
			continue
		}
		to, err := moveAside(ctx, store, bad.Name)
		if err != nil {
			return nil, fmt.Errorf("opening checkpoint: moving unreadable part aside: %w", err)
		}
		ix.unreadable[i].MovedTo = to
		w.logger.Warn("moved unreadable checkpoint part aside", "part", bad.Name, "moved_to", to, "error", bad.Err)
	}
	w.recovery.Unreadable = ix.Unreadable()
	w.index = ix
	w.next = highest + 1
	return w, nil
}

func (w *Writer) ownOverridden() bool {
	for _, e := range w.recovery.Overridden {
		if classify(e.File).dir == w.dir {
			return true
		}
	}
	return false
}

// checkManifest compares one existing manifest with the job's.
func (w *Writer) checkManifest(ctx context.Context, name string, force bool) error {
	have, err := readManifest(ctx, w.store, name)
	if err != nil {
		return fmt.Errorf("opening checkpoint: %w", err)
	}
	err = Compare(name, have, w.manifest)
	var mm *MismatchError
	switch {
	case err == nil:
		if classify(name).dir == w.dir && !have.CreatedAt.IsZero() {
			w.manifest.CreatedAt = have.CreatedAt // resuming: keep the job's start
		}
		// The caller accepted another corpus (rebuild --corpus-changed):
		// record the one now read.
		w.corpusChanged = w.corpusChanged || classify(name).dir == w.dir && !SameCorpus(have, w.manifest)
		return nil
	case force && errors.As(err, &mm) && mm.Forceable():
		w.logger.Warn("resuming despite manifest mismatch (forced)", "manifest", name, "field", mm.Field, "have", mm.Have, "want", mm.Want)
		w.recovery.Overridden = append(w.recovery.Overridden, mm)
		return nil
	default:
		return fmt.Errorf("opening checkpoint: %w", err)
	}
}

// ReadManifest reads and decodes the manifest of shard s in a store. It
// returns an error wrapping fs.ErrNotExist when there is none.
func ReadManifest(ctx context.Context, store Store, s Shard) (Manifest, error) {
	return readManifest(ctx, store, ManifestPath(s))
}

func readManifest(ctx context.Context, store Store, name string) (Manifest, error) {
	f, err := store.Open(ctx, name)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading manifest %q: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return Manifest{}, fmt.Errorf("reading manifest %q: %w", name, err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading manifest %q: %w", name, err)
	}
	return m, nil
}

func (w *Writer) writeManifest(ctx context.Context) error {
	b, err := encodeManifest(w.manifest)
	if err != nil {
		return err
	}
	name := ManifestPath(w.manifest.Shard)
	err = w.store.Commit(ctx, name, func(wr io.Writer) error {
		_, err := wr.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("opening checkpoint: writing manifest: %w", err)
	}
	w.recovery.ManifestWritten = true
	return nil
}

// moveAside renames a part to name.corrupt (or name.corrupt-2, -3, … when
// taken), a name no reader takes for a part.
func moveAside(ctx context.Context, store Store, name string) (string, error) {
	for i := 1; ; i++ {
		to := name + ".corrupt"
		if i > 1 {
			to = fmt.Sprintf("%s.corrupt-%d", name, i)
		}
		err := store.Rename(ctx, name, to)
		if errors.Is(err, fs.ErrExist) && i < 1000 {
			continue
		}
		if err != nil && !errors.Is(err, ErrNotDurable) {
			return "", err
		}
		return to, nil
	}
}

// Index returns the checkpoint's content as read by [Open]. It is not
// updated by later commits.
func (w *Writer) Index() *Index { return w.index }

// Recovery returns what [Open] found and repaired.
func (w *Writer) Recovery() Recovery { return w.recovery }

// Manifest returns the manifest in force for this shard.
func (w *Writer) Manifest() Manifest { return w.manifest }

// Buffered returns the number of rows added but not yet known committed,
// those of the commit in flight included: what a crash now would lose.
func (w *Writer) Buffered() int {
	n := len(w.buf)
	if w.pending != nil {
		n += len(w.pending.rows)
	}
	return n
}

// Committed returns the number of parts and rows this Writer has committed.
func (w *Writer) Committed() (parts, rows int) { return w.parts, w.rows }

// Add buffers rows and commits a part each time PartRows rows are buffered;
// when pipelined it only starts that commit, with ctx, after waiting for the
// previous one. The Writer keeps a reference to each row's Embedding: do not
// modify it afterwards. It returns an error wrapping [ErrInvalidRow] (nothing
// added), [ErrClosed], or the error of a commit that failed (the rows are
// added, and the failed part's rows are buffered again).
func (w *Writer) Add(ctx context.Context, rows ...Row) error {
	if w.closed {
		return ErrClosed
	}
	for i := range rows {
		if err := w.validate(&rows[i]); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, rows...)
	if err := w.poll(); err != nil {
		return err
	}
	for len(w.buf) >= w.partRows {
		if err := w.startCommit(ctx, w.partRows); err != nil {
			return err
		}
		if !w.pipeline {
			if err := w.wait(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) validate(r *Row) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidRow, r.Key(), fmt.Sprintf(format, args...))
	}
	switch {
	case r.DocID == "":
		return bad("empty doc_id")
	case len(r.ChunkSHA256) != 64 || !isLowerHex(r.ChunkSHA256):
		return bad("chunk_sha256 %q is not 64 lower-case hex digits", r.ChunkSHA256)
	case r.Model != w.manifest.Model:
		return bad("model %q, manifest has %q", r.Model, w.manifest.Model)
	case w.manifest.Dimensions > 0 && len(r.Embedding) != w.manifest.Dimensions:
		return bad("embedding has %d dimensions, manifest has %d", len(r.Embedding), w.manifest.Dimensions)
	case len(r.Embedding) == 0:
		return bad("embedding is empty")
	case r.EmbeddedAt.IsZero():
		return bad("embedded_at is zero")
	}
	if why := vectorProblem(r.Embedding); why != "" {
		return bad("embedding %s", why)
	}
	if col := invalidUTF8Column(r); col != "" {
		return bad("%s is not valid UTF-8", col)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Flush commits the buffered rows, if any, as parts of at most PartRows rows,
// and waits until every commit, the one in flight included, has finished. The
// rebuild calls it on its flush interval and before exiting. On error the
// rows stay buffered.
//
// On shutdown ctx is often already cancelled: [Dir] commits anyway, but a
// store that honours ctx (object storage) would not, so pass
// context.WithoutCancel(ctx), with a timeout of your choosing, to the last
// Flush or Close.
func (w *Writer) Flush(ctx context.Context) error {
	if w.closed {
		return ErrClosed
	}
	if err := w.wait(); err != nil {
		return err
	}
	for len(w.buf) > 0 {
		if err := w.startCommit(ctx, min(len(w.buf), w.partRows)); err != nil {
			return err
		}
		if err := w.wait(); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes and closes the Writer, and frees the writer lock. After an
// error the rows stay buffered, the lock is kept, and Close may be called
// again; once it returns nil the Writer is closed.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return nil
	}
	if err := w.Flush(ctx); err != nil {
		return err
	}
	w.closed = true
	return w.Release()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pendingCommit is a part being committed in the background.
type pendingCommit struct {
	info PartInfo
	rows []Row
	done chan struct{} // closed when err and info.Size are set
	err  error
}

// startCommit waits for the commit in flight, then takes the first n
// buffered rows and commits them as the next part in the background.
func (w *Writer) startCommit(ctx context.Context, n int) error {
	if err := w.wait(); err != nil {
		return err
	}
	number := w.next
	w.next++ // never reuse a number, even after a failed attempt
	p := &pendingCommit{
		info: PartInfo{Name: PartName(w.manifest.Shard, number), Dir: w.dir, Number: number, Rows: n},
		rows: make([]Row, n),
		done: make(chan struct{}),
	}
	copy(p.rows, w.buf[:n])
	rest := copy(w.buf, w.buf[n:])
	clear(w.buf[rest:]) // the pending commit holds these rows now
	w.buf = w.buf[:rest]
	w.pending = p
	go func() {
		defer close(p.done)
		p.err = w.store.Commit(ctx, p.info.Name, func(out io.Writer) error {
			cw := &countingWriter{w: out}
			err := w.enc.encode(cw, p.rows)
			p.info.Size = cw.n
			return err
		})
	}()
	return nil
}

// wait waits for the commit in flight, if any, and settles it.
func (w *Writer) wait() error {
	if w.pending == nil {
		return nil
	}
	<-w.pending.done
	return w.settle()
}

// poll settles the commit in flight if it has finished, without waiting.
func (w *Writer) poll() error {
	if w.pending == nil {
		return nil
	}
	select {
	case <-w.pending.done:
		return w.settle()
	default:
		return nil
	}
}

// settle accounts for the finished commit in flight. A failed commit's rows
// go back to the front of the buffer, to be committed under a new number.
func (w *Writer) settle() error {
	p := w.pending
	w.pending = nil
	if p.err != nil && !errors.Is(p.err, ErrNotDurable) {
		w.buf = append(p.rows, w.buf...)
		return fmt.Errorf("committing checkpoint part: %w", p.err)
	}
	w.parts++
	w.rows += p.info.Rows
	w.logger.Info("committed checkpoint part", "part", p.info.Name, "rows", p.info.Rows, "bytes", p.info.Size)
	if w.onCommit != nil {
		w.onCommit(p.info)
	}
	if p.err != nil {
		return fmt.Errorf("committing checkpoint part: %w", p.err)
	}
	return nil
}
