package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/planner/jobs"
)

// maxIdempotencyKey bounds the Idempotency-Key header, in bytes.
const maxIdempotencyKey = 255

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
	// The body is the job spec itself: decoded strictly by its
	// UnmarshalJSON, validated once by Submit (jobs.Spec.Validate and the
	// rebuild's own Validate), every error a field error.
	var spec jobs.Spec
	if err := decodeBody(c, &spec, false); err != nil {
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
	var opts jobs.ResumeOptions
	budget, given, err := jobs.ParseBudget(b.BudgetUSD)
	if err != nil {
		return err
	}
	if given {
		opts.BudgetUSD = &budget
	}
	j, err := s.jobs.Resume(c.Request().Context(), id, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, j)
}
