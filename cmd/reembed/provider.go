package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/pricing"
)

// providerFlags choose and configure the embedding provider.
type providerFlags struct {
	provider        string
	baseURL         string
	apiKeyEnv       string
	azureAPIVersion string
	azureDeployment string
	encoding        string
	rpm, tpm        int
	simLatency      time.Duration
	timeout         time.Duration
	maxRetryWait    time.Duration
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.provider, "provider", "simulated", "embedding provider: simulated (in-process, no key, no network) or openai (any OpenAI-compatible server)")
	fs.StringVar(&p.baseURL, "base-url", "", "API root of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (default https://api.openai.com/v1)")
	fs.StringVar(&p.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "environment variable holding the provider API key (never logged)")
	fs.StringVar(&p.azureAPIVersion, "azure-api-version", "", "Azure OpenAI: api-version (with --azure-deployment and --base-url https://NAME.openai.azure.com)")
	fs.StringVar(&p.azureDeployment, "azure-deployment", "", "Azure OpenAI: deployment name")
	fs.StringVar(&p.encoding, "encoding-format", "base64", "vector encoding requested from the provider: base64 or float")
	fs.IntVar(&p.rpm, "rpm", 3000, "requests per minute of the key or project (the limiter never exceeds it; response headers refine it)")
	fs.IntVar(&p.tpm, "tpm", 1_000_000, "tokens per minute of the key or project")
	fs.DurationVar(&p.simLatency, "sim-latency", 0, "simulated provider: latency added to each request")
	fs.DurationVar(&p.timeout, "request-timeout", 2*time.Minute, "timeout of one provider request (retried)")
	fs.DurationVar(&p.maxRetryWait, "max-retry-wait", 5*time.Minute, "keep retrying a batch that fails with 5xx, timeouts or resets for this long (rides out an outage) before giving up; one wait the provider asks for (retry-after) is capped at 2m")
}

// build returns the embedder stack Retrying(Validating(RateLimited(provider))).
func (p *providerFlags) build(e *env, model pricing.Model, dims, concurrency int, logger *slog.Logger) (embedder.Embedder, error) {
	if p.rpm < 0 || p.tpm < 0 {
		return nil, usagef("--rpm and --tpm must not be negative")
	}
	var base embedder.Embedder
	switch p.provider {
	case "simulated":
		if p.baseURL != "" {
			return nil, usagef("--base-url: the in-process simulated provider takes none (use --provider openai for a server such as 'reembed simulate')")
		}
		sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: model.Name, Latency: p.simLatency,
			DefaultDimensions: model.DefaultDimensions, MaxInputs: model.MaxInputsPerRequest,
			MaxInputTokens: model.MaxTokensPerInput, MaxRequestTokens: model.MaxTokensPerRequest, Logger: logger})
		if err != nil {
			return nil, err
		}
		base = sim
	case "openai":
		key := embedder.APIKey(e.getenv(p.apiKeyEnv))
		if key == "" && p.baseURL == "" {
			return nil, usagef("--api-key-env: environment variable %s is empty (set it, or use --provider simulated)", p.apiKeyEnv)
		}
		if p.encoding != "base64" && p.encoding != "float" {
			return nil, usagef("--encoding-format %q: want base64 or float", p.encoding)
		}
		cfg := embedder.OpenAIConfig{BaseURL: p.baseURL, Model: model.Name, Dimensions: dims, APIKey: key,
			EncodingFormat: p.encoding, MaxInputTokens: model.MaxTokensPerInput, Timeout: p.timeout}
		if p.azureAPIVersion != "" || p.azureDeployment != "" {
			if p.azureAPIVersion == "" || p.azureDeployment == "" || p.baseURL == "" {
				return nil, usagef("--azure-api-version, --azure-deployment and --base-url go together")
			}
			cfg.Azure = &embedder.AzureConfig{APIVersion: p.azureAPIVersion, Deployment: p.azureDeployment}
		}
		o, err := embedder.NewOpenAI(cfg)
		if err != nil {
			return nil, &usageError{err}
		}
		base = o
	default:
		return nil, usagef("--provider %q: want simulated or openai", p.provider)
	}
	limited, err := embedder.NewRateLimited(base, embedder.RateLimitConfig{RPM: p.rpm, TPM: p.tpm,
		MaxRequestTokens: model.MaxTokensPerRequest, Logger: logger})
	if err != nil {
		return nil, &usageError{err}
	}
	// Answers are checked under the retries: a bad one is sent again, never checkpointed.
	checked, err := embedder.NewValidating(limited, cmp.Or(dims, model.DefaultDimensions))
	if err != nil {
		return nil, &usageError{err}
	}
	if p.maxRetryWait < 0 {
		return nil, usagef("--max-retry-wait must not be negative")
	}
	retrying, err := embedder.NewRetrying(checked, embedder.RetryConfig{MaxConcurrency: max(concurrency, 1), RetryWindow: p.maxRetryWait, Logger: logger})
	if err != nil {
		return nil, &usageError{err}
	}
	return retrying, nil
}

var errNoOut = errors.New("--out is required: the checkpoint directory")

// parseShard parses "i/N" (0 ≤ i < N).
func parseShard(s string) (index, count int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if _, err := fmt.Sscanf(s, "%d/%d", &index, &count); err != nil || count < 1 || index < 0 || index >= count {
		return 0, 0, usagef("--shard %q: want i/N with 0 <= i < N, e.g. 0/4", s)
	}
	return index, count, nil
}
