package corpus_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/corpus/tokenizer"
)

func defaultTokenizer(t testing.TB) tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// window is one chunk as the chunker reported it, located in the document.
type window struct {
	start, end int // byte offsets in the document text
	billed     int
}

// chunkAll runs c.Chunk over text and records the windows, checking each
// window's own properties on the way.
func chunkAll(t *testing.T, c *corpus.Chunker, tok tokenizer.Tokenizer, text []byte) (wins []window, docTokens int, split bool, err error) {
	t.Helper()
	docTokens, split, err = c.Chunk(text, func(index int, w []byte, billed int) error {
		if index != len(wins) {
			t.Fatalf("chunk index %d, want %d", index, len(wins))
		}
		// w is a sub-slice of text: its offset is the difference of capacities.
		start := cap(text) - cap(w)
		if start < 0 || start+len(w) > len(text) || !bytes.Equal(text[start:start+len(w)], w) {
			t.Fatalf("chunk %d is not a sub-slice of the document text", index)
		}
		if got := tok.Count(w); got != billed {
			t.Errorf("chunk %d: billed %d tokens, re-counting its text gives %d", index, billed, got)
		}
		if billed > c.MaxInput {
			t.Errorf("chunk %d: billed %d tokens > MaxInput %d", index, billed, c.MaxInput)
		}
		if !utf8.Valid(w) {
			t.Errorf("chunk %d (%q) is cut inside a character: its text would gain an invented U+FFFD", index, w)
		}
		wins = append(wins, window{start, start + len(w), billed})
		return nil
	})
	return wins, docTokens, split, err
}

// checkWindows checks the windows against the whole document's encoding.
func checkWindows(t *testing.T, c *corpus.Chunker, tok tokenizer.Tokenizer, text []byte, wins []window, docTokens int, split bool) {
	t.Helper()
	full := tok.Encode(nil, text)
	if docTokens != len(full) {
		t.Errorf("document tokens %d, want %d", docTokens, len(full))
	}
	if len(text) == 0 {
		if len(wins) != 0 {
			t.Errorf("empty text gave %d chunks", len(wins))
		}
		return
	}
	// tokAt maps each token boundary's byte offset to the token index.
	tokAt := map[int]int{}
	allCharStarts := true
	off := 0
	var buf []byte
	for i, id := range full {
		tokAt[off] = i
		if text[off]&0xC0 == 0x80 {
			allCharStarts = false
		}
		buf = tok.Decode(buf[:0], []int{id})
		off += len(buf)
	}
	tokAt[off] = len(full)
	size, overlap := c.Size, c.Overlap
	if size == 0 {
		size, overlap = c.MaxInput, 0
	}
	if wantSplit := c.Size == 0 && len(full) > c.MaxInput; split != wantSplit {
		t.Errorf("split = %v, want %v (%d tokens, MaxInput %d)", split, wantSplit, len(full), c.MaxInput)
	}
	if wins[0].start != 0 || wins[len(wins)-1].end != len(text) {
		t.Errorf("windows span [%d, %d), want the whole text [0, %d)", wins[0].start, wins[len(wins)-1].end, len(text))
	}
	for i, w := range wins {
		s, ok1 := tokAt[w.start]
		e, ok2 := tokAt[w.end]
		if !ok1 || !ok2 {
			t.Fatalf("window %d [%d, %d) is not cut on token boundaries", i, w.start, w.end)
		}
		if e-s > size+3 {
			t.Errorf("window %d has %d tokens, want at most %d+3", i, e-s, size)
		}
		if e <= s {
			t.Errorf("window %d is empty", i)
		}
		if i == 0 {
			continue
		}
		prev := wins[i-1]
		ps, pe := tokAt[prev.start], tokAt[prev.end]
		if w.start <= prev.start || w.end < prev.end || w.start > prev.end {
			t.Errorf("window %d [%d, %d) does not follow window %d [%d, %d) in order without a gap", i, w.start, w.end, i-1, prev.start, prev.end)
		}
		if allCharStarts && pe-ps > overlap && pe-s != overlap {
			t.Errorf("windows %d and %d overlap by %d tokens, want %d", i-1, i, pe-s, overlap)
		}
		if pe-s > overlap {
			t.Errorf("windows %d and %d overlap by %d tokens, more than %d", i-1, i, pe-s, overlap)
		}
	}
}

// chunkSeeds are texts that stress token boundaries: multi-token characters,
// long runs, special-token strings, replacement characters.
func chunkSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte("The quick brown fox jumps over the lazy dog. "),
		[]byte(strings.Repeat("hello world ", 50)),
		[]byte("🙂🙃😀 emoji 👩‍👩‍👧‍👦 zwj 𝕏 math"),
		[]byte("日本語のテキストと中文文本和한국어 텍스트"),
		[]byte("<|endoftext|>special<|fim_prefix|>tokens"),
		[]byte("bad \uFFFD\uFFFD replacement \uFEFFbom"),
		[]byte(strings.Repeat("1234567890", 30)),
		[]byte(strings.Repeat(" ", 100) + "x" + strings.Repeat("\n", 40)),
		{},
		[]byte("a"),
	}
	for _, name := range []string{"emoji-zwj.txt", "mixed-scripts-asia.txt", "combining-marks.txt", "utf8-surrogates.txt", "newer-unicode-16-17.txt", "code-mixed.txt"} {
		b, err := os.ReadFile(filepath.Join(tokensDir, "corpus", "tricky", name))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b[:min(len(b), 3000)])
	}
	return seeds
}

// FuzzChunk checks DESIGN §4 on any text and chunking parameters: windows
// cover the text in order, consecutive windows overlap by the configured
// tokens (exactly, when no token boundary falls inside a character), each has
// at most size+3 tokens of the whole-document encoding, re-counting a window's
// text gives its billed count, no window is cut inside a character (which
// would invent a U+FFFD), and billed ≤ MaxInput.
func FuzzChunk(f *testing.F) {
	for i, s := range chunkSeeds(f) {
		f.Add(s, uint8(1+i*7%40), uint8(i%5), uint8(i*3%9))
		f.Add(s, uint8(0), uint8(0), uint8(i%6)) // --chunk-tokens 0, small MaxInput: splits
	}
	tok := defaultTokenizer(f)
	f.Fuzz(func(t *testing.T, raw []byte, size8, overlap8, slack8 uint8) {
		text, _ := corpus.ToValidUTF8(raw)
		size := int(size8 % 65)
		overlap := 0
		if size > 0 {
			overlap = int(overlap8) % size
		}
		maxInput := max(size, 1) + int(slack8%8)
		c, err := corpus.NewChunker(tok, size, overlap, maxInput)
		if err != nil {
			t.Fatalf("NewChunker(%d, %d, %d): %v", size, overlap, maxInput, err)
		}
		wins, docTokens, split, err := chunkAll(t, c, tok, text)
		if err != nil {
			// A MaxInput of a few tokens can be below what one character
			// needs; then Chunk refuses rather than break the text.
			if maxInput < 8 && strings.Contains(err.Error(), "cannot be cut further") {
				t.Skipf("MaxInput %d: %v", maxInput, err)
			}
			t.Fatalf("Chunk: %v", err)
		}
		checkWindows(t, c, tok, text, wins, docTokens, split)
	})
}

func TestChunkWholeDocuments(t *testing.T) {
	tok := defaultTokenizer(t)
	text := []byte(strings.Repeat(" word", 100)) // 100 tokens
	if n := tok.Count(text); n != 100 {
		t.Fatalf("test text has %d tokens, want 100", n)
	}
	tests := []struct {
		name       string
		maxInput   int
		wantChunks []int // billed tokens
		wantSplit  bool
	}{
		{"FitsIsOneChunk", 100, []int{100}, false},
		{"OverMaxInputSplitAndReported", 30, []int{30, 30, 30, 10}, true},
		{"OneTokenOverSplit", 99, []int{99, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := corpus.NewChunker(tok, 0, 0, tt.maxInput)
			if err != nil {
				t.Fatal(err)
			}
			wins, n, split, err := chunkAll(t, c, tok, text)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, w := range wins {
				got = append(got, w.billed)
			}
			if n != 100 || split != tt.wantSplit || !slices.Equal(got, tt.wantChunks) {
				t.Errorf("Chunk = %d tokens, split %v, chunks %v; want 100, %v, %v", n, split, got, tt.wantSplit, tt.wantChunks)
			}
			checkWindows(t, c, tok, text, wins, n, split)
		})
	}
}

func TestChunkWindows(t *testing.T) {
	tok := defaultTokenizer(t)
	text := []byte(strings.Repeat(" word", 100)) // 100 tokens
	tests := []struct {
		name          string
		size, overlap int
		wantChunks    []int
	}{
		{"NoOverlap", 40, 0, []int{40, 40, 20}},
		{"OverlapStepsBySizeMinusOverlap", 40, 10, []int{40, 40, 40}}, // [0,40) [30,70) [60,100)
		{"SizeAboveDocumentIsOneChunk", 200, 10, []int{100}},
		{"ExactFitIsOneChunk", 100, 99, []int{100}},
		{"MaxOverlap", 3, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := corpus.NewChunker(tok, tt.size, tt.overlap, 8191)
			if err != nil {
				t.Fatal(err)
			}
			wins, n, split, err := chunkAll(t, c, tok, text)
			if err != nil {
				t.Fatal(err)
			}
			checkWindows(t, c, tok, text, wins, n, split)
			if tt.wantChunks == nil {
				if len(wins) != 98 {
					t.Errorf("%d chunks, want 98 (starts 0..97, step 1)", len(wins))
				}
				return
			}
			var got []int
			for _, w := range wins {
				got = append(got, w.billed)
			}
			if !slices.Equal(got, tt.wantChunks) {
				t.Errorf("chunks %v, want %v", got, tt.wantChunks)
			}
		})
	}
}

func TestNewChunkerRejectsBadParameters(t *testing.T) {
	tok := defaultTokenizer(t)
	tests := []struct {
		name                    string
		size, overlap, maxInput int
		wantFlag                string
	}{
		{"NegativeSize", -1, 0, 100, "chunk_tokens"},
		{"NegativeOverlap", 10, -1, 100, "chunk_overlap"},
		{"OverlapEqualsSize", 10, 10, 100, "chunk_overlap 10 must be less than chunk_tokens 10"},
		{"OverlapAboveSize", 10, 11, 100, "chunk_overlap"},
		{"OverlapWithoutSize", 0, 5, 100, "chunk_overlap"},
		{"SizeAboveModelLimit", 9000, 0, 8191, "chunk_tokens 9000 exceeds"},
		{"NoMaxInput", 10, 0, 0, "max tokens per input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := corpus.NewChunker(tok, tt.size, tt.overlap, tt.maxInput)
			if err == nil || !strings.Contains(err.Error(), tt.wantFlag) {
				t.Errorf("NewChunker(%d, %d, %d) = %v, want an error naming %q", tt.size, tt.overlap, tt.maxInput, err, tt.wantFlag)
			}
		})
	}
}
