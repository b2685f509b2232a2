package tokenizer

import (
	"hash/maphash"
	"sync/atomic"
)

const (
	// cacheSlots is the number of entries the piece cache holds at most.
	cacheSlots = 1 << 15
	// cacheMaxPiece is the longest piece (bytes) the cache stores.
	cacheMaxPiece = 256
	// cacheMaxTokens is the most tokens of a piece the cache stores.
	cacheMaxTokens = 64
)

// pieceCache maps pieces that are not single tokens to their tokens. It is
// direct-mapped: a piece's hash picks one slot, and a new entry replaces
// whatever was there, so it holds at most cacheSlots entries of at most
// cacheMaxPiece bytes and cacheMaxTokens tokens: at most 18 MB, a few MB on
// real text. Safe for concurrent use: entries are immutable and slots are
// atomic pointers.
type pieceCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	key  string
	toks []uint32
}

func newPieceCache() *pieceCache {
	return &pieceCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cacheEntry], cacheSlots)}
}

// get returns the cached tokens of p, or nil.
func (c *pieceCache) get(p []byte) []uint32 {
	e := c.slots[maphash.Bytes(c.seed, p)&(cacheSlots-1)].Load()
	if e != nil && e.key == string(p) {
		return e.toks
	}
	return nil
}

// put stores toks as the tokens of p when p is short enough.
func (c *pieceCache) put(p []byte, toks []int) {
	if len(p) > cacheMaxPiece || len(toks) > cacheMaxTokens {
		return
	}
	e := &cacheEntry{key: string(p), toks: make([]uint32, len(toks))}
	for i, t := range toks {
		e.toks[i] = uint32(t)
	}
	c.slots[maphash.Bytes(c.seed, p)&(cacheSlots-1)].Store(e)
}

// hotBits is log2 of the number of hotCache entries.
const hotBits = 12

// hotCache is a small direct-mapped cache of piece (3 to inlineMax bytes)
// → its token if it is one, and its token count: 96 KB, which stays in the
// CPU's L2 cache while the large tables do not. Count and Encode borrow one
// per call from a pool; it is never shared.
type hotCache [1 << hotBits]hotEntry

// hotEntry is a packed piece (see packKey), its length (0 = empty), its
// token count and, when that is 1, its token.
type hotEntry struct {
	k0, k1 uint64
	tok    int32
	count  uint8
	n      uint8
}
