// Package tokenizer counts, encodes and decodes cl100k_base tokens exactly as
// OpenAI's official tokenizer (openai/tiktoken, encode_ordinary) does.
//
// Input text must already be valid UTF-8 (see corpus.ToValidUTF8): the
// corpus package applies the project's one text rule before any text reaches
// a tokenizer. Special-token strings such as <|endoftext|> are ordinary text.
//
// CL100K (what Default returns) is a hand-written scanner for cl100k_base's
// pre-tokenization regex over generated Unicode 16.0 tables (the official
// tokenizer's version; Go 1.26's unicode package is 15.0), followed by the
// byte-pair merge and a bounded piece cache. Reference wraps
// github.com/pkoukk/tiktoken-go, the baseline CL100K is tested against.
//
// The BPE ranks come from github.com/pkoukk/tiktoken-go-loader, which embeds
// them, so nothing is downloaded at run time. It imports nothing of ours.
package tokenizer

//go:generate sh internal/gen/gen.sh

import (
	"fmt"
	"sync"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Tokenizer encodes text into cl100k_base token ids.
// Implementations are safe for concurrent use.
type Tokenizer interface {
	// Encode appends the tokens of text to dst and returns the extended slice.
	Encode(dst []int, text []byte) []int
	// Count returns the number of tokens of text.
	Count(text []byte) int
	// Decode appends the bytes of tokens to dst and returns the extended slice.
	Decode(dst []byte, tokens []int) []byte
}

// EncodingCL100K is the name of the only encoding this package implements.
const EncodingCL100K = "cl100k_base"

var loaderOnce sync.Once

// installOfflineLoader makes pkoukk/tiktoken-go read its BPE files from the
// offline loader instead of downloading them. The library only offers a
// package-level setter, so it is called once.
func installOfflineLoader() {
	loaderOnce.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
}

// Reference is the github.com/pkoukk/tiktoken-go encoder. It is exact except on
// code points whose Unicode class changed after Go's unicode tables (15.0).
// It is the baseline the fast tokenizer is tested and benchmarked against.
type Reference struct {
	enc *tiktoken.Tiktoken
}

var _ Tokenizer = (*Reference)(nil)

// NewReference loads the cl100k_base ranks from the offline loader.
func NewReference() (*Reference, error) {
	installOfflineLoader()
	enc, err := tiktoken.GetEncoding(EncodingCL100K)
	if err != nil {
		return nil, fmt.Errorf("loading %s from the offline loader: %w", EncodingCL100K, err)
	}
	return &Reference{enc: enc}, nil
}

// Encode appends the tokens of text to dst.
func (r *Reference) Encode(dst []int, text []byte) []int {
	return append(dst, r.enc.EncodeOrdinary(string(text))...)
}

// Count returns the number of tokens of text.
func (r *Reference) Count(text []byte) int {
	return len(r.enc.EncodeOrdinary(string(text)))
}

// Decode appends the bytes of tokens to dst.
func (r *Reference) Decode(dst []byte, tokens []int) []byte {
	return append(dst, r.enc.Decode(tokens)...)
}

var (
	defaultOnce sync.Once
	defaultTok  Tokenizer
	defaultErr  error
)

// Default returns the tokenizer the rest of reembed uses, loaded once: the
// fast, exact CL100K. Safe for concurrent use.
func Default() (Tokenizer, error) {
	defaultOnce.Do(func() {
		defaultTok, defaultErr = NewCL100K()
	})
	return defaultTok, defaultErr
}
