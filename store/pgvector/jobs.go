package pgvector

import (
	"context"
	"fmt"
)

// ParseMode returns the Mode a restore job names: "auto" (or ""), "swap" or
// "append".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "swap":
		return ModeSwap, nil
	case "append":
		return ModeAppend, nil
	}
	return 0, fmt.Errorf("mode %q: want auto, swap or append", s)
}

// OpenMode is [Open] with the mode named as [ParseMode] takes it: the shape
// a restore job's sink factory needs.
func OpenMode(ctx context.Context, dsn, password, table, mode string, notice func(string)) (*Sink, error) {
	md, err := ParseMode(mode)
	if err != nil {
		return nil, err
	}
	return Open(ctx, Config{DSN: dsn, Password: password, Table: table, Mode: md, Notice: notice})
}

// VerifyRound maps a checkpoint vector to what the attached table holds:
// binary16 rounding for a halfvec column, nil (the identity) otherwise. Call
// it after [Sink.Attach].
func (s *Sink) VerifyRound() func([]float32) []float32 {
	if !s.half {
		return nil
	}
	return func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, f := range v {
			out[i] = Float32(Float16(f))
		}
		return out
	}
}

// CalibrateConfig is [Calibrate] connecting with cfg (its DSN and Password;
// the table is the calibration's own temporary one).
func CalibrateConfig(ctx context.Context, cfg Config, dims int, sizes []int, rowBytes func(dims int) float64) (Calibration, error) {
	return calibrate(ctx, Config{DSN: cfg.DSN, Password: cfg.Password}, dims, sizes, rowBytes)
}
