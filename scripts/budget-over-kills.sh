#!/bin/sh
# budget-over-kills.sh BINARY [KILLS] [BUDGET]: does --budget-usd hold over
# SIGKILLs and reruns (issue 13.2)? It serves `reembed simulate` on loopback
# (latency 20ms), then KILLS times starts `BINARY rebuild --budget-usd BUDGET`
# on the bundled sample and SIGKILLs it 0.3 to 1.2 s later, then runs it twice
# more to its end. Prints what the provider's ledger billed (tokens and exact
# dollars at $0.02/1M, text-embedding-3-small) against the cap. Needs curl, jq.
set -eu
BIN=${1:?usage: budget-over-kills.sh BINARY [KILLS] [BUDGET]}
KILLS=${2:-10}
BUDGET=${3:-0.002}
TMP=$(mktemp -d)
trap 'kill $SIM 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BIN" simulate --addr 127.0.0.1:0 --latency 20ms >"$TMP/sim.out" 2>"$TMP/sim.err" &
SIM=$!
while ! grep -q http "$TMP/sim.out" 2>/dev/null; do sleep 0.05; done
URL=$(grep -o 'http://[^ ]*' "$TMP/sim.out" | head -1)
URL=${URL%/}
rebuild() {
	OPENAI_API_KEY=x exec "$BIN" rebuild --provider openai --base-url "$URL" --concurrency 4 --rpm 600 --tpm 0 \
		--batch-size 16 --progress-interval 1h --format json --budget-usd "$BUDGET" --out "$TMP/out" >/dev/null 2>>"$TMP/err"
}
for i in $(seq 1 "$KILLS"); do
	( rebuild ) &
	PID=$!
	sleep "$(awk -v s="$i" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 0.9 }')"
	kill -KILL $PID 2>/dev/null || true
	wait $PID 2>/dev/null || true
done
code=0; ( rebuild ) || code=$?; [ $code -le 1 ] || [ $code -eq 3 ] || tail -3 "$TMP/err" >&2
code2=0; ( rebuild ) || code2=$?
sleep 0.3
tokens=$(curl -s "$URL/ledger?summary=1" | jq .totals.prompt_tokens)
billed=$(curl -s "$URL/ledger?summary=1" | jq .totals.billed_requests)
echo "kills $KILLS, then two runs (exit $code, $code2); provider billed $billed requests, $tokens tokens = \$$(awk -v t="$tokens" 'BEGIN { printf "%.6f", t * 0.02 / 1e6 }') against a cap of \$$BUDGET"
