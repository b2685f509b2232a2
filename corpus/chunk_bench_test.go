package corpus_test

import (
	"io/fs"
	"testing"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
)

// BenchmarkChunk cuts the sample's HTML specification (as text, 0.2 MB) into
// chunks: MB/s and chunks/s.
//
//   - count: tokenizer.Count of the whole text, the floor (no chunking);
//   - fast-512 and fast-0: the chunker as reembed runs it (512/64 windows;
//     --chunk-tokens 0, one input per 8191 tokens), billing each window from
//     the pieces of one scan and re-encoding only cut edges;
//   - fallback-512 and fallback-0: the same windows through
//     tokenizer.WholePieces, which reports no pieces, so that every window is
//     encoded again on its own (what the chunker did before it billed from
//     pieces).
func BenchmarkChunk(b *testing.B) {
	raw, err := fs.ReadFile(sample.FS(), "html/go_spec.html")
	if err != nil {
		b.Fatal(err)
	}
	text, _ := corpus.ToValidUTF8(raw)
	tok, err := tokenizer.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("count", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.Count(text)
		}
	})
	for _, bc := range []struct {
		name          string
		tok           tokenizer.Tokenizer
		size, overlap int
	}{
		{"fast-512", tok, 512, 64},
		{"fallback-512", tokenizer.WholePieces{Tokenizer: tok}, 512, 64},
		{"fast-0", tok, 0, 0},
		{"fallback-0", tokenizer.WholePieces{Tokenizer: tok}, 0, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ch, err := corpus.NewChunker(bc.tok, bc.size, bc.overlap, 8191)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			chunks := 0
			for b.Loop() {
				if _, _, err := ch.Chunk(text, func(int, []byte, int) error { chunks++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(chunks)/b.Elapsed().Seconds(), "chunks/s")
		})
	}
}
