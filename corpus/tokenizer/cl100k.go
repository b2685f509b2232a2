package tokenizer

import (
	"fmt"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100kFile names the ranks file in the offline loader. The loader uses
// only its base name to pick an embedded asset; nothing is downloaded.
const cl100kFile = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

// cl100kSpecial returns the text of a cl100k_base special token. Encode
// never produces them (specials are ordinary text); Decode writes their text.
func cl100kSpecial(tok int) (string, bool) {
	switch tok {
	case 100257:
		return "<|endoftext|>", true
	case 100258:
		return "<|fim_prefix|>", true
	case 100259:
		return "<|fim_middle|>", true
	case 100260:
		return "<|fim_suffix|>", true
	case 100276:
		return "<|endofprompt|>", true
	}
	return "", false
}

// CL100K is a fast, exact cl100k_base tokenizer with encode_ordinary
// semantics: a hand-written scanner for the pre-tokenization regex over
// Unicode 16.0 classes (what the official tokenizer uses), then tiktoken's
// byte-pair merge, with a bounded cache of piece → tokens.
//
// It works on the caller's bytes without copying them. A CL100K is safe for
// concurrent use; share one (about 15 MB of rank tables and cache).
type CL100K struct {
	ranks    map[string]int // token bytes → rank (= token id)
	byteRank [256]int32     // rank of each single byte
	tokens   []string       // rank → token bytes
	cache    *pieceCache
}

var _ Tokenizer = (*CL100K)(nil)

// NewCL100K loads the cl100k_base ranks from the offline loader
// (github.com/pkoukk/tiktoken-go-loader, embedded in the binary) and builds
// the tokenizer. It takes about 50 ms; reuse the result.
func NewCL100K() (*CL100K, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(cl100kFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s ranks from the offline loader: %w", EncodingCL100K, err)
	}
	t := &CL100K{ranks: ranks, cache: newPieceCache()}
	maxRank := 0
	for tok, r := range ranks {
		if r < 0 || r >= noRank {
			return nil, fmt.Errorf("loading %s ranks: token %q has rank %d", EncodingCL100K, tok, r)
		}
		maxRank = max(maxRank, r)
	}
	t.tokens = make([]string, maxRank+1)
	for tok, r := range ranks {
		t.tokens[r] = tok
	}
	for b := range 256 {
		r, ok := ranks[string([]byte{byte(b)})]
		if !ok {
			return nil, fmt.Errorf("loading %s ranks: byte %#02x has no token", EncodingCL100K, b)
		}
		t.byteRank[b] = int32(r)
	}
	return t, nil
}

// Encode appends the tokens of text (valid UTF-8) to dst and returns the
// extended slice.
func (t *CL100K) Encode(dst []int, text []byte) []int {
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		dst = t.encodePiece(dst, text[i:j])
		i = j
	}
	return dst
}

// Count returns the number of tokens of text (valid UTF-8). Count(nil) is 0.
func (t *CL100K) Count(text []byte) int {
	n := 0
	var scratch [smallPiece]int
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		p := text[i:j]
		i = j
		if _, ok := t.ranks[string(p)]; ok {
			n++
			continue
		}
		if toks := t.cache.get(p); toks != nil {
			n += len(toks)
			continue
		}
		toks := t.bpe(scratch[:0], p)
		t.cache.put(p, toks)
		n += len(toks)
	}
	return n
}

// encodePiece appends the tokens of one pre-token.
func (t *CL100K) encodePiece(dst []int, p []byte) []int {
	if r, ok := t.ranks[string(p)]; ok {
		return append(dst, r)
	}
	if toks := t.cache.get(p); toks != nil {
		for _, tok := range toks {
			dst = append(dst, int(tok))
		}
		return dst
	}
	n := len(dst)
	dst = t.bpe(dst, p)
	t.cache.put(p, dst[n:])
	return dst
}

// Decode appends the bytes of tokens to dst and returns the extended slice.
// Special tokens decode to their text; ids that are no token add nothing.
func (t *CL100K) Decode(dst []byte, tokens []int) []byte {
	for _, tok := range tokens {
		if tok >= 0 && tok < len(t.tokens) {
			dst = append(dst, t.tokens[tok]...)
		} else if s, ok := cl100kSpecial(tok); ok {
			dst = append(dst, s...)
		}
	}
	return dst
}
