package corpus

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
)

// MaxCSVRecordBytes bounds one CSV record: a quoted field may span lines, but
// a quote still open after this many bytes (or at the end of the file) is
// taken as unterminated.
const MaxCSVRecordBytes = 16 << 20

// csvRecords splits a CSV (or TSV) stream into records, line-aware, so that
// one broken record does not swallow the rest of the file: encoding/csv, given
// a quote that never closes, reads to the end of the file (or to the next
// stray quote) and merges every row in between into one field.
//
// A record ends at a newline outside a quoted field, with the quoting rules
// of encoding/csv with LazyQuotes (a field that starts with '"' is quoted; in
// it '""' is a quote, and '"' closes it only before the separator or the end
// of the line). When a quote is still open at the end of the file or after
// [MaxCSVRecordBytes], or a field that spans lines holds a stray quote (the
// sign of an unclosed quote that ran into a later row's quotes), the record's
// first line is reported malformed and the lines after it are read again as
// records of their own. A stray quote within one line is text, as before.
type csvRecords struct {
	br    *bufio.Reader
	comma byte
	line  int // number of the last line read from br
	// pending are lines to read again (after a malformed record), in order.
	pending []csvLine
	err     error  // the reader's error, once it has one
	scratch []byte // the last line read from br, reused
}

type csvLine struct {
	n    int
	text []byte
}

func newCSVRecords(r io.Reader, comma byte) *csvRecords {
	return &csvRecords{br: bufio.NewReaderSize(r, 64<<10), comma: comma}
}

// readLine returns the next line (with its newline, if any). A line read
// from br is valid until the next call.
func (c *csvRecords) readLine() (csvLine, bool, error) {
	if len(c.pending) > 0 {
		l := c.pending[0]
		c.pending = c.pending[1:]
		return l, true, nil
	}
	if c.err != nil {
		return csvLine{}, false, c.err
	}
	c.scratch = c.scratch[:0]
	for {
		b, err := c.br.ReadSlice('\n')
		c.scratch = append(c.scratch, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			c.err = err
		}
		break
	}
	if len(c.scratch) == 0 {
		return csvLine{}, false, c.err
	}
	c.line++
	return csvLine{n: c.line, text: c.scratch}, true, nil
}

// next returns the raw bytes of the next record and the number of its first
// line. malformed reports a record whose quote never closes (only its first
// line is consumed). At the end of the input it returns io.EOF; other errors
// are the reader's.
func (c *csvRecords) next() (rec []byte, line int, malformed bool, err error) {
	var lines []csvLine
	quoted, bare := false, false
	size := 0
	for {
		l, ok, err := c.readLine()
		if !ok {
			if err != io.EOF {
				return nil, 0, false, err
			}
			if len(lines) == 0 {
				return nil, 0, false, io.EOF
			}
			break // EOF inside a quoted field
		}
		lines = append(lines, l)
		size += len(l.text)
		var b bool
		quoted, b = scanCSVQuotes(l.text, quoted, c.comma)
		bare = bare || b
		if !quoted && (len(lines) == 1 || !bare) {
			return joinLines(lines), lines[0].n, false, nil
		}
		if !quoted {
			break // a field over several lines with a stray quote: an unclosed quote met another
		}
		if size > MaxCSVRecordBytes {
			break
		}
		// The record goes on: keep this line, which the next read reuses.
		lines[len(lines)-1].text = bytes.Clone(l.text)
	}
	c.pending = append(lines[1:len(lines):len(lines)], c.pending...)
	return lines[0].text, lines[0].n, true, nil
}

func joinLines(lines []csvLine) []byte {
	if len(lines) == 1 {
		return lines[0].text
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l.text)
	}
	return b.Bytes()
}

// scanCSVQuotes reports whether a quoted field is still open at the end of
// line, given whether one was open at its start, and whether the line holds a
// bare quote (one LazyQuotes takes as text).
func scanCSVQuotes(line []byte, quoted bool, comma byte) (open, bare bool) {
	fieldStart := !quoted
	for i := 0; i < len(line); i++ {
		c := line[i]
		if quoted {
			if c != '"' {
				continue
			}
			rest := line[i+1:]
			switch {
			case len(rest) > 0 && rest[0] == '"':
				i++ // an escaped quote
			case len(rest) == 0 || rest[0] == comma || string(rest) == "\n" || string(rest) == "\r\n":
				quoted = false
			default:
				bare = true // a bare quote inside the field
			}
			continue
		}
		switch {
		case c == comma:
			fieldStart = true
		case c == '"' && fieldStart:
			quoted, fieldStart = true, false
		case c == '"':
			bare, fieldStart = true, false
		default:
			fieldStart = false
		}
	}
	return quoted, bare
}

// csvParser parses records split by csvRecords into fields with one
// encoding/csv Reader (LazyQuotes) fed one record at a time: a Reader per
// record would allocate its buffer for every row.
type csvParser struct {
	feed recordFeed
	cr   *csv.Reader
}

func newCSVParser(comma byte) *csvParser {
	p := &csvParser{}
	p.cr = csv.NewReader(&p.feed)
	p.cr.FieldsPerRecord = -1
	p.cr.LazyQuotes = true
	p.cr.ReuseRecord = true
	p.cr.Comma = rune(comma)
	return p
}

// parse returns the fields of one record (valid until the next call). A
// blank line gives io.EOF.
func (p *csvParser) parse(rec []byte) ([]string, error) {
	p.feed.b = rec
	return p.cr.Read()
}

// recordFeed is an io.Reader over the current record; at its end it reports
// io.EOF, and reads again once given the next record (bufio.Reader and
// csv.Reader keep no end-of-file state).
type recordFeed struct{ b []byte }

func (f *recordFeed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}
