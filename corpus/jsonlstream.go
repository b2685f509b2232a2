package corpus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// errIDTooLong skips a streamed record whose id is longer than maxStreamedID.
var errIDTooLong = fmt.Errorf("the id field of a record longer than the streaming threshold is longer than %d bytes", maxStreamedID)

// recordScan is what the first pass over a long JSONL line found.
type recordScan struct {
	empty    bool // the line is only white space
	textAt   int  // the member holding the text field (the last one), or -1
	textKind byte // that member's value: '"' a string, 'n' null, 0 another
	id       string
}

// scanRecord checks that r holds one JSON object (and white space) as
// encoding/json would, and finds its text and id fields.
func scanRecord(r io.Reader, textField, idField string) (recordScan, error) {
	rec := recordScan{textAt: -1}
	j := newJSONScanner(r)
	j.ws()
	c, ok := j.peek()
	if !ok {
		rec.empty = true
		return rec, nil
	}
	if c != '{' {
		if onlySpace(j.br) {
			rec.empty = true // bytes.TrimSpace's white space, as the in-memory path
			return rec, nil
		}
		return rec, fmt.Errorf("%w: not an object", errJSON)
	}
	j.br.Discard(1)
	j.ws()
	if c, ok := j.peek(); ok && c == '}' {
		j.br.Discard(1)
	} else if err := scanMembers(j, &rec, textField, idField); err != nil {
		return rec, err
	}
	j.ws()
	if c, ok := j.peek(); ok {
		return rec, fmt.Errorf("%w: invalid character %q after top-level value", errJSON, c)
	}
	return rec, nil
}

// scanMembers reads the members of an object whose opening brace is
// consumed, through its closing brace.
func scanMembers(j *jsonScanner, rec *recordScan, textField, idField string) error {
	maxKey := max(len(textField), len(idField)) + 1
	for i := 0; ; i++ {
		if err := j.expect('"'); err != nil {
			return err
		}
		var key []byte
		if err := j.str(func(b []byte) { key = append(key, b[:min(len(b), maxKey-len(key))]...) }); err != nil {
			return err
		}
		j.ws()
		if err := j.expect(':'); err != nil {
			return err
		}
		j.ws()
		c, _ := j.peek()
		var err error
		switch string(key) {
		case textField:
			rec.textAt, rec.textKind = i, 0
			if c == '"' || c == 'n' {
				rec.textKind = c
			}
			err = j.value(1)
		case idField:
			rec.id, err = scanID(j)
		default:
			err = j.value(1)
		}
		if err != nil {
			return err
		}
		j.ws()
		c, ok := j.peek()
		if !ok {
			return fmt.Errorf("%w: unexpected end", errJSON)
		}
		j.br.Discard(1)
		if c == '}' {
			return nil
		}
		if c != ',' {
			return fmt.Errorf("%w: invalid character %q after object key:value pair", errJSON, c)
		}
		j.ws()
	}
}

// scanID reads an id field's value as jsonID renders it: a string's text, a
// number's literal, "" for anything else.
func scanID(j *jsonScanner) (string, error) {
	c, _ := j.peek()
	var id []byte
	switch {
	case c == '"':
		j.br.Discard(1)
		err := j.str(func(b []byte) { id = append(id, b[:min(len(b), maxStreamedID+1-len(id))]...) })
		if err == nil && len(id) > maxStreamedID {
			return "", errIDTooLong
		}
		return string(id), err
	case c == '-' || c >= '0' && c <= '9':
		err := j.number(&id)
		return string(id), err
	}
	return "", j.value(1)
}

// onlySpace reports whether the rest of r is white space by
// bytes.TrimSpace's rule (Unicode white space).
func onlySpace(br *bufio.Reader) bool {
	for {
		r, _, err := br.ReadRune()
		if err != nil {
			return true
		}
		if r == utf8.RuneError || !unicode.IsSpace(r) {
			return false
		}
	}
}

// openRecordText reads the object in r up to member at, whose value must
// be a string, and returns a reader of that string's decoded bytes.
func openRecordText(r io.Reader, at int) (io.Reader, error) {
	j := newJSONScanner(r)
	j.ws()
	if err := j.expect('{'); err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		j.ws()
		if err := j.expect('"'); err != nil {
			return nil, err
		}
		if err := j.str(nil); err != nil {
			return nil, err
		}
		j.ws()
		if err := j.expect(':'); err != nil {
			return nil, err
		}
		j.ws()
		if i == at {
			if err := j.expect('"'); err != nil {
				return nil, err
			}
			return &jsonString{br: j.br}, nil
		}
		if err := j.value(1); err != nil {
			return nil, err
		}
		j.ws()
		if err := j.expect(','); err != nil {
			return nil, err
		}
	}
}

// validReader reads r after the text rule (ToValidUTF8), applied in blocks.
type validReader struct {
	s   *utf8Stream
	buf []byte
	off int
}

func newValidReader(r io.Reader) *validReader { return &validReader{s: newUTF8Stream(r)} }

func (v *validReader) Read(p []byte) (int, error) {
	for v.off == len(v.buf) {
		if v.s.done {
			if v.s.err != nil {
				return 0, v.s.err
			}
			return 0, io.EOF
		}
		v.buf, v.off = v.s.read(v.buf[:0]), 0
	}
	n := copy(p, v.buf[v.off:])
	v.off += n
	return n, nil
}

// lineReader reads br up to and including the next newline.
type lineReader struct {
	br   *bufio.Reader
	done bool
	n    int64 // bytes read
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			l.done = true
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, err
		}
	}
	b, _ := l.br.Peek(min(l.br.Buffered(), len(p)))
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b, l.done = b[:i+1], true
	}
	n := copy(p, b)
	l.br.Discard(n)
	l.n += int64(n)
	return n, nil
}

// readLine reads the next line of br, with its newline. With long, the line
// is longer than limit (limit ≥ 0) and raw holds only its first bytes: the
// rest is still in br.
func readLine(br *bufio.Reader, limit int64) (raw []byte, long bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		raw = append(raw, frag...)
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return raw, false, err
		}
		if limit >= 0 && int64(len(raw)) > limit {
			return raw, true, nil
		}
		if err != bufio.ErrBufferFull {
			return raw, false, err
		}
	}
}

// streamRecord reads a JSONL line longer than the streaming threshold
// (first holds its first bytes, br the rest; it starts at offset off of
// the file) and passes its document on as a streamed one. It returns the
// line's length.
func (s *Source) streamRecord(ref fileRef, br *bufio.Reader, first []byte, off int64, line int, out sink) (int64, error) {
	lr := &lineReader{br: br, done: bytes.HasSuffix(first, []byte("\n"))}
	vr := newValidReader(io.MultiReader(bytes.NewReader(first), lr))
	rec, err := scanRecord(vr, s.opts.textField(), s.opts.idField())
	if _, derr := io.Copy(io.Discard, lr); derr != nil && err == nil {
		err = derr
	}
	n := int64(len(first)) + lr.n
	where := displayPath(ref.root, ref.rel) + ":" + strconv.Itoa(line)
	switch {
	case err != nil && errors.Is(err, errJSON):
		return n, out.skip(Skip{Path: where, Reason: "not a JSON object: " + err.Error()})
	case errors.Is(err, errIDTooLong):
		return n, out.skip(Skip{Path: where, Reason: err.Error()})
	case err != nil:
		return n, fmt.Errorf("reading %q line %d: %w", displayPath(ref.root, ref.rel), line, err)
	case rec.empty:
		return n, nil
	case rec.textAt < 0 || rec.textKind == 0:
		return n, out.skip(Skip{Path: where, Reason: fmt.Sprintf("no string field %q", s.opts.textField())})
	}
	docID := recordID(ref.id(), rec.id, "L"+strconv.Itoa(line))
	if !s.opts.kept(docID) {
		return n, nil
	}
	if !s.opts.inSample(docID) {
		return n, out.unsampled(n)
	}
	invalid := vr.s.invalid
	if rec.textKind == 'n' { // null: encoding/json leaves the string empty
		return n, out.emit(Document{ID: docID, Text: []byte{}, Bytes: n, InvalidUTF8: invalid})
	}
	reopen := func() (io.Reader, func(), error) {
		f, err := ref.open()
		if err != nil {
			return nil, nil, fmt.Errorf("opening %q again: %w", displayPath(ref.root, ref.rel), err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("seeking %q to line %d: %w", displayPath(ref.root, ref.rel), line, err)
		}
		r, err := openRecordText(newValidReader(f), rec.textAt)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("reading %q line %d again: %w", displayPath(ref.root, ref.rel), line, err)
		}
		return r, func() { f.Close() }, nil
	}
	st := &docStream{reopen: reopen, read: true, bytes: n, invalid: invalid}
	return n, out.emit(Document{ID: docID, Bytes: n, InvalidUTF8: invalid, stream: st})
}
