package tokenizer

import "unicode/utf8"

// Piece is one pre-token (one match of the pre-tokenization regex) of a
// text, as [PieceCounter.AppendPieces] reports it. Its tokens are the
// byte-pair merge of its bytes alone: a text's tokens are the concatenation
// of its pieces' tokens.
type Piece struct {
	// End is the byte offset just past the piece in the scanned text.
	End int
	// Tokens is the running token count at End: the count given to
	// AppendPieces plus the tokens of every piece scanned up to this one.
	Tokens int
}

// PieceCounter is a Tokenizer that reports its pre-tokens, so that a caller
// can tell where the encoding of a whole text and the encodings of its parts
// agree: the tokens of text[a:b] are the tokens of the pieces between a and b
// when a and b are both piece boundaries of text (see the chunker in package
// corpus, which relies on it). CL100K is one.
type PieceCounter interface {
	Tokenizer
	// AppendPieces scans the pieces of text that start at from or after it
	// and before limit, appends one Piece per piece and returns the
	// extended slice and the end of the last piece scanned (≥ limit, or
	// len(text)). from must be 0 or the end of a piece of text. tokens is
	// added to every Piece.Tokens. The pieces are those of the whole text:
	// the scan looks past limit where the pre-tokenizer does.
	AppendPieces(dst []Piece, text []byte, from, limit, tokens int) ([]Piece, int)
	// AppendTokenEnds appends, for each token of the single piece p, the
	// byte offset in p just past it, and returns the extended slice. The
	// last offset appended is len(p).
	AppendTokenEnds(dst []int, p []byte) []int
	// PrefixKeepsPieces reports, for a piece boundary e of text, whether the
	// pieces of text[:e] are the pieces of text before e. That is not always
	// so: in "a  1" the pieces are "a", " ", " ", "1", and "a  " has "a",
	// "  " (a white space run before a non-space keeps its last character
	// apart, but not at the end of the text).
	PrefixKeepsPieces(text []byte, e int) bool
}

var _ PieceCounter = (*CL100K)(nil)

// AppendPieces implements [PieceCounter]. Its loop is Count's with a store
// per piece (kept separate so that Count stays as fast as it is).
func (t *CL100K) AppendPieces(dst []Piece, text []byte, from, limit, tokens int) ([]Piece, int) {
	if from >= len(text) {
		return dst, len(text)
	}
	hot := t.hot.Get().(*hotCache)
	defer t.hot.Put(hot)
	n := tokens
	i := from
	for i < len(text) && i < limit {
		j := nextPiece(text, i)
		p := text[i:j]
		i = j
		switch {
		case len(p) == 1: // every byte is a token
			n++
		case len(p) == 2: // one token, or two single bytes
			n += 2
			if t.ranks.pair[uint16(p[0])|uint16(p[1])<<8] != noRank {
				n--
			}
		case len(p) > inlineMax:
			n += t.countPiece(p)
		default:
			k0, k1 := packKey(p)
			h := keyHash(k0, k1, len(p))
			e := &hot[h>>(64-hotBits)]
			if e.k0 == k0 && e.k1 == k1 && int(e.n) == len(p) {
				n += int(e.count)
				break
			}
			c := 1
			r := t.ranks.getPacked(k0, k1, len(p), h)
			if r == noRank {
				c = t.countPiece(p)
			}
			*e = hotEntry{k0: k0, k1: k1, tok: r, count: uint8(c), n: uint8(len(p))}
			n += c
		}
		dst = append(dst, Piece{End: j, Tokens: n})
	}
	return dst, i
}

// AppendTokenEnds implements [PieceCounter].
func (t *CL100K) AppendTokenEnds(dst []int, p []byte) []int {
	var scratch [smallPiece]int
	off := 0
	for _, tok := range t.encodePiece(scratch[:0], p) {
		off += int(t.tokOff[tok+1] - t.tokOff[tok])
		dst = append(dst, off)
	}
	return dst
}

// PrefixKeepsPieces implements [PieceCounter]. A piece reads past its end
// only along a white space run (and one character after it); cutting the
// text at a boundary e changes the pieces before e only when e ends a run
// whose last two characters are white space other than CR and LF and the
// character at e is not white space: the whole text splits that tail in two
// ("\s+(?!\S)" and then "\s+"), the prefix keeps it whole.
func (t *CL100K) PrefixKeepsPieces(text []byte, e int) bool {
	if e <= 0 || e >= len(text) {
		return true
	}
	if c, _ := decodeClass(text, e); c == clsSpace {
		return true
	}
	r1, n1 := utf8.DecodeLastRune(text[:e])
	r2, _ := utf8.DecodeLastRune(text[:e-n1])
	return !tailSpace(r1) || !tailSpace(r2)
}

// tailSpace reports whether r is White_Space other than CR and LF.
func tailSpace(r rune) bool {
	return r != '\r' && r != '\n' && r >= 0 && r <= utf8.MaxRune && classOf(r) == clsSpace
}

// WholePieces adapts any Tokenizer to [PieceCounter] by treating the whole
// text as one piece: correct for every tokenizer, but a caller then finds no
// piece boundary inside a text and re-encodes every part of it.
type WholePieces struct {
	Tokenizer
}

// AppendPieces reports text[from:] as one piece.
func (w WholePieces) AppendPieces(dst []Piece, text []byte, from, limit, tokens int) ([]Piece, int) {
	if from >= len(text) {
		return dst, len(text)
	}
	return append(dst, Piece{End: len(text), Tokens: tokens + w.Count(text[from:])}), len(text)
}

// AppendTokenEnds encodes p and decodes each token to find its length.
func (w WholePieces) AppendTokenEnds(dst []int, p []byte) []int {
	var buf []byte
	one := make([]int, 1)
	off := 0
	for _, tok := range w.Encode(nil, p) {
		one[0] = tok
		buf = w.Decode(buf[:0], one)
		off += len(buf)
		dst = append(dst, off)
	}
	return dst
}

// PrefixKeepsPieces is true at the only boundaries WholePieces reports:
// the start and the end of the text.
func (w WholePieces) PrefixKeepsPieces(text []byte, e int) bool {
	return e <= 0 || e >= len(text)
}

// AsPieceCounter returns tok itself when it reports pieces, else tok wrapped
// in [WholePieces].
func AsPieceCounter(tok Tokenizer) PieceCounter {
	if pc, ok := tok.(PieceCounter); ok {
		return pc
	}
	return WholePieces{tok}
}

// FinalPrefix returns an offset p of text such that the pieces of text that
// end at or before p are pieces of every text that starts with text, however
// it goes on: the start of text's last code point that is not White_Space
// (0 when there is none). A piece is decided by its own bytes and at most
// the white space run and the one character after it, and a character that
// is not white space ends any run. A reader of a long text in parts
// tokenizes up to there and carries the rest over.
func FinalPrefix(text []byte) int {
	for e := len(text); e > 0; {
		r, n := utf8.DecodeLastRune(text[:e])
		e -= n
		if r == utf8.RuneError && n <= 1 {
			return e // invalid UTF-8 reads as U+FFFD, not White_Space
		}
		if classOf(r) != clsSpace {
			return e
		}
	}
	return 0
}
