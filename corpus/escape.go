package corpus

import (
	"strings"
	"unicode/utf8"
)

// EscapeDocID makes a document id valid UTF-8, reversibly, so that every
// string a checkpoint stores is UTF-8 (Parquet STRING columns must be; DuckDB
// refuses a part otherwise). Every '%' becomes "%25", and every byte of an
// invalid UTF-8 sequence becomes '%' and two upper-case hex digits; all other
// characters are kept. An id that is valid UTF-8 without '%' is unchanged.
// [UnescapeDocID] returns the original bytes. File names on Linux may hold any
// bytes but '/' and NUL: "caf\xe9.txt" (Latin-1) becomes "caf%E9.txt", and
// "100%.txt" becomes "100%25.txt".
func EscapeDocID(id string) string {
	if utf8.ValidString(id) && !strings.Contains(id, "%") {
		return id
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 8)
	for i := 0; i < len(id); {
		r, size := utf8.DecodeRuneInString(id[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteByte('%')
			b.WriteByte(hexDigits[id[i]>>4])
			b.WriteByte(hexDigits[id[i]&15])
		case r == '%':
			b.WriteString("%25")
		default:
			b.WriteString(id[i : i+size])
		}
		i += size
	}
	return b.String()
}

// UnescapeDocID reverses [EscapeDocID]: each "%XX" (hex, either case) becomes
// the byte XX. A '%' not followed by two hex digits is kept as is (an id
// EscapeDocID did not make).
func UnescapeDocID(id string) string {
	if !strings.Contains(id, "%") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		if id[i] == '%' && i+2 < len(id) && isHex(id[i+1]) && isHex(id[i+2]) {
			b.WriteByte(unhexByte(id[i+1])<<4 | unhexByte(id[i+2]))
			i += 2
			continue
		}
		b.WriteByte(id[i])
	}
	return b.String()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhexByte(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
