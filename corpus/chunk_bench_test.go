package corpus_test

import (
	"io/fs"
	"testing"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/sample"
	"github.com/reembed/reembed/corpus/tokenizer"
)

// BenchmarkChunk cuts the sample's HTML specification (as text) into
// 512-token windows with 64 overlap, counting each window again: MB/s and
// chunks/s.
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
	ch, err := corpus.NewChunker(tok, 512, 64, 8191)
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
}
