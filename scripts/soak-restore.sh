#!/usr/bin/env bash
# soak-restore.sh: SIGKILL a restore at KILLS random moments (default 200), resuming after each, then check that
# the table holds every checkpoint row exactly once with its sha256 and vector (TestRestoreSurvivesSIGKILL in
# cmd/reembed, which CI runs with 20 kills). Needs PostgreSQL + pgvector (../shared/tools/install-pgvector.sh).
#
#   scripts/soak-restore.sh            # 200 kills
#   KILLS=1000 scripts/soak-restore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REEMBED_REQUIRE_PG=1 REEMBED_RESTORE_KILLS="${KILLS:-200}" \
  go test -count=1 -timeout 120m -run '^TestRestoreSurvivesSIGKILL$' -v ./cmd/reembed/ | grep -E 'restore_test|^---|^ok|FAIL'
