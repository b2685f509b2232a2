package corpus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSONL record longer than Options.StreamAbove is read in two passes
// instead of whole (streamRecord): the first checks the line is a JSON
// object as encoding/json does and finds its id and its text field (the
// last of each, as encoding/json keeps the last of duplicate keys); the
// second, each time the document is chunked, opens the file again at the
// line and decodes the text field's string in blocks. Both read the line
// after the text rule (ToValidUTF8), as the in-memory path does.

// errJSON reports a line that is not valid JSON.
var errJSON = errors.New("invalid JSON")

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// maxStreamedID caps the id field kept from a streamed record.
const maxStreamedID = 1 << 20

// jsonScanner reads one JSON text from br.
type jsonScanner struct {
	br      *bufio.Reader
	scratch []byte
}

func newJSONScanner(r io.Reader) *jsonScanner {
	return &jsonScanner{br: bufio.NewReaderSize(r, 64<<10)}
}

// peek returns the next byte without consuming it; ok is false at the end.
func (j *jsonScanner) peek() (byte, bool) {
	b, err := j.br.Peek(1)
	if err != nil {
		return 0, false
	}
	return b[0], true
}

// ws skips JSON white space.
func (j *jsonScanner) ws() {
	for {
		c, ok := j.peek()
		if !ok || (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			return
		}
		j.br.Discard(1)
	}
}

// expect consumes the byte c or fails.
func (j *jsonScanner) expect(c byte) error {
	if b, ok := j.peek(); !ok || b != c {
		return fmt.Errorf("%w: want %q", errJSON, c)
	}
	j.br.Discard(1)
	return nil
}

// str reads a string whose opening quote is consumed, passing its decoded
// bytes to emit (nil: discarded).
func (j *jsonScanner) str(emit func([]byte)) error {
	if j.scratch == nil {
		j.scratch = make([]byte, 32<<10)
	}
	s := &jsonString{br: j.br}
	for {
		n, err := s.Read(j.scratch)
		if n > 0 && emit != nil {
			emit(j.scratch[:n])
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// value reads any JSON value, discarding it.
func (j *jsonScanner) value(depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: exceeded max depth", errJSON)
	}
	c, ok := j.peek()
	if !ok {
		return fmt.Errorf("%w: unexpected end", errJSON)
	}
	switch {
	case c == '"':
		j.br.Discard(1)
		return j.str(nil)
	case c == '{' || c == '[':
		return j.container(c, depth)
	case c == '-' || c >= '0' && c <= '9':
		return j.number(nil)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if c == lit[0] {
			b, err := j.br.Peek(len(lit))
			if err != nil || string(b) != lit {
				return fmt.Errorf("%w: in literal", errJSON)
			}
			j.br.Discard(len(lit))
			return nil
		}
	}
	return fmt.Errorf("%w: invalid character %q looking for a value", errJSON, c)
}

// container reads an object or an array, discarding it.
func (j *jsonScanner) container(open byte, depth int) error {
	j.br.Discard(1)
	end := byte(']')
	if open == '{' {
		end = '}'
	}
	j.ws()
	if c, ok := j.peek(); ok && c == end {
		j.br.Discard(1)
		return nil
	}
	for {
		if open == '{' {
			if err := j.expect('"'); err != nil {
				return err
			}
			if err := j.str(nil); err != nil {
				return err
			}
			j.ws()
			if err := j.expect(':'); err != nil {
				return err
			}
			j.ws()
		}
		if err := j.value(depth + 1); err != nil {
			return err
		}
		j.ws()
		c, ok := j.peek()
		if !ok {
			return fmt.Errorf("%w: unexpected end", errJSON)
		}
		j.br.Discard(1)
		if c == end {
			return nil
		}
		if c != ',' {
			return fmt.Errorf("%w: invalid character %q after a value", errJSON, c)
		}
		j.ws()
	}
}

// number reads a number (the grammar of RFC 8259), appending its text to
// *keep when keep is not nil.
func (j *jsonScanner) number(keep *[]byte) error {
	take := func() byte {
		c, _ := j.br.ReadByte()
		if keep != nil {
			*keep = append(*keep, c)
		}
		return c
	}
	digits := func() int {
		n := 0
		for c, ok := j.peek(); ok && c >= '0' && c <= '9'; c, ok = j.peek() {
			take()
			n++
		}
		return n
	}
	if c, _ := j.peek(); c == '-' {
		take()
	}
	if c, ok := j.peek(); ok && c == '0' {
		take()
	} else if digits() == 0 {
		return fmt.Errorf("%w: in numeric literal", errJSON)
	}
	if c, ok := j.peek(); ok && c == '.' {
		take()
		if digits() == 0 {
			return fmt.Errorf("%w: after decimal point in numeric literal", errJSON)
		}
	}
	if c, ok := j.peek(); ok && (c == 'e' || c == 'E') {
		take()
		if c, ok := j.peek(); ok && (c == '+' || c == '-') {
			take()
		}
		if digits() == 0 {
			return fmt.Errorf("%w: in exponent of numeric literal", errJSON)
		}
	}
	return nil
}

// jsonString reads the decoded bytes of a JSON string whose opening quote
// is consumed, as encoding/json decodes it: escapes replaced, a surrogate
// escape that is not half of a valid pair read as U+FFFD. It returns io.EOF
// after the closing quote.
type jsonString struct {
	br     *bufio.Reader
	pend   [utf8.UTFMax]byte
	pi, np int
	done   bool
}

func (s *jsonString) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.pi < s.np {
			c := copy(p[n:], s.pend[s.pi:s.np])
			s.pi += c
			n += c
			continue
		}
		if s.done {
			break
		}
		if s.br.Buffered() == 0 {
			if _, err := s.br.Peek(1); err != nil {
				return n, fmt.Errorf("%w: unexpected end of string", errJSON)
			}
		}
		b, _ := s.br.Peek(s.br.Buffered())
		i := 0
		for i < len(b) && n+i < len(p) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		n += copy(p[n:], b[:i])
		s.br.Discard(i)
		if i == len(b) || n == len(p) {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			s.br.Discard(1)
			s.done = true
		case c == '\\':
			if err := s.escape(); err != nil {
				return n, err
			}
		default:
			return n, fmt.Errorf("%w: control character in string", errJSON)
		}
	}
	if n == 0 && s.done && s.pi >= s.np {
		return 0, io.EOF
	}
	return n, nil
}

// escape decodes the escape sequence at the reader into pend.
func (s *jsonString) escape() error {
	b, err := s.br.Peek(2)
	if err != nil {
		return fmt.Errorf("%w: unexpected end of string", errJSON)
	}
	s.pi, s.np = 0, 1
	switch b[1] {
	case '"', '\\', '/':
		s.pend[0] = b[1]
	case 'b':
		s.pend[0] = '\b'
	case 'f':
		s.pend[0] = '\f'
	case 'n':
		s.pend[0] = '\n'
	case 'r':
		s.pend[0] = '\r'
	case 't':
		s.pend[0] = '\t'
	case 'u':
		b, _ = s.br.Peek(12)
		r := hex4(b, 2)
		if r < 0 {
			return fmt.Errorf("%w: in \\u hexadecimal character escape", errJSON)
		}
		used := 6
		if utf16.IsSurrogate(r) {
			r2 := rune(-1)
			if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
				r2 = hex4(b, 8)
			}
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				r, used = d, 12
			} else {
				r = utf8.RuneError
			}
		}
		s.np = utf8.EncodeRune(s.pend[:], r)
		s.br.Discard(used)
		return nil
	default:
		return fmt.Errorf("%w: in string escape code", errJSON)
	}
	s.br.Discard(2)
	return nil
}

// hex4 returns the value of the 4 hex digits at b[at:], or -1.
func hex4(b []byte, at int) rune {
	if len(b) < at+4 {
		return -1
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
