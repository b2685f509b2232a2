package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// partKeys are the key columns of one part, row by row.
type partKeys struct {
	hash   []uint64 // keyHash of each row, set by hashKeys
	docIDs []string
	index  []int32
	sha    [][32]byte
	at     []int64 // embedded_at, Unix milliseconds
	// embValues is the number of vector elements the footer declares.
	embValues int64
	// bad holds, per row, why the row may not be indexed ("" when it may);
	// nil when every row may.
	bad []string
}

// hashKeys computes each row's key hash, hashing a doc_id once per run of
// rows that share it.
func (pk *partKeys) hashKeys(seed maphash.Seed) {
	pk.hash = make([]uint64, len(pk.docIDs))
	var last string
	var docHash uint64
	for r, doc := range pk.docIDs {
		if r == 0 || doc != last {
			last, docHash = doc, maphash.String(seed, doc)
		}
		pk.hash[r] = keyHash(docHash, pk.index[r])
	}
}

// errCorrupt marks a part whose bytes cannot be a valid part: bad footer,
// bad pages, missing or mistyped key columns, invalid sha256.
var errCorrupt = errors.New("corrupt part")

// ioRecorder remembers the first I/O error (other than io.EOF) of the reads
// the Parquet decoder makes, to tell a failing disk (fatal: retry later) from a
// corrupt file (move it aside). A read outside the file is the decoder
// following corrupt offsets, not an I/O error.
type ioRecorder struct {
	r    io.ReaderAt
	size int64
	mu   sync.Mutex
	err  error
}

func (x *ioRecorder) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > x.size {
		return 0, fmt.Errorf("read at offset %d outside the file (%d bytes): %w", off, x.size, io.ErrUnexpectedEOF)
	}
	n, err := x.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		x.mu.Lock()
		if x.err == nil {
			x.err = err
		}
		x.mu.Unlock()
	}
	return n, err
}

// finish is deferred by the part readers: it turns a decoder panic (hostile
// bytes) into errCorrupt and, when the read failed after an I/O error, reports
// that error instead. It must be deferred directly for recover to work.
func (x *ioRecorder) finish(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: decoder panic: %v", errCorrupt, p)
	}
	if *err != nil && x.err != nil {
		*err = fmt.Errorf("reading part: %w", x.err)
	}
}

// readPartKeys reads only the doc_id, chunk_index, chunk_sha256 and
// embedded_at columns of a part (column projection: the text and embedding
// pages are never read). An error wrapping errCorrupt means the file is not a
// readable part; any other error is an I/O failure.
func readPartKeys(r io.ReaderAt, size int64) (pk *partKeys, err error) {
	rec := &ioRecorder{r: r, size: size}
	defer rec.finish(&err) // also recovers the helpers' decoder panics
	footerLen, err := checkFooter(rec, size)
	if err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(rec, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	cols, err := keyColumnsOf(f.Schema())
	if err != nil {
		return nil, err
	}
	if err := checkKeyChunks(rec, size-8-footerLen, f, cols); err != nil {
		return nil, err
	}
	n := int(f.NumRows())
	pk = &partKeys{
		docIDs: make([]string, 0, n),
		index:  make([]int32, 0, n),
		sha:    make([][32]byte, 0, n),
		at:     make([]int64, 0, n),

		embValues: embeddingValues(f),
	}
	unit := timestampUnit(f.Schema())
	for _, rg := range f.RowGroups() {
		if err := pk.readRowGroup(rg, cols, unit); err != nil {
			return nil, err
		}
	}
	if len(pk.docIDs) != n || len(pk.index) != n || len(pk.sha) != n || len(pk.at) != n {
		return nil, fmt.Errorf("%w: key columns hold %d, %d, %d and %d values for %d rows",
			errCorrupt, len(pk.docIDs), len(pk.index), len(pk.sha), len(pk.at), n)
	}
	return pk, nil
}

// keyColumns are the column indexes of a part's key columns.
type keyColumns struct{ doc, idx, sha, at int }

// keyColumnsOf finds the key columns, each required and of its type.
func keyColumnsOf(schema *parquet.Schema) (keyColumns, error) {
	var k keyColumns
	for _, c := range []struct {
		name string
		kind parquet.Kind
		dst  *int
	}{{colDocID, parquet.ByteArray, &k.doc}, {colChunkIndex, parquet.Int32, &k.idx}, {colSHA256, parquet.ByteArray, &k.sha}, {colEmbeddedAt, parquet.Int64, &k.at}} {
		leaf, ok := schema.Lookup(c.name)
		if !ok {
			return k, fmt.Errorf("%w: no column %q", errCorrupt, c.name)
		}
		if leaf.MaxRepetitionLevel != 0 || leaf.Node.Type().Kind() != c.kind {
			return k, fmt.Errorf("%w: column %q is %s, want required %s", errCorrupt, c.name, leaf.Node.Type(), c.kind)
		}
		*c.dst = leaf.ColumnIndex
	}
	return k, nil
}

// checkKeyChunks checks every row group's key column chunks lie before the
// footer (checkColumnChunk).
func checkKeyChunks(rec *ioRecorder, footerStart int64, f *parquet.File, k keyColumns) error {
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range []int{k.doc, k.idx, k.sha, k.at} {
			if c >= len(rg.Columns) {
				return fmt.Errorf("%w: row group has %d columns", errCorrupt, len(rg.Columns))
			}
			if err := checkColumnChunk(rec, footerStart, &rg.Columns[c].MetaData); err != nil {
				return err
			}
		}
	}
	return nil
}

// embeddingValues is the number of vector elements the part's metadata
// counts (0 without an embedding column).
func embeddingValues(f *parquet.File) int64 {
	var n int64
	if leaf, ok := f.Schema().Lookup("embedding", "list", "element"); ok {
		for _, rg := range f.Metadata().RowGroups {
			if leaf.ColumnIndex < len(rg.Columns) {
				n += rg.Columns[leaf.ColumnIndex].MetaData.NumValues
			}
		}
	}
	return n
}

// timestampUnit is the unit of the embedded_at column (milliseconds unless
// its logical type says otherwise).
func timestampUnit(schema *parquet.Schema) time.Duration {
	atLeaf, _ := schema.Lookup(colEmbeddedAt)
	if lt := atLeaf.Node.Type().LogicalType(); lt != nil {
		if ts, ok := lt.Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
			return ts.Unit.Value.Duration()
		}
	}
	return time.Millisecond
}

// readRowGroup appends one row group's keys.
func (pk *partKeys) readRowGroup(rg parquet.RowGroup, k keyColumns, unit time.Duration) error {
	chunks := rg.ColumnChunks()
	last := ""
	err := eachByteArray(chunks[k.doc], func(b []byte) error {
		if string(b) != last { // rows of one document are adjacent: share the string
			last = string(b)
		}
		pk.docIDs = append(pk.docIDs, last)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: column %s: %w", errCorrupt, colDocID, err)
	}
	err = eachByteArray(chunks[k.sha], func(b []byte) error {
		var sum [32]byte
		if len(b) != 64 {
			return fmt.Errorf("chunk_sha256 %q is not 64 hex digits", b)
		}
		if _, err := hex.Decode(sum[:], b); err != nil {
			return fmt.Errorf("chunk_sha256 %q: %w", b, err)
		}
		pk.sha = append(pk.sha, sum)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: column %s: %w", errCorrupt, colSHA256, err)
	}
	err = eachFixed(chunks[k.idx], (*encoding.Values).Int32, parquet.Value.Int32, func(v int32) {
		pk.index = append(pk.index, v)
	})
	if err != nil {
		return fmt.Errorf("%w: column %s: %w", errCorrupt, colChunkIndex, err)
	}
	err = eachFixed(chunks[k.at], (*encoding.Values).Int64, parquet.Value.Int64, func(v int64) {
		pk.at = append(pk.at, int64(time.Duration(v)*unit/time.Millisecond))
	})
	if err != nil {
		return fmt.Errorf("%w: column %s: %w", errCorrupt, colEmbeddedAt, err)
	}
	return nil
}

// checkFooter checks the file's frame before the Parquet decoder trusts it:
// "PAR1" at both ends and a footer length that fits in the file. (The decoder
// allocates the footer length it reads, up to 4 GB, before checking it.)
func checkFooter(r io.ReaderAt, size int64) (footerLen int64, err error) {
	const magic = "PAR1"
	if size < 12 {
		return 0, fmt.Errorf("%w: %d bytes is too short for a parquet file", errCorrupt, size)
	}
	var head [4]byte
	var tail [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return 0, fmt.Errorf("reading parquet header: %w", err)
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("reading parquet footer: %w", err)
	}
	if string(head[:]) != magic || string(tail[4:]) != magic {
		return 0, fmt.Errorf("%w: no parquet magic at the start and end (truncated or not parquet)", errCorrupt)
	}
	footerLen = int64(binary.LittleEndian.Uint32(tail[:4]))
	if footerLen > size-12 {
		return 0, fmt.Errorf("%w: footer length %d exceeds the file (%d bytes)", errCorrupt, footerLen, size)
	}
	return footerLen, nil
}

// maxKeyChunkBytes bounds the uncompressed size of one key column chunk:
// 1 GiB of doc_ids is far beyond any sane part, and far below what a corrupt
// size field would make the decoder allocate.
const maxKeyChunkBytes = 1 << 30

// checkColumnChunk walks the page headers of a key column chunk before the
// decoder does, so that corrupt sizes are reported instead of allocated: the
// chunk lies inside the data region (before footerStart), its codec is one
// reembed writes or may write, and each page fits in the chunk and in the
// chunk's declared uncompressed size.
func checkColumnChunk(r io.ReaderAt, footerStart int64, m *format.ColumnMetaData) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: column %v: %s", errCorrupt, m.PathInSchema, fmt.Sprintf(format, args...))
	}
	switch m.Codec {
	case format.Uncompressed, format.Snappy, format.Gzip, format.Zstd:
	default:
		return bad("codec %v is not one reembed writes", m.Codec)
	}
	start := m.DataPageOffset
	if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
		start = m.DictionaryPageOffset
	}
	end := start + m.TotalCompressedSize
	if start < 4 || m.TotalCompressedSize < 0 || end > footerStart || end < start {
		return bad("chunk [%d, %d) outside the data region [4, %d)", start, end, footerStart)
	}
	if m.TotalUncompressedSize < 0 || m.TotalUncompressedSize > maxKeyChunkBytes {
		return bad("uncompressed size %d", m.TotalUncompressedSize)
	}
	buf := make([]byte, 1024)
	var proto thrift.CompactProtocol
	for off := start; off < end; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n == 0 && err != nil {
			return fmt.Errorf("reading page header: %w", err)
		}
		br := bytes.NewReader(buf[:n])
		var h format.PageHeader
		if err := thrift.NewDecoder(proto.NewReader(br)).Decode(&h); err != nil {
			return bad("page header at %d: %v", off, err)
		}
		off += int64(n - br.Len())
		switch {
		case h.CompressedPageSize < 0 || int64(h.CompressedPageSize) > end-off:
			return bad("page of %d bytes at %d overruns the chunk", h.CompressedPageSize, off)
		case h.UncompressedPageSize < 0 || int64(h.UncompressedPageSize) > m.TotalUncompressedSize:
			return bad("page of %d uncompressed bytes in a chunk of %d", h.UncompressedPageSize, m.TotalUncompressedSize)
		}
		off += int64(h.CompressedPageSize)
	}
	return nil
}

// eachPage calls fn for every page of a column chunk, releasing each page to
// the decoder's pool afterwards (fn must copy what it keeps).
func eachPage(cc parquet.ColumnChunk, fn func(parquet.Page) error) error {
	pages := cc.Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = fn(p)
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// plain reports whether a page's values can be taken from Data() directly:
// not dictionary-indexed and without nulls (our key columns are required).
func plain(p parquet.Page) bool {
	return p.Dictionary() == nil && p.NumNulls() == 0 && len(p.DefinitionLevels()) == 0
}

func eachByteArray(cc parquet.ColumnChunk, fn func([]byte) error) error {
	return eachPage(cc, func(p parquet.Page) error {
		if plain(p) {
			data := p.Data()
			if data.Kind() == encoding.ByteArray {
				vals, offs := data.ByteArray()
				for i := 0; i+1 < len(offs); i++ {
					if err := fn(vals[offs[i]:offs[i+1]]); err != nil {
						return err
					}
				}
				return nil
			}
		}
		return eachValue(p, func(v parquet.Value) error { return fn(v.ByteArray()) })
	})
}

func eachFixed[T any](cc parquet.ColumnChunk, fast func(*encoding.Values) []T, slow func(parquet.Value) T, fn func(T)) error {
	return eachPage(cc, func(p parquet.Page) error {
		if plain(p) {
			data := p.Data()
			for _, v := range fast(&data) {
				fn(v)
			}
			return nil
		}
		return eachValue(p, func(v parquet.Value) error { fn(slow(v)); return nil })
	})
}

// eachValue is the slow path for pages that are dictionary-encoded or carry
// levels (files written by other tools).
func eachValue(p parquet.Page, fn func(parquet.Value) error) error {
	vr := p.Values()
	buf := make([]parquet.Value, 512)
	for {
		n, err := vr.ReadValues(buf)
		for _, v := range buf[:n] {
			if v.IsNull() {
				return errors.New("null key value")
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
