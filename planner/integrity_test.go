package planner

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
)

// TestRebuildCommitsNoBadVector: a provider whose every answer holds NaN,
// Inf, zero or wrong-length vectors fails the rebuild with an error naming the
// request and the chunk (not "empty doc_id"), after the retry budget when
// the stack retries, and not one row is committed.
func TestRebuildCommitsNoBadVector(t *testing.T) {
	t.Parallel()
	root := rbCorpus(t, 4, 7)
	lies := map[string]func(v []float32) []float32{
		"nan":   func(v []float32) []float32 { v[3] = float32(math.NaN()); return v },
		"inf":   func(v []float32) []float32 { v[0] = float32(math.Inf(-1)); return v },
		"zero":  func(v []float32) []float32 { clear(v); return v },
		"short": func(v []float32) []float32 { return v[:len(v)-1] },
	}
	for name, lie := range lies {
		for _, stacked := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "/bare", true: "/stack"}[stacked], func(t *testing.T) {
				t.Parallel()
				fake := &embeddertest.Fake{Func: func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
					res := embeddertest.Vectors(req, "", 0)
					for i := range res.Vectors {
						res.Vectors[i] = lie(res.Vectors[i])
					}
					return res, nil
				}}
				var emb embedder.Embedder = fake
				if stacked {
					v, err := embedder.NewValidating(fake, 8)
					if err != nil {
						t.Fatal(err)
					}
					emb, err = embedder.NewRetrying(v, embedder.RetryConfig{MaxAttempts: 3, BaseDelay: time.Millisecond, Seed: 1})
					if err != nil {
						t.Fatal(err)
					}
				}
				out := t.TempDir()
				spec := rbSpec(t, root)
				spec.Limits.Concurrency = 1
				_, err := rbRun(t, t.Context(), emb, out, spec)
				if !errors.Is(err, embedder.ErrInvalidVector) {
					t.Fatalf("err = %v, want ErrInvalidVector", err)
				}
				msg := err.Error()
				if strings.Contains(msg, "doc_id") || !strings.Contains(msg, "embedding 8 chunks starting at doc-") || !strings.Contains(msg, `of document "doc-`) {
					t.Errorf("err = %q, want it to name the request and the chunk", msg)
				}
				if stacked && fake.Calls() < 3 {
					t.Errorf("provider called %d times, want the retry budget (3) spent", fake.Calls())
				}
				for part, rows := range rbRows(t, out) {
					t.Errorf("part %s committed %d rows from a lying provider", part, len(rows))
				}
			})
		}
	}
}
