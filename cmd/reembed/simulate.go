package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/reembed/reembed/embedder"
)

// runSimulate serves the simulated OpenAI-compatible provider until ctx ends
// (SIGINT, SIGTERM), then stops taking requests, ends hanging ones and
// returns nil.
func runSimulate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "simulate", "simulate [--addr 127.0.0.1:8081] [--rpm N] [--tpm N] [--latency D] [--fault-* RATE] [--batch-* ...] [--api-key-env NAME]\n\nAlso serves the Files and Batches API (/v1/files, /v1/batches) for rebuild --mode batch|auto.")
	var (
		addr      = fs.String("addr", "127.0.0.1:8081", "listen address (port 0 picks a free one; the URL is printed on stdout); serve's default is :8080, so both can run")
		format    = fs.String("format", "text", "what is printed on stdout: text, or json (one object with base_url and ledger_url at start, the ledger's totals at stop)")
		rpm       = fs.Int("rpm", 0, "requests per minute before 429, as OpenAI's one-minute bucket (0: unlimited)")
		tpm       = fs.Int("tpm", 0, "tokens per minute before 429 (0: unlimited)")
		latency   = fs.Duration("latency", 0, "latency added to each successful answer, e.g. 150ms")
		f5xx      = fs.Float64("fault-5xx", 0, "share of requests answered 500, in [0, 1]")
		fHang     = fs.Float64("fault-hang", 0, "share of requests that never get an answer (until --hang-for)")
		fReset    = fs.Float64("fault-reset", 0, "share of requests whose connection is reset")
		fBad      = fs.Float64("fault-malformed", 0, "share of requests answered 200 with a truncated body")
		f429      = fs.Float64("fault-429", 0, "share of requests answered 429 rate_limit_exceeded regardless of the limits (a storm)")
		fBody     = fs.Float64("fault-rate-limit-body", 0, "share of requests answered 200 with a rate-limit error body")
		hangFor   = fs.Duration("hang-for", 30*time.Second, "how long a hung request is held before its connection is dropped")
		seed      = fs.Uint64("seed", 1, "seed of the fault draws")
		keyEnv    = fs.String("api-key-env", "", "environment variable holding the key clients must send (empty: no key required; never logged)")
		maxInputs = fs.Int("max-inputs", 2048, "most inputs per request (more: 400)")
		maxInTok  = fs.Int("max-input-tokens", 8192, "most tokens per input (more: 400)")
		maxReqTok = fs.Int("max-request-tokens", 300000, "most tokens per request (more: 400)")
		dims      = fs.Int("dimensions", 1536, "vector length when a request names none")
		batch     = registerBatchSimFlags(fs)
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("simulate takes no arguments, got %q", fs.Args())
	}
	if *format != "text" && *format != "json" {
		return usagef("--format %q: want text or json", *format)
	}
	if *maxInputs < 1 || *maxInTok < 1 || *maxReqTok < 1 || *dims < 1 {
		return usagef("--max-inputs, --max-input-tokens, --max-request-tokens and --dimensions must be positive")
	}
	var key embedder.APIKey
	if *keyEnv != "" {
		key = embedder.APIKey(e.getenv(*keyEnv))
		if key == "" {
			return usagef("--api-key-env: environment variable %s is empty", *keyEnv)
		}
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{
		APIKey: key, RPM: *rpm, TPM: *tpm, Latency: *latency,
		Fault5xx: *f5xx, FaultHang: *fHang, FaultReset: *fReset, FaultMalformed: *fBad, Fault429: *f429, FaultRateLimitBody: *fBody,
		HangFor: *hangFor, Seed: *seed,
		MaxInputs: *maxInputs, MaxInputTokens: *maxInTok, MaxRequestTokens: *maxReqTok,
		DefaultDimensions: *dims, MaxDimensions: max(*dims, 3072),
		Logger: e.logger, Batch: batch.config(*seed),
	})
	if err != nil {
		return &usageError{err}
	}
	defer sim.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			e.logger.Warn("simulator listening beyond loopback", "addr", ln.Addr().String())
		}
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	if *format == "json" {
		json.NewEncoder(e.stdout).Encode(map[string]string{"event": "started", "base_url": "http://" + ln.Addr().String() + "/v1",
			"ledger_url": "http://" + ln.Addr().String() + "/v1/ledger"})
	} else {
		fmt.Fprintf(e.stdout, "reembed simulate: serving OpenAI-compatible embeddings and batches at http://%s/v1 (ledger at /v1/ledger)\n", ln.Addr())
	}
	e.logger.Info("simulator started", "addr", ln.Addr().String(), "rpm", *rpm, "tpm", *tpm, "latency", *latency,
		"api_key_required", key != "", "seed", *seed)

	if err := serveSimulator(ctx, srv, ln, sim); err != nil {
		return err
	}
	l := sim.Ledger()
	if *format == "json" {
		json.NewEncoder(e.stdout).Encode(struct {
			Event  string `json:"event"`
			Totals any    `json:"totals"`
		}{"stopped", l.Totals})
	}
	e.logger.Info("simulator stopped", "requests", l.Totals.Requests, "billed_tokens", l.Totals.PromptTokens,
		"rate_limited", l.Totals.RateLimited)
	return nil
}

// serveSimulator serves until ctx ends, then ends hanging requests and
// shuts the server down (5 s at most).
func serveSimulator(ctx context.Context, srv *http.Server, ln net.Listener, sim *embedder.Simulator) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sim.Close() // end hanging requests so that Shutdown does not wait for them
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting the simulator down: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	return nil
}
