package embedder

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// ErrInvalidVector matches a *ProviderError for an answer whose vectors
// cannot be checkpointed: a count other than the inputs', a length other than
// the expected dimensions, a NaN or infinite element, or a zero vector. It
// also matches [ErrMalformedResponse], so [Retrying] retries it within its
// budget of attempts.
var ErrInvalidVector = errors.New("invalid vector in the provider's answer")

// invalidVector wraps both sentinels.
type invalidVector struct{ msg string }

func (e *invalidVector) Error() string { return e.msg }

// Is matches ErrInvalidVector and ErrMalformedResponse.
func (e *invalidVector) Is(target error) bool {
	return target == ErrInvalidVector || target == ErrMalformedResponse
}

// Validating checks every answer of the embedder it wraps before passing it
// on: one vector per input, each of the expected length, every element finite,
// and a non-zero norm. A bad answer becomes a *[ProviderError] (status 200,
// matching [ErrInvalidVector] and [ErrMalformedResponse]) naming the input
// and its chunk, so that a [Retrying] above it sends the request again and,
// once its attempts are spent, returns the error: nothing bad reaches the
// checkpoint.
//
// Place it under the retry decorator: Retrying(Validating(RateLimited(provider))).
// It is safe for concurrent use.
type Validating struct {
	inner Embedder
	dims  int
}

var _ Embedder = (*Validating)(nil)

// NewValidating wraps inner. dims is the vector length expected when a
// request names no Dimensions (the manifest's); 0 checks only that the
// vectors of an answer share one non-zero length.
func NewValidating(inner Embedder, dims int) (*Validating, error) {
	if inner == nil {
		return nil, errors.New("validating embedder: nil embedder")
	}
	if dims < 0 {
		return nil, fmt.Errorf("validating embedder: dimensions %d is negative", dims)
	}
	return &Validating{inner: inner, dims: dims}, nil
}

// Embed embeds req with the wrapped embedder and checks the answer.
func (v *Validating) Embed(ctx context.Context, req *Request) (*Result, error) {
	res, err := v.inner.Embed(ctx, req)
	if err != nil {
		return nil, err
	}
	want := req.Dimensions
	if want == 0 {
		want = v.dims
	}
	if err := CheckResult(req, res, want); err != nil {
		return nil, err
	}
	return res, nil
}

// CheckResult checks that res holds one vector per input of req, each of
// length dims (when dims > 0; otherwise all of the first vector's non-zero
// length), finite and of non-zero norm. It returns nil or a *[ProviderError]
// matching [ErrInvalidVector] that names the first bad input's chunk.
func CheckResult(req *Request, res *Result, dims int) error {
	fail := func(idx int, format string, args ...any) error {
		pe := &ProviderError{Status: 200, Err: &invalidVector{msg: ErrInvalidVector.Error() + ": " + fmt.Sprintf(format, args...)}}
		if res != nil {
			pe.RateLimit = res.RateLimit
		}
		pe.attribute(req, idx)
		return pe
	}
	if res == nil {
		return fail(-1, "no result")
	}
	if len(res.Vectors) != len(req.Inputs) {
		return fail(-1, "%d vectors for %d inputs", len(res.Vectors), len(req.Inputs))
	}
	if dims <= 0 && len(res.Vectors) > 0 {
		dims = len(res.Vectors[0])
	}
	for i, vec := range res.Vectors {
		if err := checkVector(vec, dims); err != "" {
			return fail(i, "vector %d %s", i, err)
		}
	}
	return nil
}

// checkVector returns why vec cannot be stored, or "".
func checkVector(vec []float32, dims int) string {
	if len(vec) == 0 || len(vec) != dims {
		return fmt.Sprintf("has %d dimensions, want %d", len(vec), dims)
	}
	var sum float64
	for j, x := range vec {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprintf("has %v at element %d", x, j)
		}
		sum += f * f
	}
	if sum == 0 {
		return "is all zeros"
	}
	return ""
}
