package checkpoint

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"iter"
	"log/slog"
	"math/bits"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// PartInfo describes one readable committed part.
type PartInfo struct {
	// Name is the part's store name, e.g. "shard-0001-of-0004/part-000003.parquet".
	Name string
	// Dir is its directory: "" for the root, else a [ShardDir].
	Dir string
	// Number is its part number within Dir.
	Number int
	// Rows is how many rows it holds.
	Rows int
	// Size is its length in bytes.
	Size int64
}

// BadPart is a committed part that could not be read (truncated, garbage, not
// our schema). Its rows count as missing, so a resume embeds them again.
type BadPart struct {
	// Name is the part's store name when it was found.
	Name string
	// Err says why it could not be read.
	Err error
	// MovedTo is where [Open] moved it aside ("" when it was left in place,
	// as [Scan] and other shards' parts are).
	MovedTo string
}

// MarshalJSON writes {"name", "error", "moved_to"}, the error as its message.
func (b BadPart) MarshalJSON() ([]byte, error) {
	var msg string
	if b.Err != nil {
		msg = b.Err.Error()
	}
	return json.Marshal(struct {
		Name    string `json:"name"`
		Error   string `json:"error"`
		MovedTo string `json:"moved_to,omitempty"`
	}{b.Name, msg, b.MovedTo})
}

// Entry is the winning row of a key.
type Entry struct {
	// SHA256 is the hex sha256 of the chunk text the row embeds.
	SHA256 string
	// Part is the store name of the part holding the row.
	Part string
	// EmbeddedAt is when the provider returned the vector, UTC, millisecond precision.
	EmbeddedAt time.Time
}

// ShadowedRow is a row that lost to a later row of the same key (see the
// package documentation for the rule). It stays in its part, which is never
// rewritten; readers must skip it.
type ShadowedRow struct {
	// Key is the chunk's identity.
	Key Key
	// SHA256 is the hex sha256 of the text this older row embeds.
	SHA256 string
	// Part is the store name of the part holding the older row.
	Part string
}

type entry struct {
	sha  [32]byte
	at   int64 // Unix ms
	part int32 // index into Index.parts
}

type loser struct {
	key  Key
	sha  [32]byte
	part int32
}

// Index is what a checkpoint root holds: for every key the winning row, plus
// the rows it shadows and the parts that could not be read. It is built by
// [Scan] or [Open] and is immutable afterwards, so it is safe for concurrent use.
//
// Memory: about 100 bytes per key, plus each doc_id string once per part
// (shared by the document's chunks in that part).
type Index struct {
	keyTable
	invalid    []InvalidRow // the first SampleKeys
	nInvalid   int
	parts      []PartInfo
	losers     []loser
	unreadable []BadPart
	rows       int
}

// noteInvalid records the rows of a part that may not be indexed.
func (ix *Index) noteInvalid(part string, pk *partKeys) {
	for r, why := range pk.bad {
		if why == "" {
			continue
		}
		ix.nInvalid++
		if len(ix.invalid) < SampleKeys {
			ix.invalid = append(ix.invalid, InvalidRow{Key: Key{DocID: pk.docIDs[r], ChunkIndex: pk.index[r]}, Part: part, Row: r, Reason: why})
		}
	}
}

// Invalid returns how many rows failed the checks of [ScanOptions.Deep] or
// [ScanOptions.Expect], and the first of them (at most [SampleKeys]). They
// are not indexed.
func (ix *Index) Invalid() (n int, sample []InvalidRow) { return ix.nInvalid, slices.Clone(ix.invalid) }

// Len returns the number of distinct keys checkpointed.
func (ix *Index) Len() int { return len(ix.entries) }

// Rows returns the number of rows read, shadowed ones included.
func (ix *Index) Rows() int { return ix.rows }

// Parts returns the readable parts, sorted by directory then number.
func (ix *Index) Parts() []PartInfo { return slices.Clone(ix.parts) }

// Unreadable returns the parts that could not be read.
func (ix *Index) Unreadable() []BadPart { return slices.Clone(ix.unreadable) }

// Lookup returns the winning row of a key.
func (ix *Index) Lookup(k Key) (Entry, bool) {
	i, ok := ix.find(ix.hash(k), k)
	if !ok {
		return Entry{}, false
	}
	return ix.publicEntry(ix.entries[i]), true
}

// publicEntry converts a stored entry to an [Entry].
func (ix *Index) publicEntry(e entry) Entry {
	return Entry{
		SHA256:     hex.EncodeToString(e.sha[:]),
		Part:       ix.parts[e.part].Name,
		EmbeddedAt: time.UnixMilli(e.at).UTC(),
	}
}

// All yields every checkpointed key with its winning row, in the order the
// keys were first met (parts sorted by directory then number, rows in order).
func (ix *Index) All() iter.Seq2[Key, Entry] {
	return func(yield func(Key, Entry) bool) {
		for i, k := range ix.entryKeys {
			if !yield(k, ix.publicEntry(ix.entries[i])) {
				return
			}
		}
	}
}

// Has reports whether a key is checkpointed with exactly this text: its
// winning row's chunk_sha256 equals sha256Hex (case-insensitive hex). The
// rebuild skips a chunk iff Has returns true. It does not allocate.
func (ix *Index) Has(k Key, sha256Hex string) bool {
	i, ok := ix.find(ix.hash(k), k)
	if !ok {
		return false
	}
	sum, ok := decodeSHA(sha256Hex)
	return ok && sum == ix.entries[i].sha
}

// decodeSHA parses 64 hex digits (either case) without allocating.
func decodeSHA(s string) (sum [32]byte, ok bool) {
	if len(s) != 64 {
		return sum, false
	}
	for i := range sum {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return sum, false
		}
		sum[i] = hi<<4 | lo
	}
	return sum, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Superseded returns the rows shadowed by a later row with another sha256:
// the text changed and the chunk was embedded again.
func (ix *Index) Superseded() []ShadowedRow { return ix.shadowed(false) }

// Duplicates returns the rows shadowed by a later row with the same sha256:
// the same text written twice (for example after a commit whose durability
// could not be confirmed, or by two shards after a change of shard count).
func (ix *Index) Duplicates() []ShadowedRow { return ix.shadowed(true) }

func (ix *Index) shadowed(same bool) []ShadowedRow {
	var out []ShadowedRow
	for _, l := range ix.losers {
		i, _ := ix.find(ix.hash(l.key), l.key)
		if (ix.entries[i].sha == l.sha) == same {
			out = append(out, ShadowedRow{Key: l.key, SHA256: hex.EncodeToString(l.sha[:]), Part: ix.parts[l.part].Name})
		}
	}
	return out
}

// ScanOptions tunes [Scan].
type ScanOptions struct {
	// Concurrency is how many parts are read at once; 0 means GOMAXPROCS.
	Concurrency int
	// Logger receives one record per unreadable part; nil discards.
	Logger *slog.Logger
	// Deep also decodes every column of every row (text and embeddings) and
	// checks each row (see [InvalidRow]): a part that does not decode, or
	// whose rows do not match its digest ([DigestKey]), is reported
	// unreadable; a row that fails a check is not indexed and is reported by
	// [Index.Invalid]. It reads every byte: about as slow as reading the
	// whole checkpoint.
	Deep bool
	// Expect is what every row must be (the manifest's model and
	// dimensions). Without Deep only whole parts are checked, from their
	// footer: a part whose embedding column holds another number of values
	// than rows × Dimensions is not indexed (its rows are reported invalid).
	Expect Expect
}

// Scan reads the key columns of every committed part of every shard below
// the store's root and returns the index. It changes nothing: unreadable parts
// are reported by [Index.Unreadable], temporary files are ignored. A root that
// does not exist is an error wrapping fs.ErrNotExist. It returns an error
// only when listing fails, a part cannot be read for an I/O reason (not
// corruption), or ctx ends.
func Scan(ctx context.Context, store Store, opts ScanOptions) (*Index, error) {
	files, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	return scan(ctx, store, files, opts)
}

func scan(ctx context.Context, store Store, files []FileInfo, opts ScanOptions) (*Index, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	parts := committedParts(files)
	seed := maphash.MakeSeed()
	g, gctx, results := readParts(ctx, store, parts, opts, seed)

	// Each directory is merged into a table of its own (the last row wins),
	// then the table into the index (the later embedded_at wins). The first
	// directory's table becomes the index as is.
	remaining := map[string]int{}
	for _, p := range parts {
		remaining[p.Dir]++
	}
	ix := &Index{}
	var cur *keyTable
	for i, p := range parts {
		var r partResult
		select {
		case r = <-results[i]:
		case <-gctx.Done():
			err := g.Wait()
			return nil, cmp.Or(err, ctx.Err())
		}
		if cur != nil && p.Dir != ix.parts[len(ix.parts)-1].Dir {
			ix.mergeDir(cur)
			cur = nil
		}
		remaining[p.Dir]--
		if r.bad != nil {
			logger.Warn("unreadable checkpoint part", "part", p.Name, "error", r.bad)
			ix.unreadable = append(ix.unreadable, BadPart{Name: p.Name, Err: r.bad})
			continue
		}
		if r.pk == nil {
			logger.Warn("checkpoint part vanished while scanning", "part", p.Name)
			continue
		}
		if cur == nil { // guess the size from the first part: parts are usually full
			cur = newKeyTable(seed, min(len(r.pk.docIDs)*(remaining[p.Dir]+1), 1<<24))
		}
		p.Rows = len(r.pk.docIDs)
		ix.rows += p.Rows
		ix.parts = append(ix.parts, p)
		ix.losers = cur.addPart(int32(len(ix.parts)-1), r.pk, ix.losers)
		ix.noteInvalid(p.Name, r.pk)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if cur != nil {
		ix.mergeDir(cur)
	}
	if ix.entryKeys == nil {
		ix.keyTable = *newKeyTable(seed, 0)
	}
	return ix, nil
}

// committedParts returns the committed parts among files, by directory
// then number.
func committedParts(files []FileInfo) []PartInfo {
	var parts []PartInfo
	for _, f := range files {
		if fn := classify(f.Name); fn.kind == kindPart {
			parts = append(parts, PartInfo{Name: f.Name, Dir: fn.dir, Number: fn.number, Size: f.Size})
		}
	}
	slices.SortFunc(parts, func(a, b PartInfo) int {
		return cmp.Or(cmp.Compare(a.Dir, b.Dir), cmp.Compare(a.Number, b.Number))
	})
	return parts
}

// partResult is one part's keys, or why it is unreadable (both nil: the
// part vanished since the listing).
type partResult struct {
	pk  *partKeys
	bad error
}

// readParts starts readers that fetch the parts in order, in parallel
// (opts.Concurrency, default GOMAXPROCS), each result on its own channel, so
// that the caller merges in order as they arrive and merging overlaps
// reading. The group fails on an I/O error (not corruption); gctx ends then.
func readParts(ctx context.Context, store Store, parts []PartInfo, opts ScanOptions, seed maphash.Seed) (g *errgroup.Group, gctx context.Context, results []chan partResult) {
	results = make([]chan partResult, len(parts))
	for i := range results {
		results[i] = make(chan partResult, 1)
	}
	g, gctx = errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(cmp.Or(opts.Concurrency, runtime.GOMAXPROCS(0)), len(parts)) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(parts) {
					return nil
				}
				pk, err := readPart(gctx, store, parts[i].Name, opts)
				if pk != nil {
					pk.hashKeys(seed)
				}
				switch {
				case errors.Is(err, fs.ErrNotExist):
					results[i] <- partResult{} // moved aside since the listing: skip it
				case errors.Is(err, errCorrupt):
					results[i] <- partResult{bad: err}
				case err != nil:
					return fmt.Errorf("reading part %q: %w", parts[i].Name, err)
				default:
					results[i] <- partResult{pk: pk}
				}
			}
		})
	}
	return g, gctx, results
}

func readPart(ctx context.Context, store Store, name string, opts ScanOptions) (*partKeys, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pk, err := readPartKeys(f, f.Size())
	if err != nil {
		return nil, err
	}
	if d := int64(opts.Expect.Dimensions); d > 0 && pk.embValues != d*int64(len(pk.docIDs)) {
		pk.bad = make([]string, len(pk.docIDs))
		for i := range pk.bad {
			pk.bad[i] = fmt.Sprintf("part holds %d vector elements for %d rows: %v (%d)", pk.embValues, len(pk.docIDs), errPartLength, d)
		}
		return pk, nil
	}
	if !opts.Deep {
		return pk, nil
	}
	if pk.bad, err = deepCheck(f, f.Size(), pk, opts.Expect); err != nil {
		return nil, err
	}
	return pk, nil
}

// keyTable maps keys to their winning row. Keys are found by a 64-bit hash
// of (doc_id, chunk_index) computed by the part readers in parallel (the
// doc_id is hashed once per run of rows of one document), so the merge, the
// serial part of a scan, probes an open-addressing table of hashes once per
// row and compares the key only on a hit.
type keyTable struct {
	seed      maphash.Seed
	keys      hashIndex     // keyHash -> index into entries
	overflow  map[Key]int32 // keys whose hash another key already has (practically never)
	entries   []entry
	entryKeys []Key // entryKeys[i] is the key of entries[i]
}

func newKeyTable(seed maphash.Seed, n int) *keyTable {
	return &keyTable{seed: seed, keys: newHashIndex(n), entries: make([]entry, 0, n), entryKeys: make([]Key, 0, n)}
}

// keyHash hashes a key; docHash is maphash.String(seed, k.DocID).
func keyHash(docHash uint64, chunkIndex int32) uint64 {
	return docHash ^ (uint64(uint32(chunkIndex))+1)*0x9e3779b97f4a7c15
}

func (t *keyTable) hash(k Key) uint64 {
	return keyHash(maphash.String(t.seed, k.DocID), k.ChunkIndex)
}

func (t *keyTable) find(h uint64, k Key) (int32, bool) {
	if i, ok := t.keys.get(h); ok && t.entryKeys[i] == k {
		return i, true
	}
	if t.overflow != nil {
		i, ok := t.overflow[k]
		return i, ok
	}
	return 0, false
}

// upsert finds k or adds it with e: it returns the index of k's entry and
// whether k was there before (then e is not stored).
func (t *keyTable) upsert(h uint64, k Key, e entry) (int32, bool) {
	next := int32(len(t.entries))
	i, had := t.keys.getOrPut(h, next)
	if had && t.entryKeys[i] != k { // another key has this hash
		if t.overflow == nil {
			t.overflow = map[Key]int32{}
		}
		if i, ok := t.overflow[k]; ok {
			return i, true
		}
		t.overflow[k] = next
		had = false
	}
	if had {
		return i, true
	}
	t.entries = append(t.entries, e)
	t.entryKeys = append(t.entryKeys, k)
	return next, false
}

// addPart merges one part of a directory (parts in number order): a later
// row always wins. The rows that lose are appended to losers.
func (t *keyTable) addPart(pi int32, pk *partKeys, losers []loser) []loser {
	for r := range pk.docIDs {
		if pk.bad != nil && pk.bad[r] != "" {
			continue // not reusable: embedded again on resume
		}
		k := Key{DocID: pk.docIDs[r], ChunkIndex: pk.index[r]}
		e := entry{sha: pk.sha[r], at: pk.at[r], part: pi}
		i, had := t.upsert(pk.hash[r], k, e)
		if had {
			losers = append(losers, loser{key: k, sha: t.entries[i].sha, part: t.entries[i].part})
			t.entries[i] = e
		}
	}
	return losers
}

// hashIndex is an open-addressing (linear probing) table from a 64-bit hash
// to an int32, one 16-byte slot per entry, at most 3/4 full: one probe
// sequence per find-or-insert instead of a map's lookup then assignment.
type hashIndex struct {
	slots []hashSlot
	shift uint // 64 - log2(len(slots))
	n     int
}

type hashSlot struct {
	h uint64
	v int32 // value + 1; 0 marks an empty slot
}

func newHashIndex(n int) hashIndex {
	size := 16
	for size*3/4 < n {
		size *= 2
	}
	return hashIndex{slots: make([]hashSlot, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

func (x *hashIndex) home(h uint64) int { return int((h * 0x9e3779b97f4a7c15) >> x.shift) }

func (x *hashIndex) get(h uint64) (int32, bool) {
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.v == 0 {
			return 0, false
		}
		if s.h == h {
			return s.v - 1, true
		}
	}
}

// getOrPut returns h's value, or stores v for h and returns v, false.
func (x *hashIndex) getOrPut(h uint64, v int32) (int32, bool) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.v == 0 {
			s.h, s.v = h, v+1
			x.n++
			return v, false
		}
		if s.h == h {
			return s.v - 1, true
		}
	}
}

func (x *hashIndex) grow() {
	old := x.slots
	*x = newHashIndex(len(old))
	for _, s := range old {
		if s.v != 0 {
			x.getOrPut(s.h, s.v-1)
		}
	}
}

// mergeDir merges a directory's winners into the index. Directories arrive in
// name order: on an equal embedded_at the one merged later wins.
func (ix *Index) mergeDir(t *keyTable) {
	if ix.entryKeys == nil {
		ix.keyTable = *t
		return
	}
	for j, k := range t.entryKeys {
		e := t.entries[j]
		i, had := ix.upsert(ix.hash(k), k, e)
		switch {
		case !had:
		case e.at >= ix.entries[i].at:
			ix.losers = append(ix.losers, loser{key: k, sha: ix.entries[i].sha, part: ix.entries[i].part})
			ix.entries[i] = e
		default:
			ix.losers = append(ix.losers, loser{key: k, sha: e.sha, part: e.part})
		}
	}
}

// Report is the coverage of a corpus by a checkpoint, in chunks (rows for
// Duplicates and Superseded).
type Report struct {
	// Expected is how many chunks the corpus has (keys yielded, repeats included).
	Expected int `json:"expected"`
	// Present is how many are checkpointed with the same sha256.
	Present int `json:"present"`
	// Missing is how many have no row.
	Missing int `json:"missing"`
	// Stale is how many have a winning row with another sha256 (text changed).
	Stale int `json:"stale"`
	// Extra is how many checkpointed keys the corpus no longer has.
	Extra int `json:"extra"`
	// Duplicates is how many rows repeat a later row of the same key and sha256.
	Duplicates int `json:"duplicates"`
	// Superseded is how many rows were replaced by a later row with another sha256.
	Superseded int `json:"superseded"`
	// UnreadableParts is how many parts could not be read (their chunks count as missing).
	UnreadableParts int `json:"unreadable_parts"`
	// InvalidRows is how many rows failed the row checks (verify --deep, or
	// a part's vector length); they count as missing unless another row of
	// their key is sound.
	InvalidRows int `json:"invalid_rows"`
	// InvalidSample holds the first invalid rows (at most [SampleKeys]).
	InvalidSample []InvalidRow `json:"invalid_row_sample,omitempty"`
	// MissingKeys holds the first missing keys (at most [SampleKeys]), for messages.
	MissingKeys []Key `json:"missing_keys,omitempty"`
	// StaleKeys holds the first stale keys (at most [SampleKeys]).
	StaleKeys []Key `json:"stale_keys,omitempty"`
	// ExtraKeys holds the first extra keys (at most [SampleKeys]), in checkpoint order.
	ExtraKeys []Key `json:"extra_keys,omitempty"`
}

// SampleKeys is how many keys of each kind a [Report] lists.
const SampleKeys = 10

// Complete reports whether every expected chunk is present with its current
// text. Extra, duplicate and superseded rows do not make coverage incomplete.
func (r Report) Complete() bool { return r.Missing == 0 && r.Stale == 0 }

// Coverage compares the index with the chunks a corpus has now: expected
// yields each chunk's key and hex sha256. It does not modify the index and is
// safe to call concurrently.
func (ix *Index) Coverage(expected iter.Seq2[Key, string]) Report {
	seen := make([]bool, len(ix.entries))
	var r Report
	sample := func(keys *[]Key, k Key) {
		if len(*keys) < SampleKeys {
			*keys = append(*keys, k)
		}
	}
	for k, sha := range expected {
		r.Expected++
		i, ok := ix.find(ix.hash(k), k)
		if !ok {
			r.Missing++
			sample(&r.MissingKeys, k)
			continue
		}
		seen[i] = true
		if sum, ok := decodeSHA(sha); ok && sum == ix.entries[i].sha {
			r.Present++
		} else {
			r.Stale++
			sample(&r.StaleKeys, k)
		}
	}
	if r.Extra = len(seen) - countTrue(seen); r.Extra > 0 {
		for i, k := range ix.entryKeys {
			if !seen[i] {
				sample(&r.ExtraKeys, k)
			}
			if len(r.ExtraKeys) == SampleKeys {
				break
			}
		}
	}
	r.Duplicates = len(ix.Duplicates())
	r.Superseded = len(ix.losers) - r.Duplicates
	r.UnreadableParts = len(ix.unreadable)
	r.InvalidRows, r.InvalidSample = ix.Invalid()
	return r
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
