#!/usr/bin/env bash
# restore-prediction.sh: is the restore's calibrated load + index prediction within ±25% of a real restore?
#
#   scripts/restore-prediction.sh                                  # 20k, 50k, 100k rows × 1536-d, one run each
#   ROWS=20000,50000 RUNS=3 CALIBRATE_ROWS=2000,5000 scripts/restore-prediction.sh
#   CALIBRATE_ONCE=0 scripts/restore-prediction.sh                # run estimate --calibrate before every size
#   DSN=postgres://user@host/db scripts/restore-prediction.sh     # a server of yours instead of a throwaway one
#
# It calibrates once (CALIBRATE_ONCE=1, the default: pgvector.Calibrate and planner.EstimateRestore, the code
# `estimate --calibrate` runs; the calibration does not depend on the size) or, with CALIBRATE_ONCE=0, runs the CLI per
# size as below. For each size it writes a checkpoint of random 1536-d vectors (storetest.WriteBenchCheckpoint, as
# scripts/bench-restore.sh does), runs `reembed estimate --documents N --tokens-per-document 5 --restore-to DSN
# --calibrate` (the calibration loads and indexes CALIBRATE_ROWS sample rows in temporary tables and fits the
# load rate and the index growth law), then `reembed restore --checkpoint DIR --to DSN --max-index-memory 4GB`,
# and prints predicted against actual load and index seconds, the error of each and of their sum, and the load
# average before and after each size (the timings depend on what else runs on the machine). Without DSN it starts
# a throwaway PostgreSQL with pgvector with durable settings (../shared/tools/install-pgvector.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(mktemp -d)/reembed"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/reembed
REEMBED_PG_DURABLE=1 go run ./scripts/restorepred -bin "$bin" -rows "${ROWS:-20000,50000,100000}" -runs "${RUNS:-1}" \
  -calibrate-rows "${CALIBRATE_ROWS:-5000,10000,20000}" ${DSN:+-dsn "$DSN"} -calibrate-once="$([ "${CALIBRATE_ONCE:-1}" = 1 ] && echo true || echo false)" ${RESTORE_FLAGS:+-restore-flags "$RESTORE_FLAGS"}
