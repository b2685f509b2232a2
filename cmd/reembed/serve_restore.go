package main

import (
	"context"
	"log/slog"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store/pgvector"
)

// openRestores opens the restore job manager of serve: restores into
// pgvector, checkpoints named by rebuild job or inside the data directory,
// passwords from the server's REEMBED_PGPASSWORD* variables (password_env),
// PGPASSWORD or ~/.pgpass, never from a request.
func openRestores(e *env, data string, rebuilds *jobs.Manager, log *slog.Logger) (*jobs.RestoreManager, error) {
	return jobs.OpenRestores(jobs.RestoreConfig{
		DataDir:           data,
		OpenSink:          pgvectorSink,
		RebuildCheckpoint: rebuilds.CheckpointOf,
		Getenv:            e.getenv,
		Logger:            log,
	})
}

// pgvectorSink connects a restore job to its pgvector target.
func pgvectorSink(ctx context.Context, t jobs.RestoreTarget) (jobs.RestoreSink, error) {
	s, err := pgvector.OpenMode(ctx, t.DSN, t.Password, t.Table, t.Mode, t.Notice)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// restoreCalibrator measures a restore target for POST /v1/estimates, as
// `estimate --calibrate --restore-to DSN` does.
func restoreCalibrator(e *env) api.RestoreCalibrator {
	return func(ctx context.Context, dsn, passwordEnv string, dims int, sizes []int) (planner.RestoreModel, error) {
		password := ""
		if passwordEnv != "" {
			password = e.getenv(passwordEnv)
		}
		c, err := pgvector.CalibrateConfig(ctx, pgvector.Config{DSN: dsn, Password: password}, dims, sizes,
			func(d int) float64 { return planner.RestoreRowBytes(d, d > pgvector.MaxVectorDims) })
		if err != nil {
			return planner.RestoreModel{}, err
		}
		return calibratedModel(c), nil
	}
}
