package embeddertest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"sync/atomic"

	"github.com/reembed/reembed/embedder"
)

// Lie is how a [Liar] corrupts its answers.
type Lie string

// The lies a [Liar] tells, each in an otherwise well-formed 200 answer.
const (
	LieNaN       Lie = "nan"        // the first element of every vector is NaN
	LieInf       Lie = "inf"        // the last element of every vector is +Inf
	LieZero      Lie = "zero"       // every vector is all zeros
	LieShort     Lie = "short"      // every vector has one element too few
	LieDupIndex  Lie = "dup-index"  // every item claims index 0
	LieFewer     Lie = "fewer"      // one vector fewer than inputs
	LieHonest    Lie = ""           // tells the truth
	LieShiftedIx Lie = "shifted-ix" // indexes 1..n instead of 0..n-1
)

// Liar is an OpenAI-compatible /embeddings handler whose 200 answers lie
// (NaN, infinite, zero or short vectors, lying indexes) for the first
// LieTimes requests (all when LieTimes is 0), then tells the truth. Vectors
// are [embedder.SimulatedVector]s of the requested dimensions (default
// Dimensions, 1536 if 0), in base64 when the request asks for it. Safe for
// concurrent use.
type Liar struct {
	Lie        Lie
	LieTimes   int
	Dimensions int
	calls      atomic.Int64
}

// Calls returns how many requests it answered.
func (l *Liar) Calls() int { return int(l.calls.Load()) }

// ServeHTTP answers one embeddings request.
func (l *Liar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(l.calls.Add(1))
	var req struct {
		Input          []string `json:"input"`
		Model          string   `json:"model"`
		Dimensions     int      `json:"dimensions"`
		EncodingFormat string   `json:"encoding_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	dims := req.Dimensions
	if dims == 0 {
		dims = l.Dimensions
	}
	if dims == 0 {
		dims = 1536
	}
	lie := l.Lie
	if l.LieTimes > 0 && n > l.LieTimes {
		lie = LieHonest
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	var data []item
	tokens := 0
	for i, text := range req.Input {
		tokens += len(text)/4 + 1
		v := embedder.SimulatedVector(req.Model, dims, text)
		idx := i
		switch lie {
		case LieNaN:
			v[0] = float32(math.NaN())
		case LieInf:
			v[len(v)-1] = float32(math.Inf(1))
		case LieZero:
			clear(v)
		case LieShort:
			v = v[:len(v)-1]
		case LieDupIndex:
			idx = 0
		case LieShiftedIx:
			idx = i + 1
		case LieFewer:
			if i == len(req.Input)-1 {
				continue
			}
		}
		var emb any = v
		if req.EncodingFormat == "base64" {
			raw := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(raw)
		} else if lie == LieNaN || lie == LieInf {
			// JSON has no NaN or Inf: such a lie can only travel in base64.
			emb = v[:0]
		}
		data = append(data, item{Object: "embedding", Index: idx, Embedding: emb})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}
