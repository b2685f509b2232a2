#!/bin/sh
# Runbook: rebuild lost embeddings with `reembed serve`.
#
#   REEMBED  the server, e.g. http://127.0.0.1:8080
#   TOKEN    the bearer token (the value of the server's --auth-token-env variable)
#
# api/runbook_test.go replays exactly these requests against the API and checks each answer
# (so this file and README.md's runbook must stay in step). Needs curl and jq.
set -eu

# 1. Is the server up? (no token needed)
curl -fsS "$REEMBED/healthz"

# 2. What would a rebuild cost, and how long would it take? What-if: 10M documents of 500 tokens,
#    two models, against a 4-hour RTO. Look at cost_usd, duration, bottleneck, meets_rto, recommendations.
curl -fsS -X POST "$REEMBED/v1/estimates" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"model":["text-embedding-3-small","text-embedding-3-large"],"documents":10000000,"tokens_per_document":500,"rto":"4h"}'

# 3. Estimate the real corpus: a path under one of the server's --corpus-root directories.
curl -fsS -X POST "$REEMBED/v1/estimates" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"paths":["docs"],"model":"text-embedding-3-small","chunk_tokens":512,"chunk_overlap":64}'

# 4. Start the rebuild, capped at $5. Retrying this POST with the same Idempotency-Key answers
#    the same job instead of starting a second one. Keep the job id.
ID=$(curl -fsS -X POST "$REEMBED/v1/rebuilds" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -H 'Idempotency-Key: incident-2026-11-25-rebuild' \
  -d '{"paths":["docs"],"model":"text-embedding-3-small","budget_usd":5}' | jq -r .id)

# 5. Watch it: state, progress (committed_chunks of planned_chunks, eta_seconds), cost_usd, last_error.
curl -fsS "$REEMBED/v1/rebuilds/$ID" -H "Authorization: Bearer $TOKEN"

# 6. Everything running.
curl -fsS "$REEMBED/v1/rebuilds?state=running" -H "Authorization: Bearer $TOKEN"

# 7. Stop it: it commits what it embedded and turns "cancelled"; wait until it has stopped.
curl -fsS -X POST "$REEMBED/v1/rebuilds/$ID/cancel" -H "Authorization: Bearer $TOKEN"
until curl -fsS "$REEMBED/v1/rebuilds/$ID" -H "Authorization: Bearer $TOKEN" | jq -e '.state == "cancelled"' >/dev/null; do sleep 2; done

# 8. Resume it, with a higher budget: checkpointed chunks are skipped, nothing is paid twice.
curl -fsS -X POST "$REEMBED/v1/rebuilds/$ID/resume" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"budget_usd":10}'

# 9. Tokens, cost, requests, 429s, retries, jobs by state, rate-limit utilisation.
curl -fsS "$REEMBED/metrics" -H "Authorization: Bearer $TOKEN"
