package embedder

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
)

// SimulatedVector returns the unit vector the simulator serves for text under
// model and dimensions: a ChaCha8 stream seeded with
// sha256(model, 0x00, dimensions as 8 little-endian bytes, text), mapped to
// [-1, 1) and normalised to length 1. The same inputs give the same vector on
// every platform. It is safe for concurrent use.
func SimulatedVector(model string, dimensions int, text string) []float32 {
	h := sha256.New()
	h.Write([]byte(model))
	var b [9]byte
	binary.LittleEndian.PutUint64(b[1:], uint64(dimensions))
	h.Write(b[:])
	h.Write([]byte(text))
	var seed [32]byte
	h.Sum(seed[:0])
	rng := rand.NewChaCha8(seed)
	v := make([]float64, dimensions)
	var sum float64
	for i := range v {
		x := float64(int64(rng.Uint64())) / (1 << 63)
		v[i] = x
		sum += x * x
	}
	out := make([]float32, dimensions)
	norm := math.Sqrt(sum)
	if norm == 0 {
		return out
	}
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// appendFloatJSON appends v as a JSON array of float32 values in their
// shortest exact form.
func appendFloatJSON(dst []byte, v []float32) []byte {
	dst = append(dst, '[')
	for i, f := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
	}
	return append(dst, ']')
}

// appendBase64 appends v as OpenAI's base64 encoding: little-endian float32
// bytes, standard alphabet, with padding, in quotes.
func appendBase64(dst []byte, v []float32) []byte {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, '"')
}
