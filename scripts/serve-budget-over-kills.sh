#!/bin/sh
# serve-budget-over-kills.sh BINARY [KILLS] [BUDGET]: does a job's budget_usd
# hold when `reembed serve` is SIGKILLed (issue 13.2)? It serves `reembed
# simulate` (latency 20ms), starts `BINARY serve` with provider "openai" aimed
# at it, submits one rebuild of the bundled sample with budget_usd BUDGET,
# and KILLS times SIGKILLs the server 0.4 to 1.2 s after (re)starting it (a
# restart resumes the job), then lets the last start run until the job ends.
# Prints what the provider's ledger billed against the cap. Needs curl, jq.
set -eu
BIN=${1:?usage: serve-budget-over-kills.sh BINARY [KILLS] [BUDGET]}
KILLS=${2:-5}
BUDGET=${3:-0.002}
TMP=$(mktemp -d)
SRV=
trap 'kill $SIM $SRV 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BIN" simulate --addr 127.0.0.1:0 --latency 20ms >"$TMP/sim.out" 2>"$TMP/sim.err" &
SIM=$!
while ! grep -q http "$TMP/sim.out" 2>/dev/null; do sleep 0.05; done
URL=$(grep -o 'http://[^ ]*' "$TMP/sim.out" | head -1)
URL=${URL%/}
mkdir -p "$TMP/corpus" && cp -r "$(dirname "$0")/../corpus/sample/data/." "$TMP/corpus/"
PORT=$(( 20000 + $$ % 20000 ))
serve() {
	OPENAI_API_KEY=x "$BIN" serve --addr 127.0.0.1:$PORT --data "$TMP/data" --corpus-root "$TMP/corpus" \
		--provider-base-url "$URL" --rpm 600 >>"$TMP/serve.log" 2>&1 &
	SRV=$!
	while ! curl -s "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
}
serve
ID=$(curl -s -X POST "http://127.0.0.1:$PORT/v1/rebuilds" -H 'Content-Type: application/json' \
	-d "{\"paths\":[\".\"],\"provider\":\"openai\",\"model\":\"text-embedding-3-small\",\"batch_size\":16,\"concurrency\":4,\"budget_usd\":$BUDGET}" | jq -r .id)
for i in $(seq 1 "$KILLS"); do
	sleep "$(awk -v s="$i" 'BEGIN { srand(s); printf "%.2f", 0.4 + rand() * 0.8 }')"
	kill -KILL $SRV; wait $SRV 2>/dev/null || true
	serve
done
while :; do
	state=$(curl -s "http://127.0.0.1:$PORT/v1/rebuilds/$ID" | jq -r .state)
	case $state in queued|running) sleep 0.2 ;; *) break ;; esac
done
sleep 0.3
tokens=$(curl -s "$URL/ledger?summary=1" | jq .totals.prompt_tokens)
echo "job $state after $KILLS SIGKILLs of serve; provider billed $tokens tokens = \$$(awk -v t="$tokens" 'BEGIN { printf "%.6f", t * 0.02 / 1e6 }') against budget_usd $BUDGET"
