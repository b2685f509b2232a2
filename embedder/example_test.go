package embedder_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/reembed/reembed/embedder"
)

// The production stack against the simulated provider over HTTP: every retry
// pays for rate-limit tokens again, and the ledger shows what was billed.
func Example() {
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{RPM: 3000, TPM: 1_000_000})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()

	client, err := embedder.NewOpenAI(embedder.OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "text-embedding-3-small", Dimensions: 256})
	if err != nil {
		panic(err)
	}
	limited, err := embedder.NewRateLimited(client, embedder.RateLimitConfig{RPM: 3000, TPM: 1_000_000, MaxRequestTokens: 300_000})
	if err != nil {
		panic(err)
	}
	e, err := embedder.NewRetrying(limited, embedder.RetryConfig{MaxConcurrency: 8})
	if err != nil {
		panic(err)
	}
	res, err := e.Embed(context.Background(), &embedder.Request{Inputs: []embedder.Input{
		{Text: "hello world", Tokens: 2, DocID: "greeting.txt", ChunkIndex: 0},
		{Text: "disaster recovery", Tokens: 3, DocID: "greeting.txt", ChunkIndex: 1},
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(res.Vectors), "vectors of", len(res.Vectors[0]), "dimensions,", res.Usage.PromptTokens, "tokens billed")
	fmt.Println("remaining requests this minute:", res.RateLimit.RemainingRequests)
	fmt.Println("ledger:", sim.Ledger().Totals.PromptTokens, "tokens,", sim.Ledger().Inputs[embedder.TextSHA256("hello world")], "time(s) for \"hello world\"")
	// Output:
	// 2 vectors of 256 dimensions, 5 tokens billed
	// remaining requests this minute: 2999
	// ledger: 5 tokens, 1 time(s) for "hello world"
}
