package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// pieceEnds returns the piece boundaries of text (without 0).
func pieceEnds(t *CL100K, text []byte) []int {
	ps, _ := t.AppendPieces(nil, text, 0, len(text), 0)
	ends := make([]int, len(ps))
	for i, p := range ps {
		ends[i] = p.End
	}
	return ends
}

// randomPieceText mixes the pre-tokenizer's special cases: white space runs
// (ASCII and not, with CR and LF), letters, digits, punctuation and
// contractions.
func randomPieceText(rng *rand.Rand, n int) []byte {
	parts := []string{" ", "  ", "\t", "\n", "\r\n", " \n ", "\u00a0", "\u3000", "a", "word", "ſ", "日本", "1", "1234", "½",
		".", "!?", "'", "'s", "'ll", "'re", "🙂", "\u0301", "<|endoftext|>"}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	return []byte(b.String())
}

// TestAppendPiecesMatchesEncode checks that the pieces' running token
// counts end at Encode's count, and that AppendTokenEnds and the pieces
// rebuild Encode's tokens' byte lengths, on the testdata files (their first
// 20 KB).
func TestAppendPiecesMatchesEncode(t *testing.T) {
	ours, _ := tokenizers(t)
	for _, row := range loadCounts(t) {
		text := readText(t, row.path)
		if len(text) > 20000 { // keep the test fast: a head, cut at a character
			text = []byte(strings.ToValidUTF8(string(text[:20000]), ""))
		}
		ps, end := ours.AppendPieces(nil, text, 0, len(text), 0)
		if end != len(text) {
			t.Fatalf("%s: scan ended at %d of %d", row.path, end, len(text))
		}
		var lens []int
		start := 0
		for _, p := range ps {
			prev := 0
			for _, e := range ours.AppendTokenEnds(nil, text[start:p.End]) {
				lens = append(lens, e-prev)
				prev = e
			}
			start = p.End
		}
		var want []int
		for _, tok := range ours.Encode(nil, text) {
			want = append(want, len(ours.Decode(nil, []int{tok})))
		}
		if n := len(ps); (n > 0 && ps[n-1].Tokens != len(want)) || !slices.Equal(lens, want) {
			t.Fatalf("%s: pieces give %d tokens, Encode %d (or their lengths differ)", row.path, len(lens), len(want))
		}
	}
}

// TestPrefixKeepsPieces checks, at every piece boundary of random texts,
// that PrefixKeepsPieces is true exactly where cutting the text there keeps
// the pieces before the cut.
func TestPrefixKeepsPieces(t *testing.T) {
	ours, _ := tokenizers(t)
	rng := rand.New(rand.NewPCG(1, 1))
	kept, changed := 0, 0
	for i := range 400 {
		text := randomPieceText(rng, 1+i/2)
		ends := pieceEnds(ours, text)
		for j, e := range ends {
			same := slices.Equal(pieceEnds(ours, text[:e]), ends[:j+1])
			if got := ours.PrefixKeepsPieces(text, e); got != same {
				t.Fatalf("PrefixKeepsPieces(%q, %d) = %v, but the prefix %s the pieces", text, e, got, map[bool]string{true: "keeps", false: "changes"}[same])
			}
			if same {
				kept++
			} else {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Errorf("no boundary where a cut changes the pieces: the test does not exercise the exception")
	}
	t.Logf("%d boundaries keep the pieces, %d do not", kept, changed)
}

// TestFinalPrefix checks that the pieces of a text that end at or before
// FinalPrefix are the same whatever follows the text.
func TestFinalPrefix(t *testing.T) {
	ours, _ := tokenizers(t)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 2000 {
		head := randomPieceText(rng, 1+i%60)
		p := FinalPrefix(head)
		var want []int
		for _, e := range pieceEnds(ours, head) {
			if e <= p {
				want = append(want, e)
			}
		}
		for range 3 {
			full := append(slices.Clone(head), randomPieceText(rng, 1+rng.IntN(20))...)
			var got []int
			for _, e := range pieceEnds(ours, full) {
				if e <= p {
					got = append(got, e)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("FinalPrefix(%q) = %d, but with %q after it the pieces before it are %v, not %v", head, p, full[len(head):], got, want)
			}
		}
	}
}
