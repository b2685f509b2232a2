package tokenizer

import (
	"math"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100kPattern is cl100k_base's pre-tokenization regex, as
// pkoukk/tiktoken-go compiles it with dlclark/regexp2.
const cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// benchTexts returns the real-text part of the testdata (go/ and licenses/,
// 713 KB), one document per file, and its total size.
func benchTexts(b *testing.B) ([][]byte, int64) {
	var docs [][]byte
	var size int64
	for _, row := range loadCounts(b) {
		if strings.HasPrefix(row.path, "tricky/") {
			continue
		}
		text := readText(b, row.path)
		docs = append(docs, text)
		size += int64(len(text))
	}
	return docs, size
}

// reportTokens adds a tokens/s metric for tokens per b.Loop iteration.
func reportTokens(b *testing.B, tokens int) {
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkScanner measures pre-tokenization alone: our scanner against the
// regexp2 regex pkoukk/tiktoken-go runs.
func BenchmarkScanner(b *testing.B) {
	docs, size := benchTexts(b)
	b.Run("tiktoken-go", func(b *testing.B) {
		re := regexp2.MustCompile(cl100kPattern, regexp2.None)
		strs := make([]string, len(docs))
		for i, d := range docs {
			strs[i] = string(d)
		}
		b.SetBytes(size)
		for b.Loop() {
			for _, s := range strs {
				m, _ := re.FindStringMatch(s)
				for m != nil {
					m, _ = re.FindNextMatch(m)
				}
			}
		}
	})
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(size)
		pieces := 0
		for b.Loop() {
			pieces = 0
			for _, d := range docs {
				for i := 0; i < len(d); pieces++ {
					i = nextPiece(d, i)
				}
			}
		}
		b.ReportMetric(float64(pieces)*float64(b.N)/b.Elapsed().Seconds(), "pieces/s")
	})
}

// BenchmarkBPE measures the merge step alone, without the cache, on the
// pieces of the bench text that are not single tokens.
func BenchmarkBPE(b *testing.B) {
	ours, _ := tokenizers(b)
	docs, _ := benchTexts(b)
	var pieces [][]byte
	var size int64
	tokens := 0
	for _, d := range docs {
		for i := 0; i < len(d); {
			j := nextPiece(d, i)
			if ours.ranks.get(d[i:j]) == noRank {
				pieces = append(pieces, d[i:j])
				size += int64(j - i)
				tokens += len(ours.bpe(nil, d[i:j]))
			}
			i = j
		}
	}
	b.Run("tiktoken-go", func(b *testing.B) {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(cl100kFile)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			for _, p := range pieces {
				pkoukkBytePairEncode(p, ranks)
			}
		}
		reportTokens(b, tokens)
	})
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]int, 0, 1024)
		for b.Loop() {
			for _, p := range pieces {
				buf = ours.bpe(buf[:0], p)
			}
		}
		reportTokens(b, tokens)
	})
}

// BenchmarkCount measures the whole counter, one Count per document.
func BenchmarkCount(b *testing.B) {
	ours, ref := tokenizers(b)
	docs, size := benchTexts(b)
	tokens := 0
	for _, d := range docs {
		tokens += ours.Count(d)
	}
	for _, tc := range []struct {
		name string
		tok  Tokenizer
	}{{"tiktoken-go", ref}, {"ours", ours}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				for _, d := range docs {
					tc.tok.Count(d)
				}
			}
			reportTokens(b, tokens)
		})
	}
}

// pkoukkBytePairEncode is github.com/pkoukk/tiktoken-go v0.1.8's
// bytePairEncode (bpe.go, MIT licence), unexported there, copied as the
// baseline of BenchmarkBPE.
func pkoukkBytePairEncode(piece []byte, ranks map[string]int) []int {
	if len(piece) == 1 {
		return []int{ranks[string(piece)]}
	}
	parts := make([][2]int, len(piece)+1)
	for i := range parts {
		parts[i][0], parts[i][1] = i, math.MaxInt
	}
	getRank := func(startIdx, skip int) int {
		if startIdx+skip+2 < len(parts) {
			if rank, ok := ranks[string(piece[parts[startIdx][0]:parts[startIdx+skip+2][0]])]; ok {
				return rank
			}
		}
		return -1
	}
	for i := 0; i < len(parts)-2; i++ {
		if rank := getRank(i, 0); rank >= 0 {
			parts[i][1] = rank
		}
	}
	for len(parts) > 1 {
		minRank, minIdx := math.MaxInt, -1
		for i := 0; i < len(parts)-1; i++ {
			if parts[i][1] < minRank {
				minRank, minIdx = parts[i][1], i
			}
		}
		if minRank == math.MaxInt {
			break
		}
		i := minIdx
		if rank := getRank(i, 1); rank >= 0 {
			parts[i][1] = rank
		} else {
			parts[i][1] = math.MaxInt
		}
		if i > 0 {
			if rk := getRank(i-1, 1); rk >= 0 {
				parts[i-1][1] = rk
			} else {
				parts[i-1][1] = math.MaxInt
			}
		}
		parts = append(parts[:i+1], parts[i+2:]...)
	}
	out := make([]int, len(parts)-1)
	for i := range out {
		out[i] = ranks[string(piece[parts[i][0]:parts[i+1][0]])]
	}
	return out
}
