package tokenizer

import "unicode/utf8"

// Code point classes as stored in classStage2 (see unicode16.go).
const (
	clsOther  = 0 // none of the below
	clsLetter = 1 // General_Category=Letter, \p{L}
	clsNumber = 2 // General_Category=Number, \p{N}
	clsSpace  = 3 // White_Space, \s
)

// classOf returns the class of r by the Unicode 16.0 tables. r must be in
// 0..0x10FFFF.
func classOf(r rune) byte {
	return classStage2[int(classStage1[r>>classShift])<<classShift|int(r&(1<<classShift-1))]
}

// decodeClass returns the class and the byte length of the code point that
// starts s[i]. Block 0 of classStage2 is the ASCII block, so an ASCII byte
// indexes it directly. Invalid UTF-8 reads as U+FFFD, one byte at a time,
// which never happens on the valid input this package is given.
func decodeClass(s []byte, i int) (byte, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return classStage2[b], 1
	}
	return decodeClassSlow(s, i)
}

// decodeClassSlow is decodeClass for a non-ASCII lead byte, kept out of line
// so that decodeClass inlines.
func decodeClassSlow(s []byte, i int) (byte, int) {
	r, n := utf8.DecodeRune(s[i:])
	return classOf(r), n
}

// nextPiece returns the end of the pre-token that starts at s[i], i < len(s).
// It is a hand-written equivalent of cl100k_base's pre-tokenization regex as
// the official tokenizer (Rust fancy-regex, Unicode classes) runs it:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Alternatives are tried in order (leftmost-first), and the matches tile the
// text: every code point starts a match of some alternative.
func nextPiece(s []byte, i int) int {
	// The ASCII cases of decodeClass are written out: it does not inline.
	b := s[i]
	c0, j := classStage2[b&0x7F], i+1
	if b >= utf8.RuneSelf {
		var n int
		c0, n = decodeClassSlow(s, i)
		j = i + n
	}

	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if b == '\'' {
		if e := contraction(s, j); e > 0 {
			return e
		}
	}
	switch c0 {
	case clsLetter: // \p{L}+ (the optional first class excludes letters)
		return letterRun(s, j)
	case clsNumber: // \p{N}{1,3}
		for k := 1; k < 3 && j < len(s); k++ {
			c, n := decodeClass(s, j)
			if c != clsNumber {
				break
			}
			j += n
		}
		return j
	}
	// c0 is other or space. [^\r\n\p{L}\p{N}]?\p{L}+ with the optional
	// code point present.
	if b != '\r' && b != '\n' && j < len(s) {
		if b1 := s[j]; b1 < utf8.RuneSelf {
			if classStage2[b1] == clsLetter {
				return letterRun(s, j+1)
			}
		} else if c1, n1 := decodeClassSlow(s, j); c1 == clsLetter {
			return letterRun(s, j+n1)
		}
	}
	if c0 == clsOther { // [^\s\p{L}\p{N}]+[\r\n]* without the space
		return punctRun(s, j)
	}
	// c0 is White_Space. " ?[^\s\p{L}\p{N}]+[\r\n]*" with the space.
	if b == ' ' && j < len(s) {
		if c1, n1 := decodeClass(s, j); c1 == clsOther {
			return punctRun(s, j+n1)
		}
	}
	// The whitespace run s[i:j], the start of its last code point, and the
	// last CR or LF in it.
	j, last, lastNL := i, i, -1
	for j < len(s) {
		c, n := decodeClass(s, j)
		if c != clsSpace {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			lastNL = j
		}
		last = j
		j += n
	}
	// \s*[\r\n]+: \s* backtracks to the last CR or LF of the run, which
	// [\r\n]+ takes alone (any CR or LF after it would be later still).
	if lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S): the whole run at the end of the text, else the run less its
	// last code point when that leaves one or more.
	if j == len(s) {
		return j
	}
	if last > i {
		return last
	}
	return j // \s+
}

// contraction returns the end of 's 't 're 've 'm 'll 'd matched
// case-insensitively at s[j:] (j just past the apostrophe), or 0. Simple case
// folding maps U+017F LATIN SMALL LETTER LONG S to s as well (unicode16.go
// lists the folds); no other non-ASCII code point folds to these letters.
func contraction(s []byte, j int) int {
	if j >= len(s) {
		return 0
	}
	// b|0x20 lowers an ASCII letter; only 'X' and 'x' give 'x'.
	switch s[j] | 0x20 {
	case 's', 't', 'm', 'd':
		return j + 1
	case 'r', 'v':
		if j+1 < len(s) && s[j+1]|0x20 == 'e' {
			return j + 2
		}
	case 'l':
		if j+1 < len(s) && s[j+1]|0x20 == 'l' {
			return j + 2
		}
	}
	if s[j] == 0xC5 && j+1 < len(s) && s[j+1] == 0xBF { // U+017F ſ
		return j + 2
	}
	return 0
}

// letterRun returns the end of the run of letters that starts at s[j].
func letterRun(s []byte, j int) int {
	for j < len(s) {
		if b := s[j]; b < utf8.RuneSelf {
			if classStage2[b] != clsLetter {
				break
			}
			j++
			continue
		}
		c, n := decodeClassSlow(s, j)
		if c != clsLetter {
			break
		}
		j += n
	}
	return j
}

// punctRun returns the end of [^\s\p{L}\p{N}]*[\r\n]* starting at s[j].
func punctRun(s []byte, j int) int {
	for j < len(s) {
		if b := s[j]; b < utf8.RuneSelf {
			if classStage2[b] != clsOther {
				break
			}
			j++
			continue
		}
		c, n := decodeClassSlow(s, j)
		if c != clsOther {
			break
		}
		j += n
	}
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}
