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
// How billed tokens are found without encoding twice: the document is
// scanned once into pre-tokens (pieces, [tokenizer.PieceCounter]). A window
// that starts and ends on piece boundaries holds exactly the pieces between,
// so its own encoding is theirs and its billed tokens are its token count.
// Only a window with an end inside a piece (a word of several tokens, cut) is
// encoded again, and only near that end (see billedTokens). The per-token
// offsets of a piece are computed only when a window ends inside it.
// Memory is that of the pieces from the current window's start to the end
// of the scan, which runs at most a segment (16 KB) ahead.
//
// A Chunker is safe for concurrent use.
type Chunker struct {
	Tokenizer tokenizer.Tokenizer
	Size      int
	Overlap   int
	MaxInput  int

	pool sync.Pool // of *cursor
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
	size, overlap := c.Size, c.Overlap
	if size == 0 {
		// A token holds at least one byte: a text of at most MaxInput
		// bytes is one input, whatever its count.
		if len(text) <= c.MaxInput {
			n := c.Tokenizer.Count(text)
			return n, false, fn(0, text, n)
		}
		size, overlap = c.MaxInput, 0
	}
	cur, _ := c.pool.Get().(*cursor)
	if cur == nil {
		cur = &cursor{}
	}
	defer func() {
		cur.reset(nil, nil)
		c.pool.Put(cur)
	}()
	cur.reset(tokenizer.AsPieceCounter(c.Tokenizer), text)
	n, err := c.windows(cur, size, overlap, fn)
	return n, c.Size == 0 && n > c.MaxInput, err
}

// windows cuts the cursor's text into windows of size tokens, each starting
// size-overlap tokens after the previous one, and returns the text's tokens.
func (c *Chunker) windows(cur *cursor, size, overlap int, fn ChunkFunc) (int, error) {
	start, startOff, startOnPiece := 0, 0, true
	for index := 0; ; index++ {
		end, endOff, endOnPiece := cur.forward(start + size)
		billed := cur.billedTokens(start, startOff, startOnPiece, end, endOff, endOnPiece)
		// Shrink to fit MaxInput, never below the first character boundary
		// after start: a cut inside a character would invent U+FFFD, and the
		// next window would start past bytes no window holds.
		if billed > c.MaxInput {
			floor, _, _ := cur.forward(start + 1)
			for billed > c.MaxInput && end > floor {
				end, endOff, endOnPiece = cur.backward(end-1, floor)
				billed = cur.billedTokens(start, startOff, startOnPiece, end, endOff, endOnPiece)
			}
		}
		window := cur.slice(startOff, endOff)
		if billed > c.MaxInput {
			return cur.total(), fmt.Errorf("%d bytes at offset %d need %d tokens, above the limit of %d tokens per input, and cannot be cut further", len(window), startOff, billed, c.MaxInput)
		}
		if err := fn(index, window, billed); err != nil {
			return cur.total(), err
		}
		if cur.atEnd(end) {
			return end, nil
		}
		// After a shrink, end-overlap can fall at or before start (even below
		// 0); the next window then starts one character further on.
		start, startOff, startOnPiece = cur.forward(max(end-overlap, start+1))
		cur.release(start)
	}
}
