package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/reembed/reembed/store/pgvector/pgtest"
)

type restoreEstimateJSON struct {
	Estimates []struct {
		DurationSeconds float64  `json:"duration_seconds"`
		MeetsRTO        *bool    `json:"meets_rto"`
		Recommendations []string `json:"recommendations"`
		Restore         *struct {
			Rows          int64   `json:"rows"`
			LoadSeconds   float64 `json:"load_seconds"`
			IndexSeconds  float64 `json:"index_seconds"`
			VerifySeconds float64 `json:"verify_seconds"`
			EmbedSeconds  float64 `json:"embed_seconds"`
			Calibrated    bool    `json:"calibrated"`
			Basis         string  `json:"basis"`
		} `json:"restore"`
	} `json:"estimates"`
}

func TestEstimateCountsTheRestore(t *testing.T) {
	args := []string{"estimate", "--documents", "5000000", "--tokens-per-document", "500", "--tpm", "100000000", "--rpm", "100000", "--rto", "1h", "--format", "json"}
	code, out, errOut := runMain(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var plain restoreEstimateJSON
	if err := json.Unmarshal([]byte(out), &plain); err != nil || plain.Estimates[0].Restore != nil || !*plain.Estimates[0].MeetsRTO {
		t.Fatalf("without --restore: %v %s", err, out)
	}
	code, out, errOut = runMain(t, append(args, "--restore", "pgvector")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got restoreEstimateJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	e := got.Estimates[0]
	r := e.Restore
	if r == nil || r.Rows != 5000000 || r.Calibrated || !strings.HasPrefix(r.Basis, "uncalibrated") || r.LoadSeconds <= 0 || r.IndexSeconds <= 0 {
		t.Fatalf("restore terms: %+v", r)
	}
	if math.Abs(e.DurationSeconds-(r.EmbedSeconds+r.LoadSeconds+r.IndexSeconds+r.VerifySeconds)) > 1e-6 ||
		math.Abs(r.EmbedSeconds-plain.Estimates[0].DurationSeconds) > 1e-6 {
		t.Errorf("duration %.1f is not embed %.1f + load + index + verify (%+v)", e.DurationSeconds, r.EmbedSeconds, r)
	}
	if *e.MeetsRTO || !strings.Contains(strings.Join(e.Recommendations, "\n"), "IVFFlat instead of HNSW") {
		t.Errorf("5M-row HNSW restore within 1 h: meets %v, recommendations %q", *e.MeetsRTO, e.Recommendations)
	}
	if code, _, errOut := runMain(t, "estimate", "--documents", "10", "--tokens-per-document", "5", "--calibrate"); code != exitUsage || !strings.Contains(errOut, "--restore-to") {
		t.Errorf("--calibrate without a target: exit %d, %s", code, errOut)
	}
}

func TestEstimateCalibratesOnTheTarget(t *testing.T) {
	dsn := pgtest.New(t).DB(t)
	code, out, errOut := runMain(t, "estimate", "--documents", "20000", "--tokens-per-document", "300", "--restore-to", dsn,
		"--calibrate", "--calibrate-rows", "200,500", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got restoreEstimateJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	r := got.Estimates[0].Restore
	if r == nil || !r.Calibrated || !strings.Contains(r.Basis, "calibrated on the target") || r.LoadSeconds <= 0 || r.IndexSeconds <= 0 {
		t.Errorf("calibrated restore terms: %+v", r)
	}
	if strings.Contains(out+errOut, pgtest.Password) {
		t.Error("estimate printed the DSN password")
	}
}
