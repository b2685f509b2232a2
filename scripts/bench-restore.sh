#!/usr/bin/env bash
# bench-restore.sh: restore throughput against the server-side floor, and HNSW build time by size.
#
#   scripts/bench-restore.sh                      # 20k rows × 1536-d, 3 runs; index at 20k, 50k, 100k rows
#   ROWS=50000 RUNS=5 INDEX_ROWS=20000,50000 scripts/bench-restore.sh
#
# Starts a throwaway PostgreSQL with pgvector (as the tests do: ../shared/tools/install-pgvector.sh installs
# both here) with PostgreSQL's durable defaults (fsync on), and prints:
#   - the floor: INSERT INTO ... SELECT of server-generated vectors of the same shape, rows/s (median of RUNS);
#   - restore: binary COPY of a checkpoint through reembed's pgvector Sink, no index, rows/s (median), and the ratio;
#   - HNSW build seconds (m=16, ef_construction=64, cosine, maintenance_work_mem sized to fit) at each INDEX_ROWS,
#     and the power law seconds = a × rows^b fitted on them (what the planner extrapolates with).
set -euo pipefail
cd "$(dirname "$0")/.."
REEMBED_BENCH_RESTORE=1 REEMBED_PG_DURABLE=1 \
REEMBED_BENCH_ROWS="${ROWS:-20000}" REEMBED_BENCH_DIMS="${DIMS:-1536}" REEMBED_BENCH_RUNS="${RUNS:-3}" \
REEMBED_BENCH_INDEX_ROWS="${INDEX_ROWS:-20000,50000,100000}" \
  go test -count=1 -timeout 120m -run '^TestBenchRestore$' -v ./store/pgvector/ | grep -E '^(restore|hnsw|fitted|---|ok|FAIL)'
