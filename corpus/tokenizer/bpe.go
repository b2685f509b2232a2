package tokenizer

import "math"

// noRank marks a pair of parts whose concatenation is not a token.
const noRank = math.MaxInt32

// smallPiece is the longest piece merged by the quadratic scan; longer
// pieces use a heap. Both merge the same pairs in the same order.
const smallPiece = 64

// rankOf returns the rank (token id) of b, or noRank.
func (t *CL100K) rankOf(b []byte) int32 {
	return t.ranks.get(b)
}

// bpe appends the tokens of the piece p, which has two or more bytes and is
// not itself a token. It is tiktoken's byte-pair merge: start from single
// bytes and repeatedly merge the adjacent pair whose concatenation has the
// lowest rank, the leftmost one on a tie, until no pair is a token.
func (t *CL100K) bpe(dst []int, p []byte) []int {
	if len(p) > smallPiece {
		return t.bpeLong(dst, p)
	}
	// Part k is p[start[k]:start[k+1]] with token tok[k]; rank[k] is the
	// rank of part k merged with part k+1.
	var (
		start [smallPiece + 1]int32
		tok   [smallPiece]int32
		rank  [smallPiece]int32
	)
	n := len(p)
	for k := 0; k < n; k++ {
		start[k] = int32(k)
		tok[k] = t.ranks.single[p[k]]
	}
	start[n] = int32(n)
	for k := 0; k < n-1; k++ {
		rank[k] = t.ranks.pair[uint16(p[k])|uint16(p[k+1])<<8]
	}
	for n > 1 {
		best, m := int32(noRank), -1
		for k := 0; k < n-1; k++ {
			if rank[k] < best {
				best, m = rank[k], k
			}
		}
		if m < 0 {
			break
		}
		// Merge parts m and m+1.
		tok[m] = best
		copy(start[m+1:n], start[m+2:n+1])
		copy(tok[m+1:n-1], tok[m+2:n])
		copy(rank[m+1:n-1], rank[m+2:n])
		n--
		if m+1 < n {
			rank[m] = t.rankOf(p[start[m]:start[m+2]])
		} else {
			rank[m] = noRank
		}
		if m > 0 {
			rank[m-1] = t.rankOf(p[start[m-1]:start[m+1]])
		}
	}
	for k := 0; k < n; k++ {
		dst = append(dst, int(tok[k]))
	}
	return dst
}

// bpeLong is bpe for long pieces in O(n log n): parts are a linked list of
// start offsets and candidate merges sit in a min-heap keyed by (rank,
// start), so the heap's minimum is the lowest rank, leftmost on a tie.
// Entries whose pair has changed since they were pushed are skipped.
func (t *CL100K) bpeLong(dst []int, p []byte) []int {
	n := int32(len(p))
	next := make([]int32, n+1) // part at k is p[k:next[k]]
	prev := make([]int32, n)
	rank := make([]int32, n) // rank of the part at k merged with the next
	h := make(mergeHeap, 0, n)
	for k := int32(0); k < n; k++ {
		next[k], prev[k], rank[k] = k+1, k-1, noRank
	}
	next[n] = n
	for k := int32(0); k+1 < n; k++ {
		if r := t.rankOf(p[k : k+2]); r != noRank {
			rank[k] = r
			h.push(uint64(r)<<32 | uint64(k))
		}
	}
	for len(h) > 0 {
		e := h.pop()
		r, k := int32(e>>32), int32(uint32(e))
		if rank[k] != r {
			continue // stale: the part at k died or changed
		}
		m := next[k]
		next[k] = next[m]
		if next[m] < n {
			prev[next[m]] = k
		}
		rank[m] = noRank
		rank[k] = noRank
		if next[k] < n {
			if r := t.rankOf(p[k:next[next[k]]]); r != noRank {
				rank[k] = r
				h.push(uint64(r)<<32 | uint64(k))
			}
		}
		if k > 0 {
			pk := prev[k]
			rank[pk] = noRank
			if r := t.rankOf(p[pk:next[k]]); r != noRank {
				rank[pk] = r
				h.push(uint64(r)<<32 | uint64(pk))
			}
		}
	}
	for k := int32(0); k < n; k = next[k] {
		dst = append(dst, int(t.rankOf(p[k:next[k]])))
	}
	return dst
}

// mergeHeap is a binary min-heap of rank<<32 | start.
type mergeHeap []uint64

func (h *mergeHeap) push(x uint64) {
	s := append(*h, x)
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if s[parent] <= x {
			break
		}
		s[i] = s[parent]
		i = parent
	}
	s[i] = x
	*h = s
}

func (h *mergeHeap) pop() uint64 {
	s := *h
	top := s[0]
	x := s[len(s)-1]
	s = s[:len(s)-1]
	i := 0
	for {
		c := 2*i + 1
		if c >= len(s) {
			break
		}
		if c+1 < len(s) && s[c+1] < s[c] {
			c++
		}
		if x <= s[c] {
			break
		}
		s[i] = s[c]
		i = c
	}
	if len(s) > 0 {
		s[i] = x
	}
	*h = s
	return top
}
