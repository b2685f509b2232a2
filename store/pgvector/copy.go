package pgvector

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// copySignature starts every binary COPY stream: the 11-byte signature, a
// 32-bit flags field and a 32-bit header extension length, both zero.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// pgEpoch is PostgreSQL's timestamp origin, 2000-01-01 UTC.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// copyColumns are the columns a part is copied into, in the order encodeCopy writes them.
const copyColumns = "doc_id, chunk_index, chunk_sha256, text, model, embedded_at, embedding"

// encodeCopy writes rows as a binary COPY stream (header, one tuple per row,
// trailer) into buf. half encodes the embedding as halfvec, else vector.
//
// pgvector's binary formats (vector_send, halfvec_send): int16 dimensions,
// int16 unused (0), then each element big-endian as float32 (vector) or
// IEEE 754 binary16 (halfvec).
func encodeCopy(buf *bytes.Buffer, rows []checkpoint.Row, half bool) {
	elem := 4
	if half {
		elem = 2
	}
	// One allocation for the whole part: every field is appended in place
	// (writing 4 bytes at a time through the buffer cost more than the rest).
	size := len(copySignature) + 2
	for i := range rows {
		r := &rows[i]
		size += 2 + 7*4 + len(r.DocID) + 4 + len(r.ChunkSHA256) + len(r.Text) + len(r.Model) + 8 + 4 + elem*len(r.Embedding)
	}
	buf.Grow(size)
	be := binary.BigEndian
	str := func(b []byte, s string) []byte { return append(be.AppendUint32(b, uint32(len(s))), s...) }
	b := append(buf.AvailableBuffer(), copySignature...)
	for i := range rows {
		r := &rows[i]
		b = be.AppendUint16(b, 7)
		b = str(b, r.DocID)
		b = be.AppendUint32(b, 4)
		b = be.AppendUint32(b, uint32(r.ChunkIndex))
		b = str(b, r.ChunkSHA256)
		b = str(b, r.Text)
		b = str(b, r.Model)
		b = be.AppendUint32(b, 8)
		b = be.AppendUint64(b, uint64(r.EmbeddedAt.Sub(pgEpoch).Microseconds()))
		n := len(r.Embedding)
		b = be.AppendUint32(b, uint32(4+elem*n))
		b = be.AppendUint16(b, uint16(n))
		b = be.AppendUint16(b, 0)
		for _, f := range r.Embedding {
			if half {
				b = be.AppendUint16(b, Float16(f))
			} else {
				b = be.AppendUint32(b, math.Float32bits(f))
			}
		}
	}
	b = be.AppendUint16(b, 0xffff)
	buf.Write(b)
}

// Float16 converts f to IEEE 754 binary16 bits, rounding to nearest even, as
// PostgreSQL's halfvec input does; values beyond the half range become ±Inf.
func Float16(f float32) uint16 {
	x := math.Float32bits(f)
	sign := uint16(x>>16) & 0x8000
	exp := int((x >> 23) & 0xff)
	mant := x & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127+15 >= 0x1f: // overflow
		return sign | 0x7c00
	case exp-127+15 <= 0: // subnormal half or zero
		e := exp - 127 + 15
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := uint16(m >> shift)
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | half
	}
	e := uint16(exp - 127 + 15)
	half := sign | e<<10 | uint16(mant>>13)
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the right rounding
	}
	return half
}

// Float32 converts binary16 bits to float32 exactly.
func Float32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		f := float32(mant) / 1024 / 16384 // mant × 2^-24
		if sign != 0 {
			return -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}
