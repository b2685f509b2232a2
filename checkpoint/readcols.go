package checkpoint

import (
	"errors"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// errNotColumnar says that a part's layout is not one readColumns decodes
// directly (a dictionary-encoded or v1-page vector column, another schema):
// ReadRows then reads it with parquet-go's row reader.
var errNotColumnar = errors.New("part layout not read column by column")

// readColumns reads every row of a part column by column, straight from the
// pages' decoded values: each string column of a page becomes one string
// that the rows slice, and the vectors of a row group one []float32 that the
// rows' embeddings slice. parquet-go's row reader instead builds a
// parquet.Value per vector element (24 bytes for a 4-byte float) and
// reassembles each row from them, which cost two thirds of a restore's CPU.
// It returns errNotColumnar, before or while reading, for a layout it does
// not decode; other errors mean the part does not decode.
func readColumns(f *parquet.File) ([]Row, error) {
	schema := f.Schema()
	if !parquet.EqualNodes(schema, RowSchema()) {
		return nil, errNotColumnar
	}
	col := func(path ...string) int {
		leaf, _ := schema.Lookup(path...)
		return leaf.ColumnIndex
	}
	emb, _ := schema.Lookup("embedding", "list", "element")
	unit := timestampUnit(schema)
	rows := make([]Row, f.NumRows())
	base := 0
	for _, rg := range f.RowGroups() {
		n := int(rg.NumRows())
		if base+n > len(rows) {
			return nil, fmt.Errorf("row groups hold more rows than the footer's %d", len(rows))
		}
		group := rows[base : base+n]
		base += n
		chunks := rg.ColumnChunks()
		for _, c := range stringColumns {
			i := 0
			err := eachStringPage(chunks[col(c.name)], func(s string) error {
				if i >= n {
					return errTooMany
				}
				*c.field(&group[i]) = s
				i++
				return nil
			})
			if err := columnErr(c.name, err, i, n); err != nil {
				return nil, err
			}
		}
		for _, c := range int32Columns {
			i := 0
			err := eachFixed(chunks[col(c.name)], (*encoding.Values).Int32, parquet.Value.Int32, func(v int32) {
				if i < n {
					*c.field(&group[i]) = v
				}
				i++
			})
			if err := columnErr(c.name, err, i, n); err != nil {
				return nil, err
			}
		}
		i := 0
		err := eachFixed(chunks[col(colEmbeddedAt)], (*encoding.Values).Int64, parquet.Value.Int64, func(v int64) {
			if i < n {
				group[i].EmbeddedAt = time.Unix(0, int64(time.Duration(v)*unit)).UTC()
			}
			i++
		})
		if err := columnErr(colEmbeddedAt, err, i, n); err != nil {
			return nil, err
		}
		if err := readVectors(chunks[emb.ColumnIndex], emb.MaxDefinitionLevel, f.Size()/4, group); err != nil {
			return nil, err
		}
	}
	if base != len(rows) {
		return nil, fmt.Errorf("row groups hold %d rows, the footer %d", base, len(rows))
	}
	return rows, nil
}

// stringColumns and int32Columns are the scalar columns readColumns sets,
// each with the Row field it fills.
var (
	stringColumns = []struct {
		name  string
		field func(*Row) *string
	}{
		{colDocID, func(r *Row) *string { return &r.DocID }},
		{colSHA256, func(r *Row) *string { return &r.ChunkSHA256 }},
		{colText, func(r *Row) *string { return &r.Text }},
		{colModel, func(r *Row) *string { return &r.Model }},
	}
	int32Columns = []struct {
		name  string
		field func(*Row) *int32
	}{
		{colChunkIndex, func(r *Row) *int32 { return &r.ChunkIndex }},
		{"tokens", func(r *Row) *int32 { return &r.Tokens }},
	}
)

// errTooMany says a column holds more values than its row group has rows.
var errTooMany = errors.New("more values than rows")

// columnErr names the column of a failed read, or one that held another
// number of values than its row group's rows.
func columnErr(name string, err error, got, want int) error {
	switch {
	case errors.Is(err, errNotColumnar):
		return err
	case err != nil:
		return fmt.Errorf("column %s: %w", name, err)
	case got != want:
		return fmt.Errorf("column %s: %d values for %d rows", name, got, want)
	}
	return nil
}

// eachStringPage calls fn for every value of a string column chunk: the
// values of a plain page share one string allocated for the page.
func eachStringPage(cc parquet.ColumnChunk, fn func(string) error) error {
	last := ""
	return eachPage(cc, func(p parquet.Page) error {
		if plain(p) {
			if data := p.Data(); data.Kind() == encoding.ByteArray {
				vals, offs := data.ByteArray()
				all := string(vals)
				for i := 0; i+1 < len(offs); i++ {
					if err := fn(all[offs[i]:offs[i+1]]); err != nil {
						return err
					}
				}
				return nil
			}
		}
		return eachValue(p, func(v parquet.Value) error {
			if string(v.ByteArray()) != last {
				last = string(v.ByteArray())
			}
			return fn(last)
		})
	})
}

// readVectors sets the embeddings of a row group's rows from its vector
// column: one []float32 for the group, sliced per row by the repetition
// levels (0 starts a row; a definition level of maxDef is an element). An
// empty vector is nil, as the row reader leaves it. Memory is reserved for
// the values the footer counts, at most limit (a footer is not trusted with
// more than the file could hold).
func readVectors(cc parquet.ColumnChunk, maxDef int, limit int64, rows []Row) error {
	all := make([]float32, 0, max(0, min(cc.NumValues(), limit)))
	starts := make([]int, 0, len(rows)+1)
	err := eachPage(cc, func(p parquet.Page) error {
		rep, def := p.RepetitionLevels(), p.DefinitionLevels()
		data := p.Data()
		if p.Dictionary() != nil || len(rep) != len(def) || data.Kind() != encoding.Float {
			return errNotColumnar
		}
		vals := data.Float()
		off, present := len(all), 0
		all = append(all, vals...)
		for j, r := range rep {
			if r == 0 {
				if len(starts) == len(rows) {
					return errTooMany
				}
				starts = append(starts, off+present)
			} else if len(starts) == 0 {
				return errors.New("a page starts inside a row no page began")
			}
			if int(def[j]) == maxDef {
				present++
			}
		}
		if present != len(vals) {
			return fmt.Errorf("%d elements for %d values", present, len(vals))
		}
		return nil
	})
	if err := columnErr("embedding", err, len(starts), len(rows)); err != nil {
		return err
	}
	starts = append(starts, len(all))
	for i := range rows {
		if starts[i] < starts[i+1] {
			rows[i].Embedding = all[starts[i]:starts[i+1]:starts[i+1]]
		}
	}
	return nil
}
