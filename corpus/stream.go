package corpus

import (
	"io"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus/tokenizer"
)

// streamBlock is how many bytes a utf8Stream reads at a time (a variable
// for the tests, which make it small).
var streamBlock = 64 << 10

// utf8Stream reads a document in blocks and applies the text rule
// ([ToValidUTF8]) to it block by block, with the same result as on the
// whole: an incomplete sequence at the end of a block is carried over to the
// next (a maximal invalid subpart never reaches past a lead byte, so what
// comes before it is decided).
type utf8Stream struct {
	r       io.Reader
	raw     []byte // read buffer: the carried bytes, then the block
	carry   int
	done    bool  // r is exhausted and everything was returned
	bytes   int64 // source bytes read
	invalid int   // replacements made
	err     error // the first read error other than io.EOF
}

func newUTF8Stream(r io.Reader) *utf8Stream {
	return &utf8Stream{r: r, raw: make([]byte, utf8.UTFMax+streamBlock)}
}

// read appends the next valid bytes to dst (possibly none, while a
// sequence is still incomplete) and returns the extended slice.
func (s *utf8Stream) read(dst []byte) []byte {
	if s.done {
		return dst
	}
	n, err := io.ReadFull(s.r, s.raw[s.carry:])
	s.bytes += int64(n)
	b := s.raw[:s.carry+n]
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		s.err = err
	}
	if err != nil { // the end, or an error: nothing more to wait for
		s.done = true
		v, k := ToValidUTF8(b)
		s.invalid += k
		return append(dst, v...)
	}
	cut := len(b) - incompleteTail(b)
	v, k := ToValidUTF8(b[:cut])
	s.invalid += k
	dst = append(dst, v...)
	s.carry = copy(s.raw, b[cut:])
	return dst
}

// incompleteTail returns the length of the valid but incomplete UTF-8
// sequence that ends b, or 0.
func incompleteTail(b []byte) int {
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		i := len(b) - k
		c := b[i]
		if c < 0xC2 || c > 0xF4 {
			if c < 0x80 || c >= 0xC0 {
				return 0 // ASCII or an invalid lead: nothing pending
			}
			continue // a continuation byte: look further back
		}
		need := 2
		if c >= 0xE0 {
			need = 3
		}
		if c >= 0xF0 {
			need = 4
		}
		if k < need && maximalSubpart(b[i:]) == k {
			return k
		}
		return 0
	}
	return 0
}

// ChunkReader is [Chunker.Chunk] for a document read from r, applying the
// text rule on the way, in memory that does not grow with the document: it
// holds the text from the current window's start to a block (64 KB) past
// it, plus the longest piece it meets (a run of white space or of letters,
// which the tokenizer cannot split). It cuts the same chunks with the same
// billed tokens as Chunk on the whole text. It also returns the invalid
// UTF-8 sequences replaced and the bytes read.
func (c *Chunker) ChunkReader(r io.Reader, fn ChunkFunc) (docTokens int, split bool, invalid int, bytes int64, err error) {
	cur, _ := c.pool.Get().(*cursor)
	if cur == nil {
		cur = &cursor{}
	}
	defer func() {
		cur.reset(nil, nil)
		c.pool.Put(cur)
	}()
	return c.chunkStream(cur, r, fn)
}

// chunkStream is ChunkReader with the given cursor.
func (c *Chunker) chunkStream(cur *cursor, r io.Reader, fn ChunkFunc) (docTokens int, split bool, invalid int, bytes int64, err error) {
	src := newUTF8Stream(r)
	cur.reset(tokenizer.AsPieceCounter(c.Tokenizer), nil)
	cur.src, cur.eof, cur.safe = src, false, 0
	cur.refill()
	if cur.eof {
		return 0, false, src.invalid, src.bytes, src.err
	}
	size, overlap := c.Size, c.Overlap
	if size == 0 {
		size, overlap = c.MaxInput, 0
	}
	n, err := c.windows(cur, size, overlap, fn)
	if err == nil {
		err = src.err
	}
	return n, c.Size == 0 && n > c.MaxInput, src.invalid, src.bytes, err
}
