package corpus

import (
	"unicode/utf8"
)

// replacement is U+FFFD encoded as UTF-8.
const replacement = "\uFFFD"

// ToValidUTF8 applies reembed's one text rule: b is decoded as UTF-8 and each
// maximal invalid subsequence (Unicode's "maximal subpart", as Python's
// errors='replace' and the WHATWG decoder do) becomes one U+FFFD. A leading
// BOM is kept. It returns b itself when b is already valid, and the number of
// replacements made.
func ToValidUTF8(b []byte) ([]byte, int) {
	if utf8.Valid(b) {
		return b, 0
	}
	out := make([]byte, 0, len(b)+16)
	n := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		// Invalid: skip the maximal subpart, the longest prefix of a
		// well-formed sequence, which is at least one byte.
		i += maximalSubpart(b[i:])
		out = append(out, replacement...)
		n++
	}
	return out, n
}

// maximalSubpart returns the length (≥ 1) of the maximal subpart of an
// ill-formed sequence at the start of b, per Unicode Table 3-7.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		x := b[i]
		if i == 1 {
			if x < lo || x > hi {
				return i
			}
		} else if x < 0x80 || x > 0xBF {
			return i
		}
	}
	return i
}
