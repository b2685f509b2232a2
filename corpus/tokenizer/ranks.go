package tokenizer

import (
	"encoding/binary"
	"math/bits"
)

// inlineMax is the longest token (bytes) kept inline in the rank table;
// longer ones (a few hundred in cl100k_base) live in a map.
const inlineMax = 16

// rankTable maps token bytes to ranks, in tables sized by key length so
// that the hot ones stay small: a direct table for one- and two-byte tokens
// (256 KB), open-addressing tables with linear probing for 3–8 bytes (one
// packed word per key, 1.5 MB) and 9–16 bytes (two words, 0.8 MB), and a map
// for the few hundred longer tokens. No pointers for the garbage collector to
// scan. Read-only after newRankTable, so safe for concurrent use.
type rankTable struct {
	filter     [1 << (filterBits - 6)]uint64 // bit keyHash>>filterShift of every 3–16 byte token
	pair       [1 << 16]int32                // rank of bytes b0 b1 at b0 | b1<<8, or noRank
	single     [256]int32                    // rank of each byte
	short      []shortSlot                   // 3–8 byte tokens
	shortShift uint                          // 64 - log2(len(short))
	mid        []rankSlot                    // 9–16 byte tokens
	midShift   uint                          // 64 - log2(len(mid))
	long       map[string]int32
}

// filterBits is log2 of the bits of rankTable.filter (128 KB, small enough
// to stay in a CPU's L2 cache): about 9% of its bits are set, so most
// lookups of byte strings that are not tokens end there without touching
// the large tables.
const (
	filterBits  = 20
	filterShift = 20 // bits 20..39 of the hash, not those that index the tables
)

// filterBit returns the filter bit index of hash h.
func filterBit(h uint64) uint64 {
	return (h >> filterShift) & (1<<filterBits - 1)
}

// shortSlot is a 3–8 byte token: its packed key (lo | hi<<32, see packKey)
// and rank+1 | len<<24 (0 = empty).
type shortSlot struct {
	lo, hi, meta uint32
}

// rankSlot is a 9–16 byte token: its packed key and rank+1 | len<<24
// (0 = empty).
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
// below 1<<24-1.
func newRankTable(ranks map[string]int) *rankTable {
	nShort, nMid := 0, 0
	for tok := range ranks {
		switch n := len(tok); {
		case n >= 3 && n <= 8:
			nShort++
		case n > 8 && n <= inlineMax:
			nMid++
		}
	}
	t := &rankTable{long: make(map[string]int32)}
	t.short, t.shortShift = make([]shortSlot, tableSize(nShort)), tableShift(nShort)
	t.mid, t.midShift = make([]rankSlot, tableSize(nMid)), tableShift(nMid)
	for i := range t.pair {
		t.pair[i] = noRank
	}
	for i := range t.single {
		t.single[i] = noRank
	}
	for tok, r := range ranks {
		n := len(tok)
		k0, k1 := packKey([]byte(tok))
		h := keyHash(k0, k1, n)
		meta := uint32(r+1) | uint32(n)<<24
		if n > 2 && n <= inlineMax {
			t.filter[filterBit(h)/64] |= 1 << (filterBit(h) % 64)
		}
		switch {
		case n == 1:
			t.single[tok[0]] = int32(r)
		case n == 2:
			t.pair[uint16(k0)] = int32(r)
		case n <= 8:
			mask := uint64(len(t.short) - 1)
			i := h >> t.shortShift
			for t.short[i].meta != 0 {
				i = (i + 1) & mask
			}
			t.short[i] = shortSlot{uint32(k0), uint32(k0 >> 32), meta}
		case n <= inlineMax:
			mask := uint64(len(t.mid) - 1)
			i := h >> t.midShift
			for t.mid[i].meta != 0 {
				i = (i + 1) & mask
			}
			t.mid[i] = rankSlot{k0, k1, meta}
		default:
			t.long[tok] = int32(r)
		}
	}
	return t
}

// tableSize returns the number of slots for n keys: a power of two, with a
// load factor of at most 0.625.
func tableSize(n int) int {
	return 1 << (64 - tableShift(n))
}

func tableShift(n int) uint {
	size := 2
	for size*5 < n*8 {
		size <<= 1
	}
	return uint(64 - bits.TrailingZeros(uint(size)))
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
	switch n {
	case 0:
		return noRank
	case 1:
		return t.single[b[0]]
	case 2:
		return t.pair[uint16(b[0])|uint16(b[1])<<8]
	}
	k0, k1 := packKey(b)
	return t.getPacked(k0, k1, n, keyHash(k0, k1, n))
}

// getPacked returns the rank of the token packed as k0, k1 with 1 ≤ n ≤
// inlineMax bytes and hash h = keyHash(k0, k1, n), or noRank.
func (t *rankTable) getPacked(k0, k1 uint64, n int, h uint64) int32 {
	want := uint32(n) << 24
	switch {
	case n == 1:
		return t.single[uint8(k0)]
	case n == 2:
		return t.pair[uint16(k0)]
	}
	if bit := filterBit(h); t.filter[bit/64]&(1<<(bit%64)) == 0 {
		return noRank
	}
	if n <= 8 {
		mask := uint64(len(t.short) - 1)
		lo, hi := uint32(k0), uint32(k0>>32)
		for i := h >> t.shortShift; ; i = (i + 1) & mask {
			s := &t.short[i]
			if s.meta == 0 {
				return noRank
			}
			if s.lo == lo && s.hi == hi && s.meta&0xFF000000 == want {
				return int32(s.meta&0xFFFFFF) - 1
			}
		}
	}
	mask := uint64(len(t.mid) - 1)
	for i := h >> t.midShift; ; i = (i + 1) & mask {
		s := &t.mid[i]
		if s.meta == 0 {
			return noRank
		}
		if s.k0 == k0 && s.k1 == k1 && s.meta&0xFF000000 == want {
			return int32(s.meta&0xFFFFFF) - 1
		}
	}
}
