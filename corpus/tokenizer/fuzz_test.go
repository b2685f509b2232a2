package tokenizer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzEncodeMatchesReference runs CL100K against pkoukk/tiktoken-go on
// arbitrary bytes, made valid UTF-8 by the project's rule. Inputs holding a
// code point whose letter/number/space class differs between Go's unicode
// tables (which the Reference uses) and our Unicode 16.0 tables are skipped:
// there the Reference is wrong, and the counts.tsv test covers them.
// Seeds are two 512-byte chunks of every testdata file.
//
//	go test ./corpus/tokenizer -run '^$' -fuzz FuzzEncodeMatchesReference -parallel 1
func FuzzEncodeMatchesReference(f *testing.F) {
	for _, row := range loadCounts(f) {
		b, err := os.ReadFile(filepath.Join(tokensDir, "corpus", filepath.FromSlash(row.path)))
		if err != nil {
			f.Fatalf("reading corpus file: %v", err)
		}
		f.Add(b[:min(512, len(b))])
		if len(b) > 1024 {
			f.Add(b[len(b)/2 : len(b)/2+512])
		}
	}
	ours, ref := tokenizers(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Invalid UTF-8 is outside the contract, but must not panic, and
		// byte-level BPE still round-trips it.
		if back := ours.Decode(nil, ours.Encode(nil, b)); !bytes.Equal(back, b) {
			t.Fatalf("Decode(Encode(%q)) = %q", b, back)
		}
		text := toValidUTF8(b)
		if !sameClassInGo(text) {
			t.Skip("holds a code point whose class changed after Unicode 15.0")
		}
		got, want := ours.Encode(nil, text), ref.Encode(nil, text)
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("Encode(%q): tokens differ from the Reference at index %d: ours %v, reference %v",
				text, i, got, want)
		}
		if n := ours.Count(text); n != len(want) {
			t.Fatalf("Count(%q) = %d, want %d", text, n, len(want))
		}
		if back := ours.Decode(nil, got); !bytes.Equal(back, text) {
			t.Fatalf("Decode(Encode(%q)) = %q", text, back)
		}
	})
}
