package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Row is one embedded chunk, one row of a part. Its Parquet schema is the stable
// contract of DESIGN §8, read by DuckDB, pandas and Spark:
//
//	doc_id       BYTE_ARRAY (STRING)                      required
//	chunk_index  INT32                                    required
//	chunk_sha256 BYTE_ARRAY (STRING), 64 lower-case hex   required
//	text         BYTE_ARRAY (STRING)                      required
//	tokens       INT32, billed tokens of the chunk        required
//	model        BYTE_ARRAY (STRING)                      required
//	embedding    LIST<FLOAT> (3-level list)               required, elements required
//	embedded_at  INT64 TIMESTAMP(MILLIS, isAdjustedToUTC) required
//
// EmbeddedAt is stored with millisecond precision in UTC; a read-back Row holds
// it truncated to the millisecond, in [time.UTC].
type Row struct {
	DocID       string    `parquet:"doc_id"`
	ChunkIndex  int32     `parquet:"chunk_index"`
	ChunkSHA256 string    `parquet:"chunk_sha256"`
	Text        string    `parquet:"text"`
	Tokens      int32     `parquet:"tokens"`
	Model       string    `parquet:"model"`
	Embedding   []float32 `parquet:"embedding,list"`
	EmbeddedAt  time.Time `parquet:"embedded_at,timestamp(millisecond:utc)"`
}

// Key is a chunk's identity: the document and the chunk's position in it.
type Key struct {
	// DocID is the document's identity (path relative to the corpus root, or its id field).
	DocID string `json:"doc_id"`
	// ChunkIndex is the chunk's 0-based position in the document.
	ChunkIndex int32 `json:"chunk_index"`
}

// String formats the key as doc_id#chunk_index, for messages.
func (k Key) String() string { return fmt.Sprintf("%s#%d", k.DocID, k.ChunkIndex) }

// Key returns the row's identity.
func (r *Row) Key() Key { return Key{DocID: r.DocID, ChunkIndex: r.ChunkIndex} }

// Column names of the key columns, read on resume.
const (
	colDocID      = "doc_id"
	colChunkIndex = "chunk_index"
	colSHA256     = "chunk_sha256"
	colEmbeddedAt = "embedded_at"
)

// RowSchema returns the Parquet schema of a part, the one [Row] maps to.
func RowSchema() *parquet.Schema { return parquet.SchemaOf(Row{}) }

// writeRows encodes rows as one Parquet file on w (a single row group, zstd at
// its fastest level) and closes the Parquet writer, which writes the footer.
// It does not close w.
func writeRows(w io.Writer, rows []Row) error {
	return writeRowsCodec(w, rows, newCodec())
}

// newCodec returns the parts' compression codec. A codec pools its encoders:
// reuse one per Writer (a fresh one costs ~15 MB of allocations per part).
func newCodec() compress.Codec { return &zstd.Codec{Level: zstd.SpeedFastest} }

func writeRowsCodec(w io.Writer, rows []Row, codec compress.Codec) error {
	pw := parquet.NewGenericWriter[Row](w,
		parquet.Compression(codec),
		parquet.CreatedBy("reembed", "", ""),
		// Min/max of a vector element or of a text are meaningless and cost
		// a pass over 1.5M floats per part.
		parquet.SkipPageBounds("embedding", "list", "element"),
		parquet.SkipPageBounds("text"),
		parquet.DataPageStatistics(false), // page headers; the footer's column index keeps the key columns' bounds
	)
	if _, err := pw.Write(rows); err != nil {
		return fmt.Errorf("writing parquet rows: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("writing parquet footer: %w", err)
	}
	return nil
}

// ReadRows reads every row of one part, all columns. It is the slow, complete
// read (verify --deep, tests, restores); resume reads only the key columns.
func ReadRows(r io.ReaderAt, size int64) ([]Row, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, fmt.Errorf("opening parquet file: %w", err)
	}
	pr := parquet.NewGenericReader[Row](f)
	defer pr.Close()
	rows := make([]Row, f.NumRows())
	n, err := pr.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading parquet rows: %w", err)
	}
	if int64(n) != f.NumRows() {
		return nil, fmt.Errorf("reading parquet rows: read %d of %d", n, f.NumRows())
	}
	for i := range rows {
		rows[i].EmbeddedAt = rows[i].EmbeddedAt.UTC()
	}
	return rows, nil
}
