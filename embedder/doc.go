// Package embedder turns batches of chunk texts into vectors through an
// OpenAI-compatible embeddings API, without going over the provider's rate
// limits and without paying twice for a chunk.
//
// [Embedder] is the one interface: embed a batch, return the vectors plus the
// usage the provider billed. Implementations and decorators:
//
//   - [OpenAI] talks to any OpenAI-compatible /embeddings endpoint (OpenAI,
//     Azure OpenAI, Ollama, vLLM, TEI, Infinity, a LiteLLM proxy) through
//     github.com/sashabaranov/go-openai, capturing the response headers in its
//     own http.RoundTripper because go-openai drops them on base64 responses.
//   - [Simulator] is a simulated provider: an http.Handler that serves the
//     OpenAI embeddings API (deterministic vectors, exact cl100k usage, RPM and
//     TPM limits answered with 429 and x-ratelimit-* headers, seeded faults and
//     a billing ledger), and an in-process Embedder with the same rules.
//   - [RateLimited] holds requests back so that neither requests per minute nor
//     tokens per minute are exceeded, corrected by the x-ratelimit-* headers.
//   - [Retrying] retries 429s (honouring retry-after), 5xx, timeouts and resets
//     within a bounded budget, lowers concurrency on 429 and recovers it, and
//     never retries a 4xx that would fail again.
//
// Stack them so that every retry pays for rate-limit tokens again:
//
//	Retrying(RateLimited(OpenAI or Simulator))
//
// API keys are [APIKey] values, which print, log and marshal as "[redacted]".
//
// Imports: nothing of reembed's but corpus/tokenizer (for the simulator's
// exact usage counts). Model limits come in as plain config fields.
package embedder
