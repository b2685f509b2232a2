package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// variedRows returns rows that stress a column reader: strings empty,
// multi-byte and long, vectors of every length from empty to dims, repeated
// and distinct documents, negative and large numbers.
func variedRows(r *rand.Rand, n, dims int) []Row {
	words := []string{"", "a", "naïve", "日本語のテキスト", strings.Repeat("long ", 300), "tab\tnew\nline", "\x00nul"}
	rows := make([]Row, n)
	for i := range rows {
		doc := fmt.Sprintf("docs/%03d.md", i/3)
		if r.IntN(5) == 0 {
			doc = words[r.IntN(len(words))]
		}
		var text strings.Builder
		for range r.IntN(6) {
			text.WriteString(words[r.IntN(len(words))])
		}
		var vec []float32
		if k := r.IntN(dims + 1); k > 0 {
			vec = make([]float32, k)
			for j := range vec {
				vec[j] = r.Float32()*2 - 1
			}
		}
		rows[i] = Row{DocID: doc, ChunkIndex: int32(r.IntN(1 << 20)), ChunkSHA256: shaHex(text.String()), Text: text.String(),
			Tokens: int32(r.Int32() - 1<<30), Model: words[r.IntN(3)], Embedding: vec,
			EmbeddedAt: time.UnixMilli(r.Int64N(1 << 42)).UTC()}
	}
	return rows
}

// rowReaderRows reads a part with parquet-go's row reader: what ReadRows
// returned before it read columns, the reference of the tests below.
func rowReaderRows(t *testing.T, b []byte) []Row {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	pr := parquet.NewGenericReader[Row](f)
	defer pr.Close()
	rows := make([]Row, f.NumRows())
	n, err := pr.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) || n != len(rows) {
		t.Fatalf("row reader: %d of %d rows, %v", n, len(rows), err)
	}
	for i := range rows {
		rows[i].EmbeddedAt = rows[i].EmbeddedAt.UTC()
	}
	return rows
}

// TestReadRowsColumnsMatchRowReader: ReadRows, which reads a part column by
// column, returns exactly what parquet-go's row reader returns (an empty
// vector may be nil in one and empty in the other), for parts of reembed's
// writer and of writers laid out otherwise: many small pages, several row
// groups, v1 data pages (a vector may span pages), dictionary-encoded
// strings. All are read column by column: the test fails if one falls back.
func TestReadRowsColumnsMatchRowReader(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	layouts := []struct {
		name     string
		opts     []parquet.WriterOption
		columnar bool // read column by column, without falling back
	}{
		{"reembed's writer", nil, true},
		{"small pages", []parquet.WriterOption{parquet.PageBufferSize(512)}, true},
		{"row groups of 7", []parquet.WriterOption{parquet.MaxRowsPerRowGroup(7)}, true},
		{"v1 pages", []parquet.WriterOption{parquet.DataPageVersion(1), parquet.PageBufferSize(300)}, true},
		{"dictionary strings", []parquet.WriterOption{parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.RLEDictionary)}, true},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 40, 300} {
				rows := variedRows(r, n, 64)
				var buf bytes.Buffer
				if l.opts == nil {
					must(t, writeRows(&buf, rows))
				} else {
					pw := parquet.NewGenericWriter[Row](&buf, l.opts...)
					if _, err := pw.Write(rows); err != nil {
						t.Fatal(err)
					}
					must(t, pw.Close())
				}
				b := buf.Bytes()
				got, err := ReadRows(bytes.NewReader(b), int64(len(b)))
				must(t, err)
				if want := rowReaderRows(t, b); !reflect.DeepEqual(emptyVectorsNil(got), emptyVectorsNil(want)) {
					t.Fatalf("%d rows: ReadRows differs from the row reader: %s", n, firstDiff(got, want))
				}
				if !reflect.DeepEqual(got, rows) {
					t.Fatalf("%d rows: ReadRows differs from the rows written", n)
				}
				f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
				must(t, err)
				if _, err := readColumns(f); errors.Is(err, errNotColumnar) == l.columnar {
					t.Errorf("%d rows: read column by column: %v, want %v", n, !errors.Is(err, errNotColumnar), l.columnar)
				}
			}
		})
	}
}

// firstDiff describes the first row where a and b differ.
func firstDiff(a, b []Row) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d rows and %d", len(a), len(b))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			return fmt.Sprintf("row %d: %+v\nand %+v", i, a[i], b[i])
		}
	}
	return "no row differs"
}

// emptyVectorsNil returns rows with empty vectors made nil.
func emptyVectorsNil(rows []Row) []Row {
	for i := range rows {
		if len(rows[i].Embedding) == 0 {
			rows[i].Embedding = nil
		}
	}
	return rows
}

// widerRow is a part schema with one more column: ReadRows reads it with
// parquet-go's row reader, projecting the columns of Row.
type widerRow struct {
	Row
	Extra string `parquet:"extra"`
}

// TestReadRowsOtherSchema: a part of another schema falls back to the row
// reader and still reads the columns it shares with Row.
func TestReadRowsOtherSchema(t *testing.T) {
	t.Parallel()
	rows := variedRows(rand.New(rand.NewPCG(3, 5)), 30, 16)
	wide := make([]widerRow, len(rows))
	for i := range rows {
		wide[i] = widerRow{Row: rows[i], Extra: "x"}
	}
	var buf bytes.Buffer
	pw := parquet.NewGenericWriter[widerRow](&buf)
	if _, err := pw.Write(wide); err != nil {
		t.Fatal(err)
	}
	must(t, pw.Close())
	b := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	if _, err := readColumns(f); !errors.Is(err, errNotColumnar) {
		t.Fatalf("readColumns on another schema: %v, want errNotColumnar", err)
	}
	got, err := ReadRows(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	if !reflect.DeepEqual(emptyVectorsNil(got), rows) {
		t.Fatalf("ReadRows of a wider part: %s", firstDiff(got, rows))
	}
}
