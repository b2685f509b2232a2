package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
)

// rebuildBody is the body of POST /v1/rebuilds: the flags of
// `reembed rebuild` in snake_case, plus provider, budget_usd and out_dir.
type rebuildBody struct {
	Provider        string          `json:"provider"`
	Model           json.RawMessage `json:"model"`
	Dimensions      int             `json:"dimensions"`
	Paths           []string        `json:"paths"`
	ChunkTokens     *int            `json:"chunk_tokens"`
	ChunkOverlap    *int            `json:"chunk_overlap"`
	PlainText       bool            `json:"plain_text"`
	TextField       string          `json:"text_field"`
	IDField         string          `json:"id_field"`
	Strict          bool            `json:"strict"`
	RPM             int             `json:"rpm"`
	TPM             int             `json:"tpm"`
	Concurrency     *int            `json:"concurrency"`
	BatchSize       int             `json:"batch_size"`
	BudgetUSD       json.RawMessage `json:"budget_usd"`
	OutDir          string          `json:"out_dir"`
	PartRows        int             `json:"part_rows"`
	FlushInterval   *string         `json:"flush_interval"`
	FlushIntervalMS *int64          `json:"flush_interval_ms"`
	Force           bool            `json:"force"`
	Exclude         []string        `json:"exclude"`
	Include         []string        `json:"include"`
}

// maxIdempotencyKey bounds the Idempotency-Key header, in bytes.
const maxIdempotencyKey = 255

// jobSpec validates the shape of the body; the planner validates the rest.
func jobSpec(b *rebuildBody) (jobs.Spec, error) {
	var spec jobs.Spec
	names, err := parseStringOrList("model", b.Model)
	if err != nil {
		return spec, err
	}
	if len(names) > 1 {
		return spec, badRequest(CodeInvalidType, "model", "a rebuild embeds with one model; model must be a string")
	}
	if len(names) == 1 {
		spec.Model = names[0]
	}
	if b.Provider != "" && b.Provider != jobs.ProviderSimulated && b.Provider != jobs.ProviderOpenAI {
		return spec, badRequest(CodeInvalidValue, "provider", "provider %q: want %q or %q", b.Provider, jobs.ProviderSimulated, jobs.ProviderOpenAI)
	}
	if len(b.Paths) == 0 {
		return spec, badRequest(CodeMissing, "paths", "paths (inside a corpus root) are required")
	}
	if b.Concurrency != nil && *b.Concurrency == 0 {
		return spec, badRequest(CodeInvalidValue, "concurrency", "concurrency must be at least 1")
	}
	if err := nonNegative(
		namedInt{"dimensions", int64(b.Dimensions)}, namedInt{"chunk_tokens", int64(intOr(b.ChunkTokens, 0))},
		namedInt{"chunk_overlap", int64(intOr(b.ChunkOverlap, 0))}, namedInt{"rpm", int64(b.RPM)}, namedInt{"tpm", int64(b.TPM)},
		namedInt{"concurrency", int64(intOr(b.Concurrency, 0))}, namedInt{"batch_size", int64(b.BatchSize)},
		namedInt{"part_rows", int64(b.PartRows)}, namedInt{"flush_interval_ms", intOr(b.FlushIntervalMS, 0)},
	); err != nil {
		return spec, err
	}
	if b.FlushInterval != nil && b.FlushIntervalMS != nil {
		return spec, badRequest(CodeConflict, "flush_interval_ms", "give flush_interval or flush_interval_ms, not both")
	}
	flush := intOr(b.FlushIntervalMS, 0)
	if d, ok, err := parseDuration("flush_interval", b.FlushInterval); err != nil {
		return spec, err
	} else if ok {
		flush = d.Milliseconds()
	}
	budget, err := parseUSD("budget_usd", b.BudgetUSD)
	if err != nil {
		return spec, err
	}
	chunk := intOr(b.ChunkTokens, planner.DefaultChunkTokens)
	overlap := intOr(b.ChunkOverlap, planner.DefaultChunkOverlap)
	if b.ChunkOverlap == nil && chunk == 0 {
		overlap = 0
	}
	spec = jobs.Spec{
		Provider: b.Provider, Model: spec.Model, Dimensions: b.Dimensions, Paths: slices.Clone(b.Paths),
		ChunkTokens: chunk, ChunkOverlap: overlap, PlainText: b.PlainText, TextField: b.TextField, IDField: b.IDField,
		Strict: b.Strict, RPM: b.RPM, TPM: b.TPM, Concurrency: intOr(b.Concurrency, 0), BatchSize: b.BatchSize,
		OutDir: b.OutDir, PartRows: b.PartRows, FlushIntervalMS: flush, Force: b.Force,
	}
	if _, err := filtersOf(b.Exclude, b.Include); err != nil {
		return spec, err
	}
	spec.Exclude, spec.Include = b.Exclude, b.Include
	if budget != nil {
		spec.BudgetUSD = *budget
	}
	return spec, nil
}

// idempotencyKey returns the request's Idempotency-Key header, checked.
func idempotencyKey(c echo.Context) (string, error) {
	key := c.Request().Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return "", badRequest(CodeInvalidValue, "Idempotency-Key", "Idempotency-Key is longer than %d bytes", maxIdempotencyKey)
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return "", badRequest(CodeInvalidValue, "Idempotency-Key", "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return key, nil
}

// postRebuild answers POST /v1/rebuilds: 202 and the queued job. A retry
// with the same Idempotency-Key and body answers the same job (and the
// Idempotent-Replayed header).
func (s *Server) postRebuild(c echo.Context) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var b rebuildBody
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	spec, err := jobSpec(&b)
	if err != nil {
		return err
	}
	job, created, err := s.jobs.Submit(c.Request().Context(), spec, key)
	if err != nil {
		return err
	}
	if !created {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/rebuilds/"+job.ID)
	return c.JSON(http.StatusAccepted, job)
}

// listResponse is the body of GET /v1/rebuilds.
type listResponse struct {
	Rebuilds []jobs.Job `json:"rebuilds"`
}

// listRebuilds answers GET /v1/rebuilds[?state=S]: every job, oldest first.
func (s *Server) listRebuilds(c echo.Context) error {
	state := c.QueryParam("state")
	if state != "" && !slices.Contains(jobs.States, jobs.State(state)) {
		return badRequest(CodeInvalidValue, "state", "state %q: want one of queued, running, succeeded, failed, cancelled, budget_exhausted, interrupted", state)
	}
	out := listResponse{Rebuilds: []jobs.Job{}}
	for _, j := range s.jobs.List() {
		if state == "" || string(j.State) == state {
			out.Rebuilds = append(out.Rebuilds, j)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// jobID returns the path's job id, checked.
func jobID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !jobs.ValidID(id) {
		return "", &Error{Status: http.StatusNotFound, Code: CodeNotFound, Field: "id", Message: "no rebuild job has this id"}
	}
	return id, nil
}

// getRebuild answers GET /v1/rebuilds/{id}.
func (s *Server) getRebuild(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	j, err := s.jobs.Get(id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

// cancelRebuild answers POST /v1/rebuilds/{id}/cancel: 202 and the job, which
// turns cancelled once its checkpoint is committed.
func (s *Server) cancelRebuild(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	if err := decodeBody(c, &struct{}{}, true); err != nil {
		return err
	}
	j, err := s.jobs.Cancel(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, j)
}

// resumeBody is the optional body of POST /v1/rebuilds/{id}/resume.
type resumeBody struct {
	BudgetUSD json.RawMessage `json:"budget_usd"`
}

// resumeRebuild answers POST /v1/rebuilds/{id}/resume: 202 and the queued
// job, or 409 while it is queued or running.
func (s *Server) resumeRebuild(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var b resumeBody
	if err := decodeBody(c, &b, true); err != nil {
		return err
	}
	budget, err := parseUSD("budget_usd", b.BudgetUSD)
	if err != nil {
		return err
	}
	j, err := s.jobs.Resume(c.Request().Context(), id, jobs.ResumeOptions{BudgetUSD: budget})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, j)
}
