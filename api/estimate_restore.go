package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/reembed/reembed/planner"
)

// RestoreCalibrator measures how fast a restore target loads and indexes
// (`estimate --calibrate --restore-to DSN`): it connects to dsn with the
// password of the server's environment variable passwordEnv (or
// PGPASSWORD / ~/.pgpass when ""), loads and indexes sizes[i] rows of
// dims-long vectors in temporary tables, and fits the model. Its errors
// must not hold the password.
type RestoreCalibrator func(ctx context.Context, dsn, passwordEnv string, dims int, sizes []int) (planner.RestoreModel, error)

// restoreTargetBody is the "restore" object of POST /v1/estimates: the
// options of `reembed estimate --restore pgvector` / `--restore-to DSN`.
type restoreTargetBody struct {
	Store         string `json:"store"`
	Index         string `json:"index"`
	Dimensions    int    `json:"dimensions"`
	Workers       int    `json:"workers"`
	Calibrate     bool   `json:"calibrate"`
	DSN           string `json:"dsn"`
	PasswordEnv   string `json:"password_env"`
	CalibrateRows []int  `json:"calibrate_rows"`
}

// restoreTarget validates the restore object and returns the planner's
// target, calibrated on the target when asked; nil without one. dims is
// the first model's default dimensions.
func (s *Server) restoreTarget(ctx context.Context, b *restoreTargetBody, dims int) (*planner.RestoreTarget, error) {
	if b == nil {
		return nil, nil
	}
	if b.Store == "" {
		b.Store = "pgvector"
	}
	if b.Store != "pgvector" {
		return nil, badRequest(CodeInvalidValue, "restore.store", "restore.store %q: want pgvector", b.Store)
	}
	if b.Index == "" {
		b.Index = "hnsw"
	}
	if b.Index != "hnsw" && b.Index != "ivfflat" && b.Index != "none" {
		return nil, badRequest(CodeInvalidValue, "restore.index", "restore.index %q: want hnsw, ivfflat or none", b.Index)
	}
	if b.Dimensions < 0 || b.Dimensions > 16000 {
		return nil, badRequest(CodeInvalidValue, "restore.dimensions", "restore.dimensions %d: want 1 to 16000 (0: the model's)", b.Dimensions)
	}
	if b.Workers < 0 || b.Workers > 64 {
		return nil, badRequest(CodeInvalidValue, "restore.workers", "restore.workers %d: want 0 to 64", b.Workers)
	}
	t := &planner.RestoreTarget{Store: b.Store, Index: b.Index, Dimensions: b.Dimensions, Workers: b.Workers}
	if !b.Calibrate {
		if b.DSN != "" || b.PasswordEnv != "" || len(b.CalibrateRows) > 0 {
			return nil, badRequest(CodeConflict, "restore.calibrate", "restore.dsn, password_env and calibrate_rows are for restore.calibrate: true")
		}
		return t, nil
	}
	return s.calibrated(ctx, b, t, dims)
}

// calibrated measures the target and puts its model in t.
func (s *Server) calibrated(ctx context.Context, b *restoreTargetBody, t *planner.RestoreTarget, dims int) (*planner.RestoreTarget, error) {
	if s.calibrate == nil || s.restoreMgr == nil {
		return nil, badRequest(CodeInvalidValue, "restore.calibrate", "this server does not calibrate restore targets")
	}
	if err := s.restoreMgr.CheckTarget(b.DSN, b.PasswordEnv); err != nil {
		if fe, ok := errors.AsType[*planner.FieldError](err); ok {
			return nil, badRequest(CodeInvalidValue, "restore."+fe.Field, "restore.%s", planner.RenderErrors(err, jsonField))
		}
		return nil, err
	}
	sizes := b.CalibrateRows
	if len(sizes) == 0 {
		sizes = []int{2000, 5000}
	}
	if len(sizes) > 4 {
		return nil, badRequest(CodeInvalidValue, "restore.calibrate_rows", "restore.calibrate_rows: at most 4 sample sizes")
	}
	for _, n := range sizes {
		if n < 100 || n > 100000 {
			return nil, badRequest(CodeInvalidValue, "restore.calibrate_rows", "restore.calibrate_rows %d: want sizes of 100 to 100000 rows", n)
		}
	}
	if b.Dimensions > 0 {
		dims = b.Dimensions
	}
	m, err := s.calibrate(ctx, b.DSN, b.PasswordEnv, dims, sizes)
	if err != nil {
		return nil, &Error{Status: http.StatusBadGateway, Code: CodeInvalidValue, Field: "restore.dsn",
			Message: fmt.Sprintf("calibrating on restore.dsn: %v", err), err: err}
	}
	t.Model = m
	return t, nil
}
