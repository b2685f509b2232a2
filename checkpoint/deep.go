package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"

	"github.com/parquet-go/parquet-go"
)

// DigestKey is the key, in a part's Parquet key-value metadata, of the
// CRC-32C (Castagnoli, hex) of the part's rows: every column of every row in
// order, strings length-prefixed, numbers little-endian, embedded_at in Unix
// milliseconds. Page checksums (CRC-32 in every page header, which parquet-go
// writes and checks) cover the pages; the digest also covers the page
// headers and the footer (schema, offsets, types), so that verify --deep sees
// any flipped byte that changes a row. Parts written before it have none.
const DigestKey = "reembed.rows_crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rowsDigest returns the hex CRC-32C of rows, as [DigestKey] defines it.
func rowsDigest(rows []Row) string {
	h := crc32.New(castagnoli)
	var buf []byte
	for i := range rows {
		buf = appendRow(buf[:0], &rows[i])
		h.Write(buf)
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

func appendRow(b []byte, r *Row) []byte {
	str := func(s string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str(r.DocID)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.ChunkIndex))
	str(r.ChunkSHA256)
	str(r.Text)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Tokens))
	str(r.Model)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Embedding)))
	for _, x := range r.Embedding {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return binary.LittleEndian.AppendUint64(b, uint64(r.EmbeddedAt.UnixMilli()))
}

// Expect is what every row of a checkpoint must be, from its manifest.
type Expect struct {
	// Model is the manifest's model; "" checks none.
	Model string
	// Dimensions is the manifest's vector length; 0 checks none.
	Dimensions int
}

// InvalidRow is a row that failed a check of [ScanOptions.Deep] (or, for a
// whole part, of [ScanOptions.Expect]). It is not indexed: its chunk counts
// as missing (or its earlier row wins), so a resume embeds it again.
type InvalidRow struct {
	// Key is the row's key as read.
	Key Key `json:"key"`
	// Part is the store name of its part.
	Part string `json:"part"`
	// Row is its position in the part, from 0.
	Row int `json:"row"`
	// Reason says which check failed.
	Reason string `json:"reason"`
}

// deepCheck decodes every row of a part and checks, per row, that the text's
// sha256 is chunk_sha256, the model and vector length are the expected ones,
// the vector is finite and non-zero, every string is valid UTF-8, and the key
// is not repeated within the part. It returns one reason per row ("" when the
// row is sound), or an error wrapping errCorrupt when the part as a whole is
// not sound: it does not decode, its schema is not [RowSchema], its row count
// disagrees with the key columns, or its rows do not match its [DigestKey].
func deepCheck(r io.ReaderAt, size int64, pk *partKeys, want Expect) (bad []string, err error) {
	rec := &ioRecorder{r: r, size: size}
	defer rec.finish(&err)
	f, err := parquet.OpenFile(rec, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if !parquet.EqualNodes(f.Schema(), RowSchema()) {
		return nil, fmt.Errorf("%w: schema is not reembed's row schema", errCorrupt)
	}
	rows, err := rowsOf(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if len(rows) != len(pk.docIDs) {
		return nil, fmt.Errorf("%w: %d rows, key columns hold %d", errCorrupt, len(rows), len(pk.docIDs))
	}
	if sum, ok := f.Lookup(DigestKey); ok && sum != rowsDigest(rows) {
		return nil, fmt.Errorf("%w: rows do not match the part's digest %s (a byte changed since it was written)", errCorrupt, sum)
	}
	bad = make([]string, len(rows))
	seen := make(map[Key]int, len(rows))
	var sh hash.Hash = sha256.New()
	var sum [sha256.Size]byte
	for i := range rows {
		row := &rows[i]
		if row.DocID != pk.docIDs[i] || row.ChunkIndex != pk.index[i] {
			return nil, fmt.Errorf("%w: row %d reads as %s and as %s#%d", errCorrupt, i, row.Key(), pk.docIDs[i], pk.index[i])
		}
		sh.Reset()
		io.WriteString(sh, row.Text)
		sh.Sum(sum[:0])
		switch {
		case hex.EncodeToString(sum[:]) != row.ChunkSHA256:
			bad[i] = "text does not match chunk_sha256"
		case want.Model != "" && row.Model != want.Model:
			bad[i] = fmt.Sprintf("model %q, manifest has %q", row.Model, want.Model)
		case want.Dimensions > 0 && len(row.Embedding) != want.Dimensions:
			bad[i] = fmt.Sprintf("embedding has %d dimensions, manifest has %d", len(row.Embedding), want.Dimensions)
		case len(row.Embedding) == 0:
			bad[i] = "embedding is empty"
		default:
			if why := vectorProblem(row.Embedding); why != "" {
				bad[i] = "embedding " + why
			} else if col := invalidUTF8Column(row); col != "" {
				bad[i] = col + " is not valid UTF-8"
			}
		}
		if j, dup := seen[row.Key()]; dup {
			bad[i] = fmt.Sprintf("key repeated in the part (row %d)", j)
		} else {
			seen[row.Key()] = i
		}
	}
	return bad, nil
}

// errPartLength reports a part whose vectors cannot all have the expected
// length: its embedding column holds another number of values than rows ×
// dimensions (read from the footer, without reading the vectors).
var errPartLength = errors.New("vectors of another length than the manifest's")
