#!/usr/bin/env bash
# soak-rebuild.sh [KILLS] [SEED]: the rebuild crash test with KILLS SIGKILLs
# (default 200) at random moments, seeded by SEED (default: the clock, printed
# so that a failure can be replayed). It builds the reembed binary, runs it as
# a child against a simulated provider on loopback, kills and resumes it, and
# checks that every chunk is checkpointed exactly once, every part reads, no
# temp file is left, and every extra billed token was in flight at a kill.
set -euo pipefail
kills=${1:-200}
seed=${2:-$(date +%s)}
cd "$(dirname "$0")/.."
echo "soak: $kills kills, seed $seed (replay: scripts/soak-rebuild.sh $kills $seed)"
REEMBED_CRASH_KILLS=$kills REEMBED_CRASH_SEED=$seed \
  go test -run '^TestRebuildSubprocess$/^crash$' -count=1 -v -timeout 120m ./cmd/reembed/ |
  grep -E '^(---|ok|FAIL|PASS)|rebuild_test|panic' 
