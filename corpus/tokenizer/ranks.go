package tokenizer

import (
	"encoding/binary"
	"math/bits"
)

// inlineMax is the longest token (bytes) kept inline in the rank table;
// longer ones (a few hundred in cl100k_base) live in a map.
const inlineMax = 16

// rankTable maps token bytes to ranks. Tokens of up to inlineMax bytes are
// packed into two words and stored in an open-addressing table with linear
// probing, so a lookup is a hash of two words and usually one cache line;
// there are no pointers for the garbage collector to scan. Read-only after
// newRankTable, so safe for concurrent use.
type rankTable struct {
	slots []rankSlot
	shift uint // 64 - log2(len(slots))
	long  map[string]int32
}

// rankSlot is one entry: the packed key and rank+1 | len<<24 (0 = empty).
type rankSlot struct {
	k0, k1 uint64
	meta   uint32
}

// packKey packs b (len ≤ inlineMax) into two words that, with len(b),
// determine b: overlapping little-endian loads of its head and tail.
func packKey(b []byte) (uint64, uint64) {
	switch n := len(b); {
	case n >= 8:
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32, 0
	case n > 0:
		return uint64(b[0]) | uint64(b[n/2])<<8 | uint64(b[n-1])<<16, 0
	}
	return 0, 0
}

// keyHash mixes a packed key and its length into 64 bits; tables use the
// top bits.
func keyHash(k0, k1 uint64, n int) uint64 {
	h := (k0 ^ bits.RotateLeft64(k1, 29) ^ uint64(n)<<58) * 0x9E3779B97F4A7C15
	h ^= h >> 31
	return h * 0xBF58476D1CE4E5B9
}

// newRankTable builds the table from token bytes → rank. Ranks must be
// below 1<<24.
func newRankTable(ranks map[string]int) *rankTable {
	size := 1
	for size < 2*len(ranks) {
		size <<= 1
	}
	t := &rankTable{
		slots: make([]rankSlot, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
		long:  make(map[string]int32),
	}
	mask := uint64(size - 1)
	for tok, r := range ranks {
		if len(tok) > inlineMax {
			t.long[tok] = int32(r)
			continue
		}
		k0, k1 := packKey([]byte(tok))
		i := keyHash(k0, k1, len(tok)) >> t.shift
		for t.slots[i].meta != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = rankSlot{k0, k1, uint32(r+1) | uint32(len(tok))<<24}
	}
	return t
}

// get returns the rank of b, or noRank.
func (t *rankTable) get(b []byte) int32 {
	n := len(b)
	if n > inlineMax {
		if r, ok := t.long[string(b)]; ok {
			return r
		}
		return noRank
	}
	k0, k1 := packKey(b)
	return t.getPacked(k0, k1, n, keyHash(k0, k1, n))
}

// getPacked returns the rank of the token packed as k0, k1 with n ≤
// inlineMax bytes and hash h = keyHash(k0, k1, n), or noRank.
func (t *rankTable) getPacked(k0, k1 uint64, n int, h uint64) int32 {
	mask := uint64(len(t.slots) - 1)
	want := uint32(n) << 24
	for i := h >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.meta == 0 {
			return noRank
		}
		if s.k0 == k0 && s.k1 == k1 && s.meta&0xFF000000 == want {
			return int32(s.meta&0xFFFFFF) - 1
		}
	}
}
