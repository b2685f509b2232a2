#!/usr/bin/env bash
# bench-restore-api.sh: a restore as an API job (POST /v1/restores) against the same restore run directly.
#
#   scripts/bench-restore-api.sh                 # 20k rows × 1536-d, 3 alternating runs, then one HNSW job
#   ROWS=5000 RUNS=5 scripts/bench-restore-api.sh
#
# Starts a throwaway PostgreSQL with pgvector (as the tests do) and prints the median rows/s of each way and their
# ratio (the job's bookkeeping should cost nothing measurable), then builds an HNSW index through a job and prints the
# index phases and tuple counts (pg_stat_progress_create_index) that GET /v1/restores/{id} showed while it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
REEMBED_BENCH_RESTORE_API=1 REEMBED_REQUIRE_PG=1 REEMBED_PG_DURABLE=1 \
REEMBED_BENCH_ROWS="${ROWS:-20000}" REEMBED_BENCH_DIMS="${DIMS:-1536}" REEMBED_BENCH_RUNS="${RUNS:-3}" \
  go test -count=1 -timeout 60m -run '^TestBenchRestoreJob$' -v ./api/ | grep -E '^(restore|hnsw|---|ok|FAIL)|run [0-9]'
