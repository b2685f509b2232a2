package planner_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/reembed/reembed/planner"
)

// requestsOf packs chunks with Add and returns the requests as lists of chunk
// token counts.
func requestsOf(p *planner.Packer, chunks []int) [][]int {
	var out [][]int
	for _, c := range chunks {
		if p.Add(c) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], c)
	}
	return out
}

func TestPacker(t *testing.T) {
	tests := []struct {
		name                                 string
		maxInputs, maxTokens, batchSize, tpm int
		chunks                               []int
		want                                 [][]int
	}{
		{"InputsCap", 3, 0, 0, 0, []int{1, 1, 1, 1, 1, 1, 1}, [][]int{{1, 1, 1}, {1, 1, 1}, {1}}},
		{"TokensCapExactFitStays", 10, 100, 0, 0, []int{60, 40, 1}, [][]int{{60, 40}, {1}}},
		{"TokensCapOneOverStartsRequest", 10, 100, 0, 0, []int{60, 41}, [][]int{{60}, {41}}},
		{"ChunkOverTokensCapGoesAlone", 10, 100, 0, 0, []int{5, 150, 5}, [][]int{{5}, {150}, {5}}},
		{"NoTokenLimit", 4, 0, 0, 0, []int{1_000_000, 1_000_000}, [][]int{{1_000_000, 1_000_000}}},
		{"BatchSizeLowersInputs", 2048, 0, 2, 0, []int{1, 2, 3, 4, 5}, [][]int{{1, 2}, {3, 4}, {5}}},
		{"BatchSizeAboveModelMaxIgnored", 2, 0, 5, 0, []int{1, 2, 3}, [][]int{{1, 2}, {3}}},
		{"TPMLowersTokensPerRequest", 10, 300_000, 0, 100, []int{60, 40, 30, 80}, [][]int{{60, 40}, {30}, {80}}},
		{"TPMAboveRequestLimitIgnored", 10, 100, 0, 1000, []int{60, 50}, [][]int{{60}, {50}}},
		{"TPMCapsUnlimitedRequests", 10, 0, 0, 100, []int{60, 50}, [][]int{{60}, {50}}},
		{"Empty", 10, 100, 0, 0, nil, nil},
		{"OpenAILimits2048Inputs", 2048, 300_000, 0, 0, slices.Repeat([]int{1}, 4097), [][]int{slices.Repeat([]int{1}, 2048), slices.Repeat([]int{1}, 2048), {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planner.NewPacker(tt.maxInputs, tt.maxTokens, tt.batchSize, tt.tpm)
			got := requestsOf(p, tt.chunks)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("requests %v, want %v", got, tt.want)
			}
			if p.Requests() != int64(len(tt.want)) {
				t.Errorf("Requests() = %d, want %d", p.Requests(), len(tt.want))
			}
		})
	}
}

func TestNewPackerLimits(t *testing.T) {
	tests := []struct {
		name                                 string
		maxInputs, maxTokens, batchSize, tpm int
		wantInputs, wantTokens               int
	}{
		{"ModelLimits", 2048, 300_000, 0, 0, 2048, 300_000},
		{"BatchSize", 2048, 300_000, 100, 0, 100, 300_000},
		{"TPMBelowRequestLimit", 2048, 300_000, 0, 150_000, 2048, 150_000},
		{"TPMAboveRequestLimit", 2048, 300_000, 0, 1_000_000, 2048, 300_000},
		{"ZeroInputsBecomesOne", 0, 0, 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planner.NewPacker(tt.maxInputs, tt.maxTokens, tt.batchSize, tt.tpm)
			if p.MaxInputs != tt.wantInputs || p.MaxTokens != tt.wantTokens {
				t.Errorf("limits %d inputs, %d tokens; want %d, %d", p.MaxInputs, p.MaxTokens, tt.wantInputs, tt.wantTokens)
			}
		})
	}
}

// TestAddRepeatedEqualsLoop: packing a sequence n times with AddRepeated
// gives the same requests, and leaves the same state, as calling Add for
// every chunk.
func TestAddRepeatedEqualsLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 1000 {
		maxInputs := 1 + r.IntN(12)
		maxTokens := 0
		if r.IntN(4) != 0 {
			maxTokens = 1 + r.IntN(400)
		}
		seq := make([]int, 1+r.IntN(8))
		for j := range seq {
			seq[j] = 1 + r.IntN(200)
		}
		pre := make([]int, r.IntN(4))
		for j := range pre {
			pre[j] = 1 + r.IntN(200)
		}
		n := r.Int64N(2000)
		naive := planner.NewPacker(maxInputs, maxTokens, 0, 0)
		fast := planner.NewPacker(maxInputs, maxTokens, 0, 0)
		for _, c := range pre {
			naive.Add(c)
			fast.Add(c)
		}
		for range n {
			for _, c := range seq {
				naive.Add(c)
			}
		}
		fast.AddRepeated(seq, n)
		if naive.Requests() != fast.Requests() {
			t.Fatalf("case %d: limits %d inputs, %d tokens, pre %v, %v × %d: AddRepeated gives %d requests, the loop %d",
				i, maxInputs, maxTokens, pre, seq, n, fast.Requests(), naive.Requests())
		}
		// The same state: the same chunks afterwards start requests alike.
		for _, c := range append(slices.Clone(seq), 1, 1, 1) {
			if a, b := naive.Add(c), fast.Add(c); a != b {
				t.Fatalf("case %d: after AddRepeated, Add(%d) starts a request: %v, after the loop: %v", i, c, b, a)
			}
		}
	}
}

// TestAddRepeatedMillionDocuments: the what-if case of a million documents of
// three chunks each (1,000 tokens cut at 512 with overlap 64) packs exactly as
// 3M calls of Add do.
func TestAddRepeatedMillionDocuments(t *testing.T) {
	seq := []int{512, 512, 104}
	fast := planner.NewPacker(2048, 300_000, 0, 0)
	fast.AddRepeated(seq, 1_000_000)
	naive := planner.NewPacker(2048, 300_000, 0, 0)
	for range 1_000_000 {
		for _, c := range seq {
			naive.Add(c)
		}
	}
	if fast.Requests() != naive.Requests() {
		t.Errorf("AddRepeated: %d requests, the loop: %d", fast.Requests(), naive.Requests())
	}
}
