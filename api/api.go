// Package api is reembed's REST API on Echo v4: estimates, the model
// catalog, and rebuild jobs that runbooks start, watch, cancel and resume.
// Handlers only translate HTTP to the planner: a rebuild's body is the job
// spec itself ([jobs.Spec], decoded strictly and validated once, its
// errors [planner.FieldError]s named by their JSON field), estimate bodies
// are decoded and checked here, and [jobs.Manager] does the work. The
// contract is openapi.yaml (embedded, served at /openapi.yaml).
//
// Every error answer is {"error":{"code","message","field"}} (see [Error]);
// unknown routes answer 404 and wrong methods 405 in the same shape.
//
// It imports planner, embedder, corpus and pricing; nothing imports it but
// cmd/reembed.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// OpenAPI is the API's contract, served at GET /openapi.yaml. The canonical
// file is api/openapi.yaml; the repository root's openapi.yaml is a
// byte-identical copy (a test keeps them equal).
//
//go:embed openapi.yaml
var OpenAPI []byte

// DefaultMaxBodyBytes bounds a request body (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// JobManager is what the API needs of the job manager ([jobs.Manager]).
type JobManager interface {
	Submit(ctx context.Context, spec jobs.Spec, key string) (jobs.Job, bool, error)
	Get(id string) (jobs.Job, error)
	List() []jobs.Job
	Cancel(ctx context.Context, id string) (jobs.Job, error)
	Resume(ctx context.Context, id string, opts jobs.ResumeOptions) (jobs.Job, error)
	Counts() map[jobs.State]int
	Closing() bool
}

var _ JobManager = (*jobs.Manager)(nil)

// Config configures [New].
type Config struct {
	// Jobs runs the rebuilds. Required.
	Jobs JobManager
	// Restores runs restore jobs (POST /v1/restores); nil answers 404 there.
	Restores RestoreManager
	// CalibrateRestore measures a restore target for estimates that ask
	// (restore.calibrate); nil refuses them.
	CalibrateRestore RestoreCalibrator
	// Catalog prices estimates; nil means pricing.Builtin().
	Catalog *pricing.Catalog
	// Tokenizer counts estimate corpora; nil means tokenizer.Default().
	Tokenizer tokenizer.Tokenizer
	// CorpusRoots are the directories (absolute, symlinks resolved, as
	// [jobs.Manager.Roots] returns them) request paths must resolve inside.
	CorpusRoots []string
	// AuthToken, when set, is required as "Authorization: Bearer TOKEN" on
	// every route but /healthz and /openapi.yaml; it is compared in
	// constant time and never logged.
	AuthToken embedder.APIKey
	// Metrics feeds /metrics; nil makes one with no rate limits known.
	Metrics *Metrics
	// Logger receives request and error records; nil discards.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Server is the API: an http.Handler. It is safe for concurrent use.
type Server struct {
	e         *echo.Echo
	jobs      JobManager
	cat       *pricing.Catalog
	tok       tokenizer.Tokenizer
	roots     []string
	log       *slog.Logger
	metrics   *Metrics
	tokenHash []byte
	maxBody   int64

	restoreMgr RestoreManager
	calibrate  RestoreCalibrator
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Jobs == nil {
		return nil, errors.New("api: no job manager")
	}
	s := &Server{jobs: cfg.Jobs, cat: cfg.Catalog, tok: cfg.Tokenizer, roots: cfg.CorpusRoots, log: cfg.Logger,
		metrics: cfg.Metrics, maxBody: cfg.MaxBodyBytes, restoreMgr: cfg.Restores, calibrate: cfg.CalibrateRestore}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cat == nil {
		c, err := pricing.Builtin()
		if err != nil {
			return nil, fmt.Errorf("api: loading the pricing catalog: %w", err)
		}
		s.cat = c
	}
	if s.tok == nil {
		t, err := tokenizer.Default()
		if err != nil {
			return nil, fmt.Errorf("api: loading the tokenizer: %w", err)
		}
		s.tok = t
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(cfg.Jobs.Counts, 0, 0, nil)
	}
	s.metrics.SetBatchSource(func() map[string]int { return batchCounts(cfg.Jobs) })
	if cfg.Restores != nil {
		s.metrics.SetRestoreSource(cfg.Restores.RestoreCounts)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if cfg.AuthToken != "" {
		h := sha256.Sum256([]byte(cfg.AuthToken.Reveal()))
		s.tokenHash = h[:]
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RequestID(), s.observe, s.recover, s.auth, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	e.GET("/openapi.yaml", s.openapi)
	e.POST("/v1/estimates", s.postEstimate)
	e.GET("/v1/models", s.getModels)
	e.POST("/v1/rebuilds", s.postRebuild)
	e.GET("/v1/rebuilds", s.listRebuilds)
	e.GET("/v1/rebuilds/:id", s.getRebuild)
	e.POST("/v1/rebuilds/:id/cancel", s.cancelRebuild)
	e.POST("/v1/rebuilds/:id/resume", s.resumeRebuild)
	s.restoreRoutes(e)
	s.e = e
	return s, nil
}

// Echo returns the Echo instance (for e.Routes, or to start and shut down
// an http.Server around it).
func (s *Server) Echo() *echo.Echo { return s.e }

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// observe is the outermost middleware: it writes errors through the error
// handler (so the status is known), records latency and logs the request.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		route := c.Path()
		if route == "" || res.Status == http.StatusNotFound && c.Handler() == nil {
			route = "unmatched"
		}
		d := time.Since(start)
		s.metrics.observeHTTP(req.Method, route, res.Status, d)
		level := slog.LevelDebug
		switch {
		case res.Status >= 500:
			level = slog.LevelError
		case req.Method != http.MethodGet || res.Status >= 400:
			level = slog.LevelInfo
		}
		s.log.LogAttrs(req.Context(), level, "http request", slog.String(logRequestID, res.Header().Get(echo.HeaderXRequestID)),
			slog.String(logMethod, req.Method), slog.String(logRoute, route), slog.Int(logStatus, res.Status),
			slog.Int64(logBytes, res.Size), slog.Float64(logDurationMS, float64(d.Microseconds())/1000))
		return nil
	}
}

// recover turns a handler's panic into a 500 (logged with the request id).
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("handler panicked: %v", p)
			}
		}()
		return next(c)
	}
}

// auth checks the bearer token, when one is configured.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.tokenHash == nil {
			return next(c)
		}
		switch c.Request().URL.Path {
		case "/healthz", "/openapi.yaml":
			return next(c)
		}
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		ok := len(h) > 7 && strings.EqualFold(h[:7], "bearer ")
		var got [sha256.Size]byte
		if ok {
			got = sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
		}
		if subtle.ConstantTimeCompare(got[:], s.tokenHash) != 1 || !ok {
			return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Field: "Authorization",
				Message: "send Authorization: Bearer TOKEN with the server's token"}
		}
		return next(c)
	}
}

// limitBody caps the request body at maxBody bytes.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.maxBody {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
				Message: fmt.Sprintf("request body of %d bytes is larger than the %d the server accepts", req.ContentLength, s.maxBody)}
		}
		if req.Body != nil {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.maxBody)
		}
		return next(c)
	}
}

// healthResponse is the body of GET /healthz.
type healthResponse struct {
	Status string `json:"status"`
}

// healthz answers 200 {"status":"ok"}, or 503 {"status":"shutting_down"}
// once a shutdown of the rebuild or the restore jobs began (HEAD: the status
// alone). `reembed serve` keeps listening while its jobs commit, so a drain
// is seen here as 503.
func (s *Server) healthz(c echo.Context) error {
	if s.jobs.Closing() || (s.restoreMgr != nil && s.restoreMgr.Closing()) {
		return c.JSON(http.StatusServiceUnavailable, healthResponse{Status: "shutting_down"})
	}
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// openapi serves the contract.
func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
