package corpus

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus/tokenizer"
)

// tokenBoundaries returns the byte offset where each token of text's own
// encoding starts (and len(text) last), found by decoding token by token:
// independent of the cursor.
func tokenBoundaries(tok tokenizer.Tokenizer, text []byte) []int {
	offs := []int{0}
	var buf []byte
	for _, id := range tok.Encode(nil, text) {
		buf = tok.Decode(buf[:0], []int{id})
		offs = append(offs, offs[len(offs)-1]+len(buf))
	}
	return offs
}

// checkBilled compares cursor.billedTokens with counting the window's text
// for windows between token boundaries of text that start characters: every
// pair when there are few, else pairs drawn by rng (near each other, as
// chunk windows are, and anywhere). It returns the windows checked and how
// many took the fast path (both ends on piece boundaries).
func checkBilled(t *testing.T, pc tokenizer.PieceCounter, text []byte, rng *rand.Rand, pairs int) (checked, fast int) {
	t.Helper()
	offs := tokenBoundaries(pc, text)
	var ks []int // token indices that start a character
	for k, off := range offs {
		if off == len(text) || utf8.RuneStart(text[off]) {
			ks = append(ks, k)
		}
	}
	whole, _ := pc.AppendPieces(nil, text, 0, len(text), 0)
	onPiece := map[int]bool{0: true}
	for _, p := range whole {
		onPiece[p.End] = true
	}
	if n := whole[len(whole)-1].Tokens; n != len(offs)-1 {
		t.Fatalf("AppendPieces counts %d tokens, Encode %d", n, len(offs)-1)
	}
	var cur cursor
	cur.reset(pc, text)
	cur.ensure(len(offs))
	check := func(a, b int) {
		s, e := offs[a], offs[b]
		got := cur.billedTokens(a, s, onPiece[s], b, e, onPiece[e])
		if want := pc.Count(text[s:e]); got != want {
			t.Fatalf("window tokens [%d, %d) bytes [%d, %d) %q: billedTokens %d, counting its text %d", a, b, s, e, text[s:e], got, want)
		}
		checked++
		if onPiece[s] && onPiece[e] {
			fast++
		}
	}
	if len(ks) <= 40 {
		for i, a := range ks {
			for _, b := range ks[i+1:] {
				check(a, b)
			}
		}
		return checked, fast
	}
	for range pairs {
		i := rng.IntN(len(ks) - 1)
		j := i + 1 + rng.IntN(min(len(ks)-i-1, 40))
		if rng.IntN(4) == 0 {
			j = i + 1 + rng.IntN(len(ks)-i-1)
		}
		check(ks[i], ks[j])
	}
	return checked, fast
}

// randomText builds text from the pieces the pre-tokenizer treats specially:
// runs of spaces, tabs, CR and LF (ASCII and not), letters of several scripts,
// digits, punctuation, apostrophes and contractions, emoji and combining
// marks, so that window ends fall inside white space runs, numbers and
// multi-token words.
func randomText(rng *rand.Rand, n int) []byte {
	parts := []string{
		" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2028", "\v\f",
		"a", "word", "Token", "ſ", "über", "日本語", "한국어", "Ελληνικά", "Привет", "שלום",
		"1", "12", "1234567", "٣٤٥", "½", "Ⅻ",
		".", ",", "!?", "...", "'", "'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "'x",
		"(", ")", "{}", "<|endoftext|>", "--", "==", "\"",
		"🙂", "👩‍👩‍👧‍👦", "𝕏", "\u0301", "e\u0301", "\ufeff", "\ufffd",
	}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	return []byte(b.String())
}

func defaultPieceCounter(t testing.TB) tokenizer.PieceCounter {
	t.Helper()
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tokenizer.AsPieceCounter(tok)
}

// TestBilledTokensMatchesRecount is the differential test of the chunker's
// billing: on every file of testdata/tokens (the official tokenizer's test
// set: prose, code, many scripts, invalid UTF-8 made valid) and on random
// text, a window's billed tokens equal the count of its text encoded on its
// own, whether or not its ends are piece boundaries.
func TestBilledTokensMatchesRecount(t *testing.T) {
	pc := defaultPieceCounter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var checked, fast int
	err := filepath.WalkDir(filepath.Join("..", "testdata", "tokens", "corpus"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		text, _ := ToValidUTF8(raw)
		if len(text) == 0 {
			return nil
		}
		c, f := checkBilled(t, pc, text, rng, 300)
		checked, fast = checked+c, fast+f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		c, f := checkBilled(t, pc, randomText(rng, 1+i*3), rng, 200)
		checked, fast = checked+c, fast+f
	}
	t.Logf("%d windows checked, %d on piece boundaries at both ends", checked, fast)
	if fast == 0 || fast == checked {
		t.Errorf("%d of %d windows on piece boundaries: the test must exercise both paths", fast, checked)
	}
}

// TestBilledTokensWholePieces checks the billing with a tokenizer that
// reports no pieces (WholePieces): every window is then encoded again.
func TestBilledTokensWholePieces(t *testing.T) {
	pc := tokenizer.WholePieces{Tokenizer: defaultPieceCounter(t)}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 50 {
		checkBilled(t, pc, randomText(rng, 1+i*5), rng, 100)
	}
}

// FuzzBilledTokens compares the billing with counting each window's text on
// arbitrary text (made valid UTF-8 by the project's rule).
//
//	go test ./corpus -run '^$' -fuzz FuzzBilledTokens -parallel 1
func FuzzBilledTokens(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		f.Add(randomText(rng, 5+i*10), uint64(i))
	}
	f.Add([]byte("x   y"), uint64(0))
	f.Add([]byte("a\n   xyzzy"), uint64(0))
	f.Add([]byte("it's  'll\r\n\r\n  12345 日本語"), uint64(0))
	pc := defaultPieceCounter(f)
	f.Fuzz(func(t *testing.T, raw []byte, seed uint64) {
		text, _ := ToValidUTF8(raw)
		if len(text) == 0 {
			return
		}
		checkBilled(t, pc, text, rand.New(rand.NewPCG(seed, 7)), 200)
	})
}
