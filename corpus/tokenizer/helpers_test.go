package tokenizer

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

// tokensDir is the project's copy of shared/testdata/tokens.
const tokensDir = "../../testdata/tokens"

// newerUnicodeFiles hold code points that are letters or numbers in Unicode
// 16.0 (the official tokenizer's tables) but not in Go 1.26's 15.0 tables.
var newerUnicodeFiles = map[string]bool{
	"tricky/newer-unicode-15-15.1.txt": true,
	"tricky/newer-unicode-16-17.txt":   true,
}

// refCount is one row of counts.tsv.
type refCount struct {
	path   string // relative to corpus/
	tokens int
	bytes  int
}

// loadCounts reads counts.tsv, the official tokenizer's counts.
func loadCounts(t testing.TB) []refCount {
	t.Helper()
	f, err := os.Open(filepath.Join(tokensDir, "counts.tsv"))
	if err != nil {
		t.Fatalf("opening counts.tsv: %v", err)
	}
	defer f.Close()
	var rows []refCount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 || fields[0] == "path" {
			continue
		}
		tokens, err1 := strconv.Atoi(fields[1])
		size, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad counts.tsv row %q", sc.Text())
		}
		rows = append(rows, refCount{fields[0], tokens, size})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading counts.tsv: %v", err)
	}
	if len(rows) != 154 {
		t.Fatalf("counts.tsv has %d rows, want 154", len(rows))
	}
	return rows
}

// readText reads a corpus file and applies the project's text rule.
func readText(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tokensDir, "corpus", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("reading corpus file: %v", err)
	}
	return toValidUTF8(b)
}

// toValidUTF8 replaces each maximal invalid subsequence of b by one U+FFFD,
// as corpus.ToValidUTF8 does (corpus imports this package, so the rule is
// repeated here for the tests).
func toValidUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		i += maximalSubpart(b[i:])
		out = append(out, "\uFFFD"...)
	}
	return out
}

// maximalSubpart returns the length (≥ 1) of the maximal subpart of an
// ill-formed sequence at the start of b (Unicode Table 3-7).
func maximalSubpart(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch c := b[0]; {
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
		if x := b[i]; (i == 1 && (x < lo || x > hi)) || (i > 1 && (x < 0x80 || x > 0xBF)) {
			return i
		}
	}
	return i
}

// goClass classifies r by Go's unicode tables, as pkoukk/tiktoken-go's regex
// engine (dlclark/regexp2) does for \p{L}, \p{N} and \s.
func goClass(r rune) byte {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.Is(unicode.N, r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// sameClassInGo reports whether every code point of s has the same class in
// Go's unicode tables as in ours, so the Reference must agree with us on s.
func sameClassInGo(s []byte) bool {
	for _, r := range string(s) {
		if r >= utf8.RuneSelf && goClass(r) != classOf(r) {
			return false
		}
	}
	return true
}

var (
	refTokensOnce sync.Once
	refTokens     map[string][]int
)

// referenceTokens returns the Reference's tokens of every testdata file,
// computed once: the Reference is slow, and two tests need them.
func referenceTokens(t testing.TB) map[string][]int {
	t.Helper()
	_, ref := tokenizers(t)
	rows := loadCounts(t)
	refTokensOnce.Do(func() {
		refTokens = make(map[string][]int, len(rows))
		for _, row := range rows {
			refTokens[row.path] = ref.Encode(nil, readText(t, row.path))
		}
	})
	return refTokens
}

var (
	testOnce sync.Once
	testOurs *CL100K
	testRef  *Reference
	testErr  error
)

// tokenizers returns one CL100K and one Reference shared by the tests.
func tokenizers(t testing.TB) (*CL100K, *Reference) {
	t.Helper()
	testOnce.Do(func() {
		testOurs, testErr = NewCL100K()
		if testErr == nil {
			testRef, testErr = NewReference()
		}
	})
	if testErr != nil {
		t.Fatal(testErr)
	}
	return testOurs, testRef
}
