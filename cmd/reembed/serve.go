package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// serveFlags are the flags of `reembed serve`.
type serveFlags struct {
	addr            string
	data            string
	roots           stringList
	authTokenEnv    string
	insecureListen  bool
	providerBaseURL string
	apiKeyEnv       string
	rpm, tpm        int
	maxRunning      int
	simLatency      time.Duration
	shutdownTimeout time.Duration
	maxBody         int64
	pricingFile     string
	debug           bool
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]\n\nServes the REST API (openapi.yaml): estimates, the model catalog, durable rebuild jobs and restore\njobs into pgvector (POST /v1/restores). A restore's password is never in a request: the server reads\nthe REEMBED_PGPASSWORD* variable the request names in password_env, else PGPASSWORD or ~/.pgpass.\nSIGTERM drains: requests finish, running jobs commit their checkpoints and resume on the next start.")
	var f serveFlags
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on; beyond loopback it needs --auth-token-env or --insecure-listen")
	fs.StringVar(&f.data, "data", "reembed-data", "data directory: jobs/<id>/job.json and their checkpoints")
	fs.Var(&f.roots, "corpus-root", "directory request paths must resolve inside (repeatable)")
	fs.StringVar(&f.authTokenEnv, "auth-token-env", "", "name of the environment variable holding the bearer token clients must send")
	fs.BoolVar(&f.insecureListen, "insecure-listen", false, "allow listening beyond loopback without a token")
	fs.StringVar(&f.providerBaseURL, "provider-base-url", "", "OpenAI-compatible API root for jobs with provider \"openai\" (e.g. https://api.openai.com/v1); unset disables that provider")
	fs.StringVar(&f.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "name of the environment variable holding the provider API key")
	fs.IntVar(&f.rpm, "rpm", planner.DefaultRPM, "provider requests per minute jobs keep under, unless a job sets its own")
	fs.IntVar(&f.tpm, "tpm", planner.DefaultTPM, "provider tokens per minute jobs keep under, unless a job sets its own")
	fs.IntVar(&f.maxRunning, "max-running", 1, "rebuild jobs running at once; others queue")
	fs.DurationVar(&f.simLatency, "sim-latency", 50*time.Millisecond, "latency of the simulated provider's answers")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 60*time.Second, "how long SIGTERM waits for requests and jobs to finish and commit")
	fs.Int64Var(&f.maxBody, "max-body-bytes", api.DefaultMaxBodyBytes, "largest request body accepted")
	fs.StringVar(&f.pricingFile, "pricing", "", "YAML or JSON file of models that add to or replace the built-in catalog")
	fs.BoolVar(&f.debug, "debug", false, "log every request (JSON on stderr)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments (got %q)", fs.Args())
	}
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	var token embedder.APIKey
	if f.authTokenEnv != "" {
		token = embedder.APIKey(e.getenv(f.authTokenEnv))
		if token == "" {
			return usagef("--auth-token-env: environment variable %s is empty", f.authTokenEnv)
		}
	}
	if token == "" && !f.insecureListen && !loopback(f.addr) {
		return usagef("--addr %s is beyond loopback: set --auth-token-env (or --insecure-listen to serve without auth)", f.addr)
	}
	cat, err := loadCatalog(f.pricingFile)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Default()
	if err != nil {
		return err
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Latency: f.simLatency, Tokenizer: tok})
	if err != nil {
		return err
	}
	defer sim.Close()
	providers := []string{jobs.ProviderSimulated}
	apiKey := embedder.APIKey(e.getenv(f.apiKeyEnv))
	if f.providerBaseURL != "" {
		providers = append(providers, jobs.ProviderOpenAI)
	}

	var mgr *jobs.Manager // set before the server answers a scrape
	metrics := api.NewMetrics(func() map[jobs.State]int { return mgr.Counts() }, f.rpm, f.tpm, nil)
	factory := jobEmbedders(cat, sim, openAIOptions{baseURL: f.providerBaseURL, key: apiKey}, metrics, log)
	batchAPIs, stopBatchAPI, err := jobBatchAPIs(ctx, sim, openAIOptions{baseURL: f.providerBaseURL, key: apiKey})
	if err != nil {
		return err
	}
	defer stopBatchAPI()
	mgr, err = jobs.Open(jobs.Config{
		DataDir: f.data, CorpusRoots: f.roots, NewEmbedder: factory, NewBatchAPI: batchAPIs, Tokenizer: tok, Catalog: cat,
		Providers: providers, DefaultRPM: f.rpm, DefaultTPM: f.tpm, MaxRunning: f.maxRunning, Logger: log,
	})
	if err != nil {
		return usagef("%v", err)
	}
	rmgr, err := openRestores(e, f.data, mgr, log) // serve_restore.go
	if err != nil {
		mgr.Shutdown(context.WithoutCancel(ctx))
		return usagef("%v", err)
	}
	defer rmgr.Shutdown(context.WithoutCancel(ctx)) // interrupted restores resume on the next start
	srv, err := api.New(api.Config{Jobs: mgr, Catalog: cat, Tokenizer: tok, CorpusRoots: mgr.Roots(), AuthToken: token,
		Metrics: metrics, Logger: log, MaxBodyBytes: f.maxBody, Restores: rmgr, CalibrateRestore: restoreCalibrator(e)})
	if err != nil {
		mgr.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		mgr.Shutdown(context.WithoutCancel(ctx))
		return fmt.Errorf("listening on %s: %w", f.addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("serving", "addr", ln.Addr().String(), "data", f.data, "corpus_roots", mgr.Roots(), "providers", providers,
		"auth", token != "")
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	select {
	case err := <-serveErr:
		mgr.Shutdown(context.WithoutCancel(ctx))
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return drain(ctx, log, mgr, hs, f.shutdownTimeout)
}

// jobEmbedders builds each job run's embedder: the job's provider (the
// shared simulator, or the configured OpenAI-compatible API) in the one
// embedder stack, observed by metrics.
func jobEmbedders(cat *pricing.Catalog, sim embedder.Embedder, openai openAIOptions, metrics *api.Metrics, log *slog.Logger) jobs.EmbedderFactory {
	return func(spec jobs.Spec) (embedder.Embedder, error) {
		model, err := cat.Lookup(spec.Model)
		if err != nil {
			return nil, err
		}
		var base embedder.Embedder
		switch spec.Provider {
		case jobs.ProviderSimulated:
			base = defaultDimensions{sim, model}
		case jobs.ProviderOpenAI:
			if base, err = newOpenAI(openai, model, 0); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("provider %q is not configured", spec.Provider)
		}
		metrics.SetLimits(spec.RPM, spec.TPM)
		emb, err := newEmbedderStack(metrics.Attempts(base), stackConfig{model: model, dims: spec.Dimensions, rpm: spec.RPM, tpm: spec.TPM,
			concurrency: spec.Concurrency, logger: log})
		if err != nil {
			return nil, err
		}
		return metrics.Batches(emb, model.PricePer1M), nil
	}
}

// drain shuts the server down within timeout: the jobs commit first while
// the listener stays open, so that /healthz answers 503 (load balancers stop
// routing here) and runbooks watching a job see it turn interrupted; then
// the HTTP server stops.
func drain(ctx context.Context, log *slog.Logger, mgr *jobs.Manager, hs *http.Server, timeout time.Duration) error {
	log.Info("shutting down", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	jobsErr := mgr.Shutdown(sctx)
	httpErr := hs.Shutdown(sctx)
	if err := errors.Join(httpErr, jobsErr); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("shut down: jobs committed")
	return nil
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultDimensions asks the simulated provider for the model's default
// vector length when a request names none (the simulator's own default is
// 1536 for every model).
type defaultDimensions struct {
	inner embedder.Embedder
	model pricing.Model
}

func (d defaultDimensions) Embed(ctx context.Context, req *embedder.Request) (*embedder.Result, error) {
	if req.Dimensions == 0 && d.model.DefaultDimensions > 0 {
		r := *req
		r.Dimensions = d.model.DefaultDimensions
		req = &r
	}
	return d.inner.Embed(ctx, req)
}
