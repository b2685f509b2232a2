package corpus

import (
	"sort"

	"github.com/reembed/reembed/corpus/tokenizer"
)

// segment is how far (bytes) a cursor scans ahead of what a window needs, at
// least: the pieces of one segment are scanned in one call.
const segment = 16 << 10

// cursor walks the pieces of one document's text for the chunker: it maps
// token indices of the whole document's encoding to byte offsets, and counts
// the tokens of a window as the window's own encoding. It keeps the pieces
// from the current window's start (release) to the end of the scan.
type cursor struct {
	pc tokenizer.PieceCounter
	// text holds the document's bytes from offset base on: all of them, or
	// (streaming, src != nil) those from the start of the kept pieces to
	// what has been read. Every offset below is the document's.
	text []byte
	base int
	src  *utf8Stream // nil: text is the whole document
	held int         // the most bytes text has held, streaming (for the tests)
	// safe is where the pieces of the text read so far stop being final
	// (more text could change those after it); the document's end once src
	// is exhausted.
	safe int
	// pieces[lo:] are the pieces kept; the one before pieces[0] (or the
	// start of the text) ends at baseEnd with baseTok tokens.
	pieces           []tokenizer.Piece
	lo               int
	baseEnd, baseTok int
	scanned          int  // the end of the last piece scanned
	eof              bool // scanned == len(text)
	// ends caches the token ends of the piece that starts at endsAt.
	ends   []int
	endsAt int
	one    []tokenizer.Piece // scratch for billedTokens
}

// reset starts a cursor on text (nil releases the previous text).
func (c *cursor) reset(pc tokenizer.PieceCounter, text []byte) {
	c.pc, c.text, c.base, c.src, c.safe = pc, text, 0, nil, len(text)
	c.pieces, c.lo, c.baseEnd, c.baseTok = c.pieces[:0], 0, 0, 0
	c.scanned, c.eof = 0, len(text) == 0
	c.ends, c.endsAt = c.ends[:0], -1
}

// slice returns the document's bytes [from, to), which must be held.
func (c *cursor) slice(from, to int) []byte { return c.text[from-c.base : to-c.base] }

// byteAt returns the document's byte at off, which must be held.
func (c *cursor) byteAt(off int) byte { return c.text[off-c.base] }

// end is the offset just past the bytes held: the document's end at eof.
func (c *cursor) end() int { return c.base + len(c.text) }

// scannedTokens is the token count at the end of the scan.
func (c *cursor) scannedTokens() int {
	if len(c.pieces) > 0 {
		return c.pieces[len(c.pieces)-1].Tokens
	}
	return c.baseTok
}

// total is the tokens scanned so far: the document's count once at its end.
func (c *cursor) total() int { return c.scannedTokens() }

// atEnd reports whether token index k is the end of the document.
func (c *cursor) atEnd(k int) bool { return c.eof && k >= c.scannedTokens() }

// ensure scans until token k is scanned (its piece known) or the text ends.
func (c *cursor) ensure(k int) {
	for !c.eof && c.scannedTokens() < k {
		if c.lo > 0 { // drop released pieces before appending
			c.baseEnd, c.baseTok = c.pieces[c.lo-1].End, c.pieces[c.lo-1].Tokens
			c.pieces = c.pieces[:copy(c.pieces, c.pieces[c.lo:])]
			c.lo = 0
		}
		if c.scanned >= c.safe {
			c.refill()
			continue
		}
		// About 4 bytes per token ahead, at least a segment.
		limit := min(c.scanned+max(segment, 4*(k-c.scannedTokens())), c.safe)
		n0 := len(c.pieces)
		var next int
		c.pieces, next = c.pc.AppendPieces(c.pieces, c.text, c.scanned-c.base, limit-c.base, c.scannedTokens())
		for i := n0; c.base != 0 && i < len(c.pieces); i++ {
			c.pieces[i].End += c.base
		}
		next += c.base
		if next > c.safe { // pieces past safe may change with more text
			for len(c.pieces) > n0 && c.pieces[len(c.pieces)-1].End > c.safe {
				c.pieces = c.pieces[:len(c.pieces)-1]
			}
			if len(c.pieces) == n0 {
				c.refill() // no final piece yet: read more
				continue
			}
			next = c.pieces[len(c.pieces)-1].End
		}
		c.scanned = next
		c.eof = c.src == nil || c.src.done
		c.eof = c.eof && c.scanned >= c.end()
	}
}

// refill reads more of a streamed document, first dropping the bytes before
// the kept pieces, and moves safe.
func (c *cursor) refill() {
	if c.src == nil || c.src.done {
		c.safe = c.end()
		c.eof = c.scanned >= c.end()
		return
	}
	keep := c.baseEnd
	if c.lo < len(c.pieces) {
		keep, _ = c.pieceStart(c.lo)
	}
	c.text = c.text[:copy(c.text, c.text[keep-c.base:])]
	c.base = keep
	c.endsAt = -1
	c.text = c.src.read(c.text)
	c.held = max(c.held, cap(c.text))
	c.safe = c.end()
	if !c.src.done {
		c.safe = c.base + tokenizer.FinalPrefix(c.text)
	}
	if c.src.done && c.scanned >= c.end() {
		c.eof = true
	}
}

// pieceStart returns the start offset and token count of pieces[i].
func (c *cursor) pieceStart(i int) (int, int) {
	if i > 0 { // released pieces stay in the slice until ensure compacts it
		return c.pieces[i-1].End, c.pieces[i-1].Tokens
	}
	return c.baseEnd, c.baseTok
}

// locate returns the byte offset where token k starts (len(text) at the
// end) and whether it is a piece boundary. k must be scanned and not before
// the kept pieces.
func (c *cursor) locate(k int) (int, bool) {
	kept := c.pieces[c.lo:]
	i := c.lo + sort.Search(len(kept), func(i int) bool { return kept[i].Tokens >= k })
	off, tok := c.pieceStart(i)
	if k == tok {
		return off, true
	}
	if c.pieces[i].Tokens == k {
		return c.pieces[i].End, true
	}
	if c.endsAt != off {
		c.ends = c.pc.AppendTokenEnds(c.ends[:0], c.slice(off, c.pieces[i].End))
		c.endsAt = off
	}
	return off + c.ends[k-tok-1], false
}

// forward returns the first token index at or after k (at most the end) that
// starts a character, its offset and whether it is a piece boundary.
func (c *cursor) forward(k int) (int, int, bool) {
	c.ensure(k)
	for {
		if c.atEnd(k) {
			return c.scannedTokens(), c.end(), true
		}
		off, onPiece := c.locate(k)
		if onPiece || c.byteAt(off)&0xC0 != 0x80 {
			return k, off, onPiece
		}
		k++
		c.ensure(k)
	}
}

// backward returns the last token index at or before k and above floor that
// starts a character (floor itself when none does), with its offset and
// whether it is a piece boundary.
func (c *cursor) backward(k, floor int) (int, int, bool) {
	for ; k > floor; k-- {
		if off, onPiece := c.locate(k); onPiece || c.byteAt(off)&0xC0 != 0x80 {
			return k, off, onPiece
		}
	}
	off, onPiece := c.locate(floor)
	return floor, off, onPiece
}

// release drops the pieces before the one holding token k: no window will
// start before k.
func (c *cursor) release(k int) {
	kept := c.pieces[c.lo:]
	c.lo += sort.Search(len(kept), func(i int) bool { return kept[i].Tokens > k })
}

// boundaryTokens returns the token count at byte offset off and whether off
// is a piece boundary of the text. off must not be before the kept pieces.
func (c *cursor) boundaryTokens(off int) (int, bool) {
	kept := c.pieces[c.lo:]
	i := c.lo + sort.Search(len(kept), func(i int) bool { return kept[i].End >= off })
	if start, tok := c.pieceStart(i); start == off {
		return tok, true
	}
	if i < len(c.pieces) && c.pieces[i].End == off {
		return c.pieces[i].Tokens, true
	}
	return 0, false
}

// billedTokens returns the tokens of the window text[s:e] encoded on its own,
// where the window runs from token start (at byte s) to token end (at e), and
// sOn, eOn say whether s and e are piece boundaries of the whole text.
//
// When both are, and the text's pieces before e are those of text[:e]
// (PieceCounter.PrefixKeepsPieces: not so where e cuts a white space run's
// tail, which the whole text splits in two), the window's pieces are the
// text's pieces between s and e: a piece is decided by its own bytes and at
// most the white space run and the one character after it, all inside the
// window. Its tokens are then end-start. Otherwise only the edges are
// encoded again:
//   - from s, the window's own pieces are scanned until one ends on a piece
//     boundary r of the text; from r on, the window's pieces are those of
//     text[r:e] (a piece depends only on what follows its start);
//   - at the end, the pieces of text[r:e] are the text's up to b, the start
//     of the piece before the one holding (or ending at) e: the pieces
//     before b are decided by characters before e (a piece reads past its
//     end only along a white space run, and the pieces of one run that a cut
//     at e can change are its last two), so only text[b:e] is encoded again.
//
// FuzzBilledTokens and TestBilledTokensMatchesRecount compare this with
// counting every window's text.
func (c *cursor) billedTokens(start, s int, sOn bool, end, e int, eOn bool) int {
	// The held text starts on a piece boundary, so the question is the
	// same for it as for the whole document.
	eOn = eOn && c.pc.PrefixKeepsPieces(c.text, e-c.base)
	if sOn && eOn {
		return end - start
	}
	r, rTok, acc := s, start, 0
	if !sOn {
		w := c.slice(s, e)
		for i := 0; ; {
			c.one, i = c.pc.AppendPieces(c.one[:0], w, i, i+1, 0)
			acc += c.one[0].Tokens
			if i >= len(w) {
				return acc
			}
			if tok, ok := c.boundaryTokens(s + i); ok {
				r, rTok = s+i, tok
				break
			}
		}
	}
	if eOn {
		return acc + end - rTok
	}
	// b: the start of the piece before the one holding e (or ending at e).
	kept := c.pieces[c.lo:]
	m := c.lo + sort.Search(len(kept), func(i int) bool { return kept[i].End >= e })
	b, bTok := r, rTok
	if m > c.lo {
		if pb, pbTok := c.pieceStart(m - 1); pb > r {
			b, bTok = pb, pbTok
		}
	}
	return acc + bTok - rTok + c.pc.Count(c.slice(b, e))
}
