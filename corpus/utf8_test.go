package corpus_test

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus"
)

const fffd = "\uFFFD"

func TestToValidUTF8(t *testing.T) {
	tests := []struct {
		name        string
		in          []byte
		want        string
		wantInvalid int
	}{
		{"ValidASCIIUnchanged", []byte("hello"), "hello", 0},
		{"ValidMultibyteUnchanged", []byte("héllo, 世界 🙂"), "héllo, 世界 🙂", 0},
		{"EmptyUnchanged", []byte{}, "", 0},
		{"BOMKept", []byte("\xEF\xBB\xBFtext"), "\uFEFFtext", 0},
		{"BOMKeptBeforeInvalid", []byte("\xEF\xBB\xBF\xFFx"), "\uFEFF" + fffd + "x", 1},
		{"TruncatedThreeByteIsOneReplacement", []byte{0xE1, 0x80, 0x41}, fffd + "A", 1},
		{"EncodedSurrogateIsThreeReplacements", []byte{0xED, 0xA0, 0x80}, fffd + fffd + fffd, 3},
		{"OverlongC0IsTwoReplacements", []byte{0xC0, 0xAF}, fffd + fffd, 2},
		{"OverlongE0IsThreeReplacements", []byte{0xE0, 0x80, 0xAF}, fffd + fffd + fffd, 3},
		{"AboveMaxF4IsFourReplacements", []byte{0xF4, 0x90, 0x80, 0x80}, fffd + fffd + fffd + fffd, 4},
		{"F5IsOneReplacementPerByte", []byte{0xF5, 0x80}, fffd + fffd, 2},
		{"LoneContinuationByte", []byte("a\x80b"), "a" + fffd + "b", 1},
		{"TruncatedFourByteAtEndIsOneReplacement", []byte{'x', 0xF0, 0x9F, 0x98}, "x" + fffd, 1},
		{"TruncatedFourByteBeforeASCII", []byte{0xF0, 0x9F, 0x98, 'y'}, fffd + "y", 1},
		{"TwoTruncatedSequencesAreTwo", []byte{0xE1, 0x80, 0xE1, 0x80}, fffd + fffd, 2},
		{"FFAndFEAreOneEach", []byte{0xFF, 0xFE}, fffd + fffd, 2},
		// The Unicode standard's own example (§3.9, Table 3-8).
		{"UnicodeTable3_8", []byte{0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64},
			"a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := corpus.ToValidUTF8(tt.in)
			if string(got) != tt.want || n != tt.wantInvalid {
				t.Errorf("ToValidUTF8(% x) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.wantInvalid)
			}
			if tt.wantInvalid == 0 && len(tt.in) > 0 && &got[0] != &tt.in[0] {
				t.Errorf("ToValidUTF8 copied valid input; want the same slice returned")
			}
			gs, ns := corpus.ToValidUTF8String(string(tt.in))
			if gs != tt.want || ns != tt.wantInvalid {
				t.Errorf("ToValidUTF8String(%q) = %q, %d; want %q, %d", tt.in, gs, ns, tt.want, tt.wantInvalid)
			}
		})
	}
}

// whatwgDecode is the WHATWG Encoding Standard's UTF-8 decoder with the
// "replacement" error mode, written from the spec as an independent oracle.
// It returns the decoded text and the number of U+FFFD it emitted for errors.
func whatwgDecode(in []byte) (string, int) {
	var out []byte
	errs := 0
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	var cp rune
	for i := 0; i < len(in); i++ {
		b := in[i]
		if needed == 0 {
			switch {
			case b <= 0x7F:
				out = append(out, b)
			case b >= 0xC2 && b <= 0xDF:
				needed, cp = 1, rune(b&0x1F)
			case b >= 0xE0 && b <= 0xEF:
				if b == 0xE0 {
					lower = 0xA0
				}
				if b == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(b&0x0F)
			case b >= 0xF0 && b <= 0xF4:
				if b == 0xF0 {
					lower = 0x90
				}
				if b == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(b&0x07)
			default:
				out = append(out, fffd...)
				errs++
			}
			continue
		}
		if b < lower || b > upper {
			needed, seen, cp = 0, 0, 0
			lower, upper = 0x80, 0xBF
			out = append(out, fffd...)
			errs++
			i-- // the byte is processed again
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(b&0x3F)
		seen++
		if seen == needed {
			out = utf8.AppendRune(out, cp)
			needed, seen, cp = 0, 0, 0
		}
	}
	if needed != 0 {
		out = append(out, fffd...)
		errs++
	}
	return string(out), errs
}

// FuzzToValidUTF8 checks ToValidUTF8 against the WHATWG decoder on any bytes.
func FuzzToValidUTF8(f *testing.F) {
	for _, s := range []string{"", "abc", "\xE1\x80A", "\xED\xA0\x80", "\xC0\xAF", "\xEF\xBB\xBF", "\xF0\x9F\x98", "a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		got, n := corpus.ToValidUTF8(in)
		want, wantN := whatwgDecode(orig)
		if string(got) != want || n != wantN {
			t.Fatalf("ToValidUTF8(% x) = %q, %d; WHATWG decoder gives %q, %d", orig, got, n, want, wantN)
		}
		if !utf8.Valid(got) {
			t.Fatalf("ToValidUTF8(% x) = % x, not valid UTF-8", orig, got)
		}
		if !bytes.Equal(in, orig) {
			t.Fatalf("ToValidUTF8 modified its input")
		}
	})
}
