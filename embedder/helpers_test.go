package embedder_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
)

// newSim returns a simulator with cfg, closed at the end of the test.
func newSim(t testing.TB, cfg embedder.SimulatorConfig) *embedder.Simulator {
	t.Helper()
	s, err := embedder.NewSimulator(cfg)
	if err != nil {
		t.Fatalf("NewSimulator: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// serveSim serves a simulator on a loopback httptest server.
func serveSim(t testing.TB, cfg embedder.SimulatorConfig) (*embedder.Simulator, *httptest.Server) {
	t.Helper()
	s := newSim(t, cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return s, srv
}

// countTokens is the exact cl100k count.
func countTokens(t testing.TB, text string) int {
	t.Helper()
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatalf("tokenizer: %v", err)
	}
	return tok.Count([]byte(text))
}

// chunks returns n distinct inputs of document doc with exact token counts.
func chunks(t testing.TB, doc string, n int) []embedder.Input {
	t.Helper()
	in := make([]embedder.Input, n)
	for i := range in {
		text := fmt.Sprintf("Chunk %d of %s: the quick brown fox jumps over the lazy dog, naïve café №%d.", i, doc, i*7)
		in[i] = embedder.Input{Text: text, Tokens: countTokens(t, text), DocID: doc, ChunkIndex: i}
	}
	return in
}

// sameVector reports whether a and b are equal bit for bit.
func sameVector(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
