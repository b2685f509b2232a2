package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/reembed/reembed/checkpoint"
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
		sim, err := newModelSimulator(model, p.simLatency, "", logger)
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
		if (p.azureAPIVersion != "" || p.azureDeployment != "") && (p.azureAPIVersion == "" || p.azureDeployment == "" || p.baseURL == "") {
			return nil, usagef("--azure-api-version, --azure-deployment and --base-url go together")
		}
		o, err := newOpenAI(openAIOptions{baseURL: p.baseURL, key: key, encoding: p.encoding, timeout: p.timeout,
			azureAPIVersion: p.azureAPIVersion, azureDeployment: p.azureDeployment}, model, dims)
		if err != nil {
			return nil, &usageError{err}
		}
		base = o
	default:
		return nil, usagef("--provider %q: want simulated or openai", p.provider)
	}
	if p.maxRetryWait < 0 {
		return nil, usagef("--max-retry-wait must not be negative")
	}
	emb, err := newEmbedderStack(base, stackConfig{model: model, dims: dims, rpm: p.rpm, tpm: p.tpm, concurrency: concurrency,
		retryWindow: p.maxRetryWait, logger: logger})
	if err != nil {
		return nil, &usageError{err}
	}
	return emb, nil
}

// stackConfig configures [newEmbedderStack].
type stackConfig struct {
	model       pricing.Model
	dims        int // vector length answers must have; 0 = the model's default
	rpm, tpm    int // provider limits; 0 = unlimited
	concurrency int // requests in flight
	retryWindow time.Duration
	logger      *slog.Logger
}

// newEmbedderStack is the one embedder stack of rebuild, drill (through its
// child rebuild) and serve: Retrying(Validating(RateLimited(provider))),
// with the model's request limits. Answers are checked under the retries: a
// bad one is sent again, never checkpointed.
func newEmbedderStack(provider embedder.Embedder, c stackConfig) (embedder.Embedder, error) {
	limited, err := embedder.NewRateLimited(provider, embedder.RateLimitConfig{RPM: c.rpm, TPM: c.tpm,
		MaxRequestTokens: c.model.MaxTokensPerRequest, Logger: c.logger})
	if err != nil {
		return nil, fmt.Errorf("building the rate limiter: %w", err)
	}
	checked, err := embedder.NewValidating(limited, cmp.Or(c.dims, c.model.DefaultDimensions))
	if err != nil {
		return nil, fmt.Errorf("building the answer check: %w", err)
	}
	retrying, err := embedder.NewRetrying(checked, embedder.RetryConfig{MaxConcurrency: max(c.concurrency, 1), RetryWindow: c.retryWindow, Logger: c.logger})
	if err != nil {
		return nil, fmt.Errorf("building the retrier: %w", err)
	}
	return retrying, nil
}

// newModelSimulator is the simulated provider of one model, with the model's
// limits and default dimensions; key, when set, is the API key it requires.
func newModelSimulator(model pricing.Model, latency time.Duration, key embedder.APIKey, logger *slog.Logger) (*embedder.Simulator, error) {
	cfg := modelSimulatorConfig(model)
	cfg.APIKey, cfg.Latency, cfg.Logger = key, latency, logger
	return embedder.NewSimulator(cfg)
}

// modelSimulatorConfig is the simulator of one model: its name, default
// dimensions and request limits.
func modelSimulatorConfig(model pricing.Model) embedder.SimulatorConfig {
	return embedder.SimulatorConfig{Model: model.Name, DefaultDimensions: model.DefaultDimensions,
		MaxInputs: model.MaxInputsPerRequest, MaxInputTokens: model.MaxTokensPerInput, MaxRequestTokens: model.MaxTokensPerRequest}
}

// serveLoopback serves h on a free loopback port, for the simulators the
// drill, a simulated batch rebuild and serve's batch jobs talk to; baseURL
// ends in /v1, stop closes the server.
func serveLoopback(ctx context.Context, h http.Handler) (baseURL string, stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("serving a simulator on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/v1", func() { _ = srv.Close() }, nil
}

// openAIOptions are the settings of an OpenAI-compatible provider that do
// not depend on the model.
type openAIOptions struct {
	baseURL, encoding                string
	key                              embedder.APIKey
	timeout                          time.Duration
	azureAPIVersion, azureDeployment string
}

// newOpenAI is the OpenAI-compatible provider of one model, for rebuild and
// serve; dims 0 asks for the model's default vector length.
func newOpenAI(o openAIOptions, model pricing.Model, dims int) (embedder.Embedder, error) {
	cfg := embedder.OpenAIConfig{BaseURL: o.baseURL, Model: model.Name, Dimensions: dims, APIKey: o.key,
		EncodingFormat: o.encoding, MaxInputTokens: model.MaxTokensPerInput, Timeout: o.timeout}
	if o.azureAPIVersion != "" {
		cfg.Azure = &embedder.AzureConfig{APIVersion: o.azureAPIVersion, Deployment: o.azureDeployment}
	}
	return embedder.NewOpenAI(cfg)
}

var errNoOut = errors.New("--out is required: the checkpoint directory")

// parseShard parses the --shard flag, "i/N" (see [checkpoint.ParseShard]).
func parseShard(s string) (index, count int, err error) {
	sh, err := checkpoint.ParseShard(s)
	if err != nil {
		return 0, 0, usagef("--shard %v", err)
	}
	return sh.Index, sh.Count, nil
}
