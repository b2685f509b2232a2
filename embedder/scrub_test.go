package embedder_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

// TestErrorBodyNeverLeaksThePartOfAKey: a provider answering a plain-text
// (non-JSON) error that quotes the key, at any offset, including where a cut
// at 300 characters would fall inside it, or quoting only its start, never
// gets any 8 characters of the key into the error. Keys of several shapes.
func TestErrorBodyNeverLeaksThePartOfAKey(t *testing.T) {
	t.Parallel()
	keys := []string{
		"sk-proj-abcdefghijklmnopqrstuvwxyz012345",
		"0123456789abcdef0123456789abcdef", // no prefix: 32 hex characters
		"Zq9!x#Lm",                         // short, with symbols
		"tok_live$A1b2C3d4+E5f6/G7h8=I9j0", // symbols throughout
		"abc",                              // shorter than the prefix length
	}
	for _, key := range keys {
		for _, tc := range []struct {
			name string
			body func(pad int) string
		}{
			{"Whole", func(pad int) string { return strings.Repeat("x", pad) + " key " + key + " rejected" }},
			{"Start", func(pad int) string {
				return strings.Repeat("y", pad) + " key " + key[:max(len(key)*2/3, min(8, len(key)))] + "... rejected"
			}},
		} {
			for _, pad := range []int{0, 270, 280, 290, 295} {
				body := tc.body(pad)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/plain")
					w.WriteHeader(401)
					fmt.Fprint(w, body)
				}))
				o := newOpenAI(t, embedder.OpenAIConfig{BaseURL: srv.URL, APIKey: embedder.APIKey(key), Timeout: 5 * time.Second})
				_, err := o.Embed(t.Context(), &embedder.Request{Inputs: []embedder.Input{{Text: "a", Tokens: 1}}})
				srv.Close()
				if err == nil {
					t.Fatalf("%s/%s/%d: no error", key, tc.name, pad)
				}
				pe, _ := errors.AsType[*embedder.ProviderError](err)
				for _, text := range []string{err.Error(), pe.Message} {
					if n := min(8, len(key)); strings.Contains(text, key[:n]) {
						t.Errorf("key %q, %s, pad %d: %q holds the key's first %d characters", key, tc.name, pad, text, n)
					}
				}
			}
		}
	}
}
