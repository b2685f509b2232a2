package api

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
)

// RestoreManager is what the API needs of the restore job manager
// ([jobs.RestoreManager]).
type RestoreManager interface {
	SubmitRestore(ctx context.Context, spec jobs.RestoreSpec, key string) (jobs.RestoreJob, bool, error)
	GetRestore(id string) (jobs.RestoreJob, error)
	ListRestores() []jobs.RestoreJob
	CancelRestore(ctx context.Context, id string) (jobs.RestoreJob, error)
	ResumeRestore(ctx context.Context, id string) (jobs.RestoreJob, error)
	CheckTarget(dsn, passwordEnv string) error
	// RestoreCounts feeds reembed_restores{state} in /metrics.
	RestoreCounts() map[jobs.State]int
	// Closing reports a shutdown in progress (GET /healthz answers 503).
	Closing() bool
}

var _ RestoreManager = (*jobs.RestoreManager)(nil)

// restoreBody is the body of POST /v1/restores: the flags of
// `reembed restore` in snake_case, with the checkpoint named by a rebuild
// job (checkpoint_job) or a directory inside the data directory
// (checkpoint), and the target's password never in the body: dsn must not
// hold one; password_env names the server's variable that does.
type restoreBody struct {
	CheckpointJob      string   `json:"checkpoint_job"`
	Checkpoint         string   `json:"checkpoint"`
	DSN                string   `json:"dsn"`
	PasswordEnv        string   `json:"password_env"`
	Table              string   `json:"table"`
	Mode               string   `json:"mode"`
	Index              string   `json:"index"`
	Metric             string   `json:"metric"`
	HNSWM              int      `json:"hnsw_m"`
	HNSWEfConstruction int      `json:"hnsw_ef_construction"`
	IVFFlatLists       int      `json:"ivfflat_lists"`
	MaintenanceWorkMem string   `json:"maintenance_work_mem"`
	MaxIndexMemory     string   `json:"max_index_memory"`
	ParallelWorkers    *int     `json:"parallel_workers"`
	Verify             *bool    `json:"verify"`
	VerifySample       int      `json:"verify_sample"`
	IndexQueries       int      `json:"index_queries"`
	MinRecall          *float64 `json:"min_recall"`
}

// restoreSpec checks the body's shape; the manager validates the rest.
func restoreSpec(b *restoreBody) (jobs.RestoreSpec, error) {
	spec := jobs.RestoreSpec{CheckpointJob: b.CheckpointJob, Checkpoint: b.Checkpoint, DSN: b.DSN, PasswordEnv: b.PasswordEnv,
		Table: b.Table, Mode: b.Mode, Index: b.Index, Metric: b.Metric, HNSWM: b.HNSWM, HNSWEfConstruction: b.HNSWEfConstruction,
		IVFFlatLists: b.IVFFlatLists, ParallelWorkers: intOr(b.ParallelWorkers, -1), Verify: intOr(b.Verify, true),
		VerifySample: b.VerifySample, IndexQueries: b.IndexQueries, MinRecall: intOr(b.MinRecall, 0)}
	var err error
	if spec.MaintenanceWorkMem, err = jobs.ParseSize(b.MaintenanceWorkMem); err != nil {
		return spec, badRequest(CodeInvalidValue, "maintenance_work_mem", "maintenance_work_mem: %v", err)
	}
	if spec.MaxIndexMemory, err = jobs.ParseSize(b.MaxIndexMemory); err != nil {
		return spec, badRequest(CodeInvalidValue, "max_index_memory", "max_index_memory: %v", err)
	}
	return spec, nil
}

// restoreError maps the restore manager's errors to answers.
func restoreError(err error) error {
	if fe, ok := errors.AsType[*planner.FieldError](err); ok && errors.Is(fe.Err, jobs.ErrActive) {
		return &Error{Status: http.StatusConflict, Code: CodeJobActive, Field: fe.Field, Message: planner.RenderErrors(err, jsonField), err: err}
	}
	if fe, ok := errors.AsType[*planner.FieldError](err); ok && errors.Is(fe.Err, fs.ErrNotExist) {
		return &Error{Status: http.StatusBadRequest, Code: CodePathNotFound, Field: fe.Field, Message: planner.RenderErrors(err, jsonField), err: err}
	}
	switch {
	case errors.Is(err, jobs.ErrRestoreNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Field: "id", Message: "no restore job has this id", err: err}
	case errors.Is(err, jobs.ErrRestoreActive):
		return &Error{Status: http.StatusConflict, Code: CodeJobActive, Field: "id", Message: err.Error(), err: err}
	case errors.Is(err, jobs.ErrRestoreFinished):
		return &Error{Status: http.StatusConflict, Code: CodeJobFinished, Field: "id", Message: err.Error(), err: err}
	case errors.Is(err, jobs.ErrIdempotencyKeyReused):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used for a restore with a different body", err: err}
	}
	return err
}

// restores returns the restore manager, or a 404 when the server runs none.
func (s *Server) restores() (RestoreManager, error) {
	if s.restoreMgr == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "this server runs no restore jobs"}
	}
	return s.restoreMgr, nil
}

// restoreID returns the path's restore id, checked.
func restoreID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !jobs.ValidRestoreID(id) {
		return "", &Error{Status: http.StatusNotFound, Code: CodeNotFound, Field: "id", Message: "no restore job has this id"}
	}
	return id, nil
}

// postRestore answers POST /v1/restores: 202 and the queued job.
func (s *Server) postRestore(c echo.Context) error {
	rm, err := s.restores()
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var b restoreBody
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	spec, err := restoreSpec(&b)
	if err != nil {
		return err
	}
	j, created, err := rm.SubmitRestore(c.Request().Context(), spec, key)
	if err != nil {
		return restoreError(err)
	}
	if !created {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/restores/"+j.ID)
	return c.JSON(http.StatusAccepted, j)
}

// restoreList is the body of GET /v1/restores.
type restoreList struct {
	Restores []jobs.RestoreJob `json:"restores"`
}

// listRestores answers GET /v1/restores[?state=S], oldest first.
func (s *Server) listRestores(c echo.Context) error {
	rm, err := s.restores()
	if err != nil {
		return err
	}
	state := c.QueryParam("state")
	if state != "" && !slices.Contains(jobs.States, jobs.State(state)) {
		return badRequest(CodeInvalidValue, "state", "state %q: want one of queued, running, succeeded, failed, cancelled, interrupted", state)
	}
	out := restoreList{Restores: []jobs.RestoreJob{}}
	for _, j := range rm.ListRestores() {
		if state == "" || string(j.State) == state {
			out.Restores = append(out.Restores, j)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// getRestore answers GET /v1/restores/{id}.
func (s *Server) getRestore(c echo.Context) error {
	rm, err := s.restores()
	if err != nil {
		return err
	}
	id, err := restoreID(c)
	if err != nil {
		return err
	}
	j, err := rm.GetRestore(id)
	if err != nil {
		return restoreError(err)
	}
	return c.JSON(http.StatusOK, j)
}

// cancelRestore answers POST /v1/restores/{id}/cancel: 202 and the job, which
// turns cancelled once the part in flight is rolled back.
func (s *Server) cancelRestore(c echo.Context) error {
	return s.restoreAction(c, func(rm RestoreManager, id string) (jobs.RestoreJob, error) {
		return rm.CancelRestore(c.Request().Context(), id)
	})
}

// resumeRestore answers POST /v1/restores/{id}/resume: 202 and the queued job.
func (s *Server) resumeRestore(c echo.Context) error {
	return s.restoreAction(c, func(rm RestoreManager, id string) (jobs.RestoreJob, error) {
		return rm.ResumeRestore(c.Request().Context(), id)
	})
}

// restoreAction runs a POST /v1/restores/{id}/ACTION with an empty body.
func (s *Server) restoreAction(c echo.Context, do func(RestoreManager, string) (jobs.RestoreJob, error)) error {
	rm, err := s.restores()
	if err != nil {
		return err
	}
	id, err := restoreID(c)
	if err != nil {
		return err
	}
	if err := decodeBody(c, &struct{}{}, true); err != nil {
		return err
	}
	j, err := do(rm, id)
	if err != nil {
		return restoreError(err)
	}
	return c.JSON(http.StatusAccepted, j)
}

// restoreRoutes registers the restore job routes.
func (s *Server) restoreRoutes(e *echo.Echo) {
	e.POST("/v1/restores", s.postRestore)
	e.GET("/v1/restores", s.listRestores)
	e.GET("/v1/restores/:id", s.getRestore)
	e.POST("/v1/restores/:id/cancel", s.cancelRestore)
	e.POST("/v1/restores/:id/resume", s.resumeRestore)
}
