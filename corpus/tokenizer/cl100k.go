package tokenizer

import (
	"fmt"
	"sync"

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
// concurrent use; share one. Memory: 4 MB of rank tables, a shared piece
// cache of at most 18 MB (a few MB on real text) and 96 KB per goroutine
// inside Count or Encode.
type CL100K struct {
	ranks    *rankTable // token bytes → rank (= token id)
	tokBytes []byte     // the bytes of every token, in rank order
	tokOff   []uint32   // token r is tokBytes[tokOff[r]:tokOff[r+1]]
	cache    *pieceCache
	hot      sync.Pool // of *hotCache, one per goroutine in Count or Encode
}

var _ Tokenizer = (*CL100K)(nil)

// NewCL100K loads the cl100k_base ranks from the offline loader
// (github.com/pkoukk/tiktoken-go-loader, embedded in the binary) and builds
// the tokenizer. It takes a few hundred milliseconds, most of it decoding
// the embedded ranks; reuse the result. The error wraps the loader's.
func NewCL100K() (*CL100K, error) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(cl100kFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s ranks from the offline loader: %w", EncodingCL100K, err)
	}
	maxRank, size := 0, 0
	for tok, r := range ranks {
		if r < 0 || r >= 1<<24-1 {
			return nil, fmt.Errorf("loading %s ranks: token %q has rank %d", EncodingCL100K, tok, r)
		}
		maxRank = max(maxRank, r)
		size += len(tok)
	}
	tokens := make([]string, maxRank+1)
	for tok, r := range ranks {
		tokens[r] = tok
	}
	t := &CL100K{
		ranks:    newRankTable(ranks),
		tokBytes: make([]byte, 0, size),
		tokOff:   make([]uint32, 1, len(tokens)+1),
		cache:    newPieceCache(),
	}
	t.hot.New = func() any { return new(hotCache) }
	for _, tok := range tokens {
		t.tokBytes = append(t.tokBytes, tok...)
		t.tokOff = append(t.tokOff, uint32(len(t.tokBytes)))
	}
	for b, r := range t.ranks.single {
		if r == noRank {
			return nil, fmt.Errorf("loading %s ranks: byte %#02x has no token", EncodingCL100K, b)
		}
	}
	return t, nil
}

// Encode appends the tokens of text (valid UTF-8) to dst and returns the
// extended slice.
func (t *CL100K) Encode(dst []int, text []byte) []int {
	if len(text) == 0 {
		return dst
	}
	hot := t.hot.Get().(*hotCache)
	defer t.hot.Put(hot)
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		p := text[i:j]
		i = j
		if len(p) < 3 || len(p) > inlineMax {
			dst = t.encodePiece(dst, p)
			continue
		}
		k0, k1 := packKey(p)
		h := keyHash(k0, k1, len(p))
		e := &hot[h>>(64-hotBits)]
		if e.k0 == k0 && e.k1 == k1 && int(e.n) == len(p) && e.count == 1 {
			dst = append(dst, int(e.tok))
			continue
		}
		if r := t.ranks.getPacked(k0, k1, len(p), h); r != noRank {
			*e = hotEntry{k0: k0, k1: k1, tok: r, count: 1, n: uint8(len(p))}
			dst = append(dst, int(r))
			continue
		}
		n := len(dst)
		dst = t.encodeMulti(dst, p)
		*e = hotEntry{k0: k0, k1: k1, count: uint8(len(dst) - n), n: uint8(len(p))}
	}
	return dst
}

// Count returns the number of tokens of text (valid UTF-8). Count(nil) is 0.
func (t *CL100K) Count(text []byte) int {
	if len(text) == 0 {
		return 0
	}
	hot := t.hot.Get().(*hotCache)
	defer t.hot.Put(hot)
	n := 0
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		p := text[i:j]
		i = j
		switch {
		case len(p) == 1: // every byte is a token
			n++
			continue
		case len(p) == 2: // one token, or two single bytes
			n += 2
			if t.ranks.pair[uint16(p[0])|uint16(p[1])<<8] != noRank {
				n--
			}
			continue
		case len(p) > inlineMax:
			n += t.countPiece(p)
			continue
		}
		k0, k1 := packKey(p)
		h := keyHash(k0, k1, len(p))
		e := &hot[h>>(64-hotBits)]
		if e.k0 == k0 && e.k1 == k1 && int(e.n) == len(p) {
			n += int(e.count)
			continue
		}
		c := 1
		r := t.ranks.getPacked(k0, k1, len(p), h)
		if r == noRank {
			c = t.countPiece(p)
		}
		*e = hotEntry{k0: k0, k1: k1, tok: r, count: uint8(c), n: uint8(len(p))}
		n += c
	}
	return n
}

// countPiece returns the number of tokens of the piece p.
func (t *CL100K) countPiece(p []byte) int {
	if len(p) > inlineMax && t.ranks.get(p) != noRank {
		return 1
	}
	if toks := t.cache.get(p); toks != nil {
		return len(toks)
	}
	var scratch [smallPiece]int
	toks := t.bpe(scratch[:0], p)
	t.cache.put(p, toks)
	return len(toks)
}

// encodePiece appends the tokens of one pre-token.
func (t *CL100K) encodePiece(dst []int, p []byte) []int {
	if r := t.ranks.get(p); r != noRank {
		return append(dst, int(r))
	}
	return t.encodeMulti(dst, p)
}

// encodeMulti appends the tokens of a pre-token that is not a single token,
// from the cache or by byte-pair merging.
func (t *CL100K) encodeMulti(dst []int, p []byte) []int {
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
		if tok >= 0 && tok+1 < len(t.tokOff) {
			dst = append(dst, t.tokBytes[t.tokOff[tok]:t.tokOff[tok+1]]...)
		} else if s, ok := cl100kSpecial(tok); ok {
			dst = append(dst, s...)
		}
	}
	return dst
}
