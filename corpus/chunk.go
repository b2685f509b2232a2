package corpus

import (
	"errors"
	"fmt"
	"sync"

	"github.com/reembed/reembed/corpus/tokenizer"
)

// Chunker cuts documents into the inputs sent to the provider (DESIGN §4).
//
// With Size > 0 a document is cut into windows of Size tokens, each starting
// Size-Overlap tokens after the previous one. With Size == 0 a document is one
// input, unless it has more than MaxInput tokens; then it is split into
// windows of MaxInput tokens with no overlap.
//
// Windows are cut on token boundaries of the whole document's encoding.
// Byte-level BPE can put a boundary inside a UTF-8 character; a cut is never
// made there (it would invent U+FFFD): such a boundary moves forward to the
// next token that starts a character, so a window can hold up to 3 tokens
// more than Size. A chunk's billed tokens are the tokens of its text encoded
// again on its own, as the provider will; should that exceed MaxInput, the
// window's end moves back until it fits. Chunk fails only when a run of tokens
// up to the first character boundary exceeds MaxInput on its own, which needs
// a MaxInput far below any real model's (a few tokens).
//
// A Chunker is safe for concurrent use.
type Chunker struct {
	Tokenizer tokenizer.Tokenizer
	Size      int
	Overlap   int
	MaxInput  int

	pool sync.Pool
}

// NewChunker validates the chunking parameters; errors name them as the
// request fields do (chunk_tokens, chunk_overlap).
func NewChunker(tok tokenizer.Tokenizer, size, overlap, maxInput int) (*Chunker, error) {
	switch {
	case size < 0:
		return nil, errors.New("chunk_tokens must not be negative")
	case overlap < 0:
		return nil, errors.New("chunk_overlap must not be negative")
	case size == 0 && overlap > 0:
		return nil, errors.New("chunk_overlap needs chunk_tokens > 0")
	case size > 0 && overlap >= size:
		return nil, fmt.Errorf("chunk_overlap %d must be less than chunk_tokens %d", overlap, size)
	case maxInput <= 0:
		return nil, errors.New("the model's max tokens per input must be positive")
	case size > maxInput:
		return nil, fmt.Errorf("chunk_tokens %d exceeds the model's limit of %d tokens per input", size, maxInput)
	}
	return &Chunker{Tokenizer: tok, Size: size, Overlap: overlap, MaxInput: maxInput}, nil
}

type scratch struct {
	tokens []int
	offs   []int
	buf    []byte
}

// ChunkFunc receives one chunk: its index in the document, its text (a
// sub-slice of the document text, valid only during the call) and its billed
// tokens.
type ChunkFunc func(index int, text []byte, tokens int) error

// Chunk cuts text and calls fn for each chunk in order. It returns the
// document's token count (the whole text encoded once) and whether a
// Size == 0 document had to be split at MaxInput. Empty text has no chunks.
func (c *Chunker) Chunk(text []byte, fn ChunkFunc) (docTokens int, split bool, err error) {
	if len(text) == 0 {
		return 0, false, nil
	}
	if c.Size == 0 {
		n := c.Tokenizer.Count(text)
		if n <= c.MaxInput {
			return n, false, fn(0, text, n)
		}
	}
	sc, _ := c.pool.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer c.pool.Put(sc)
	sc.tokens = c.Tokenizer.Encode(sc.tokens[:0], text)
	n := len(sc.tokens)
	// offs[i] is the byte offset where token i starts; offs[n] == len(text).
	sc.offs = sc.offs[:0]
	off := 0
	one := make([]int, 1)
	for _, t := range sc.tokens {
		sc.offs = append(sc.offs, off)
		one[0] = t
		sc.buf = c.Tokenizer.Decode(sc.buf[:0], one)
		off += len(sc.buf)
	}
	sc.offs = append(sc.offs, off)
	if off != len(text) {
		return n, false, fmt.Errorf("tokenizer round trip lost bytes: %d decoded, %d in text", off, len(text))
	}
	size, overlap := c.Size, c.Overlap
	if size == 0 {
		size, overlap, split = c.MaxInput, 0, true
	}
	charStart := func(i int) bool { return i >= n || text[sc.offs[i]]&0xC0 != 0x80 }
	forward := func(i int) int {
		for i < n && !charStart(i) {
			i++
		}
		return min(i, n)
	}
	start := 0
	for index := 0; ; index++ {
		end := forward(min(start+size, n))
		window := text[sc.offs[start]:sc.offs[end]]
		billed := n
		if start != 0 || end != n {
			billed = c.Tokenizer.Count(window)
		}
		// Shrink to fit MaxInput, never below the first character boundary
		// after start: a cut inside a character would invent U+FFFD, and the
		// next window would start past bytes no window holds.
		floor := forward(start + 1)
		for billed > c.MaxInput && end > floor {
			end--
			for end > floor && !charStart(end) {
				end--
			}
			window = text[sc.offs[start]:sc.offs[end]]
			billed = c.Tokenizer.Count(window)
		}
		if billed > c.MaxInput {
			return n, split, fmt.Errorf("%d bytes at offset %d need %d tokens, above the limit of %d tokens per input, and cannot be cut further", len(window), sc.offs[start], billed, c.MaxInput)
		}
		if err := fn(index, window, billed); err != nil {
			return n, split, err
		}
		if end >= n {
			return n, split, nil
		}
		// After a shrink, end-overlap can fall at or before start (even below
		// 0); the next window then starts one character further on.
		start = forward(max(end-overlap, start+1))
	}
}
