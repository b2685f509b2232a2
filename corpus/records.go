package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// recordID names a record: "<file>#<id>" with the record's id field, or
// "<file>#<where>" (L12 for line 12, R3 for data row 3) without one.
func recordID(rel, id, where string) string {
	if id != "" {
		return rel + "#" + EscapeDocID(id) // rel is a file's id, already escaped: see EscapeDocID
	}
	return rel + "#" + where
}

// emitRecord applies the UTF-8 rule and the filters to one record's text.
// size is the record's bytes in the source, and invalid the invalid UTF-8
// sequences already replaced before text was extracted (a JSONL line's).
func (s *Source) emitRecord(rel, id, where string, text []byte, size int64, invalid int, out sink) error {
	docID := recordID(rel, id, where)
	if !s.opts.kept(docID) {
		return nil
	}
	if !s.opts.inSample(docID) {
		return out.unsampled(size)
	}
	valid, n := ToValidUTF8(text)
	return out.emit(Document{ID: docID, Text: valid, Bytes: size, InvalidUTF8: invalid + n})
}

// readJSONL reads one document per non-empty line: a JSON object whose text
// field is a string. A line that is not such an object is skipped and listed.
//
// When seekable (an uncompressed file), a line longer than
// Options.StreamAbove is read in two passes, its text streamed
// (streamRecord); otherwise a line is read whole.
func (s *Source) readJSONL(ctx context.Context, ref fileRef, r io.Reader, seekable bool, out sink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	textField, idField := s.opts.textField(), s.opts.idField()
	limit := int64(-1)
	if seekable {
		limit = s.opts.streamAbove()
	}
	var off int64 // the line's offset in the file
	for line := 1; ; line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, long, err := readLine(br, limit)
		if long {
			n, err := s.streamRecord(ref, br, raw, off, line, out)
			if err != nil {
				return err
			}
			off += n
			continue
		}
		off += int64(len(raw))
		if len(bytes.TrimSpace(raw)) > 0 {
			valid, invalid := ToValidUTF8(raw)
			var rec map[string]json.RawMessage
			if jerr := json.Unmarshal(valid, &rec); jerr != nil {
				if serr := out.skip(Skip{Path: displayPath(ref.root, ref.rel) + ":" + strconv.Itoa(line), Reason: "not a JSON object: " + jerr.Error()}); serr != nil {
					return serr
				}
			} else {
				var text string
				if terr := json.Unmarshal(rec[textField], &text); rec[textField] == nil || terr != nil {
					if serr := out.skip(Skip{Path: displayPath(ref.root, ref.rel) + ":" + strconv.Itoa(line), Reason: fmt.Sprintf("no string field %q", textField)}); serr != nil {
						return serr
					}
				} else {
					// text, decoded from valid UTF-8, is valid: emitRecord
					// adds no invalid sequences to the line's.
					if eerr := s.emitRecord(ref.id(), jsonID(rec[idField]), "L"+strconv.Itoa(line), []byte(text), int64(len(raw)), invalid, out); eerr != nil {
						return eerr
					}
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %q line %d: %w", displayPath(ref.root, ref.rel), line, err)
		}
	}
}

// jsonID renders a JSON id field (string or number) as text, or "" when absent.
func jsonID(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// readCSV reads one document per data row of a CSV (or TSV) file with a header
// row naming the text and id columns. A record whose quote never closes is
// skipped with its line, and the rows after it are read (csvRecords).
func (s *Source) readCSV(ctx context.Context, ref fileRef, r io.Reader, tsv bool, out sink) (*Skip, error) {
	comma := byte(',')
	if tsv {
		comma = '\t'
	}
	recs, parser := newCSVRecords(r, comma), newCSVParser(comma)
	header, err := s.csvHeader(recs, parser)
	if err != nil {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "no CSV header row: " + errReason(err)}, nil
	}
	textCol := slices.Index(header, s.opts.textField())
	if textCol < 0 && len(header) > 0 { // a BOM before the first column name
		header[0] = strings.TrimPrefix(header[0], "\uFEFF")
		textCol = slices.Index(header, s.opts.textField())
	}
	if textCol < 0 {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: fmt.Sprintf("no column %q (columns: %s)", s.opts.textField(), strings.Join(header, ", "))}, nil
	}
	idCol := slices.Index(header, s.opts.idField())
	for row := 1; ; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		raw, line, malformed, err := recs.next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", displayPath(ref.root, ref.rel), err)
		}
		where := displayPath(ref.root, ref.rel) + ":" + strconv.Itoa(line)
		if malformed {
			row++ // counted, so that fixing the row does not rename the rows after it
			if serr := out.skip(Skip{Path: where, Reason: "malformed CSV row: a quoted field opened on this line never closes (line skipped)"}); serr != nil {
				return nil, serr
			}
			continue
		}
		rec, err := parser.parse(raw)
		if err == io.EOF { // a blank line
			continue
		}
		rowID := "R" + strconv.Itoa(row)
		row++
		if err != nil {
			if serr := out.skip(Skip{Path: where, Reason: "malformed CSV row: " + errReason(err)}); serr != nil {
				return nil, serr
			}
			continue
		}
		id := ""
		if idCol >= 0 && idCol < len(rec) {
			id, _ = ToValidUTF8String(rec[idCol])
		}
		if textCol >= len(rec) {
			if serr := out.skip(Skip{Path: where, Reason: fmt.Sprintf("row has no column %q", s.opts.textField())}); serr != nil {
				return nil, serr
			}
			continue
		}
		if err := s.emitRecord(ref.id(), id, rowID, []byte(rec[textCol]), int64(len(rec[textCol])), 0, out); err != nil {
			return nil, err
		}
	}
}

// csvHeader reads the header row, skipping blank lines before it.
func (s *Source) csvHeader(recs *csvRecords, parser *csvParser) ([]string, error) {
	for {
		raw, _, malformed, err := recs.next()
		if err != nil {
			return nil, err
		}
		if malformed {
			return nil, errors.New("a quoted column name never closes")
		}
		h, err := parser.parse(raw)
		if err == io.EOF {
			continue
		}
		return slices.Clone(h), err
	}
}

// ToValidUTF8String is [ToValidUTF8] for strings.
func ToValidUTF8String(s string) (string, int) {
	b, n := ToValidUTF8([]byte(s))
	if n == 0 {
		return s, 0
	}
	return string(b), n
}

// readParquet reads one document per row of a Parquet file, from the text
// column (a string) and the optional id column.
func (s *Source) readParquet(ctx context.Context, ref fileRef, f io.ReaderAt, size int64, out sink) (*Skip, error) {
	pf, err := parquet.OpenFile(f, size)
	if err != nil {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "not a readable Parquet file: " + err.Error()}, nil
	}
	textLeaf, ok := pf.Schema().Lookup(s.opts.textField())
	if !ok {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: fmt.Sprintf("no column %q", s.opts.textField())}, nil
	}
	// Only byte arrays hold text (Value.ByteArray panics on other kinds).
	if k := textLeaf.Node.Type().Kind(); k != parquet.ByteArray && k != parquet.FixedLenByteArray {
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: fmt.Sprintf("column %q holds %s values, not strings", s.opts.textField(), k)}, nil
	}
	idLeaf, hasID := pf.Schema().Lookup(s.opts.idField())
	buf := make([]parquet.Row, 128)
	row := 0
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			if err := ctx.Err(); err != nil {
				rows.Close()
				return nil, err
			}
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				row++
				var text []byte
				var id string
				haveText := false
				for _, v := range r {
					switch {
					case v.Column() == textLeaf.ColumnIndex && !v.IsNull():
						text, haveText = v.ByteArray(), true
					case hasID && v.Column() == idLeaf.ColumnIndex && !v.IsNull():
						id, _ = ToValidUTF8String(v.String())
					}
				}
				if !haveText {
					if serr := out.skip(Skip{Path: displayPath(ref.root, ref.rel) + ":row " + strconv.Itoa(row), Reason: fmt.Sprintf("null column %q", s.opts.textField())}); serr != nil {
						rows.Close()
						return nil, serr
					}
					continue
				}
				if eerr := s.emitRecord(ref.id(), id, "R"+strconv.Itoa(row), text, int64(len(text)), 0, out); eerr != nil {
					rows.Close()
					return nil, eerr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot read Parquet rows: " + err.Error()}, nil
			}
		}
		rows.Close()
	}
	return nil, nil
}
