#!/bin/sh
# stop-after-signal.sh BINARY [RUNS]: how many requests a rebuild starts after
# SIGINT while its batches wait on the rate limiter (issue 13.1). It serves
# `reembed simulate` on loopback, runs `BINARY rebuild` against the bundled
# sample's HTML documents with --concurrency 4 --rpm 120 (one request per half
# second, so three batches wait on the limiter), sends SIGINT once two requests
# arrived, and prints per run: requests arrived at the signal, at the end, and
# the exit code. Needs curl and jq.
set -eu
BIN=${1:?usage: stop-after-signal.sh BINARY [RUNS]}
RUNS=${2:-5}
TMP=$(mktemp -d)
trap 'kill $SIM 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$BIN" simulate --addr 127.0.0.1:0 --latency 5ms >"$TMP/sim.out" 2>"$TMP/sim.err" &
SIM=$!
while ! grep -q http "$TMP/sim.out" 2>/dev/null; do sleep 0.05; done
URL=$(grep -o 'http://[^ ]*' "$TMP/sim.out" | head -1)
URL=${URL%/}
URL=${URL%/v1}
requests() { curl -s "$URL/v1/ledger?summary=1" | jq .totals.requests; }
for i in $(seq 1 "$RUNS"); do
	OUT="$TMP/out-$i"
	base=$(requests)
	OPENAI_API_KEY=x "$BIN" rebuild --provider openai --base-url "$URL/v1" --concurrency 4 --rpm 120 --tpm 0 \
		--batch-size 16 --progress-interval 1h --format json --out "$OUT" ${SAMPLE:-} >/dev/null 2>"$TMP/err-$i" &
	PID=$!
	while [ $(( $(requests) - base )) -lt 2 ]; do sleep 0.01; done
	at=$(( $(requests) - base ))
	kill -INT $PID
	code=0; wait $PID || code=$?
	sleep 0.2
	end=$(( $(requests) - base ))
	echo "run $i: requests at SIGINT $at, at exit $end, started after SIGINT $((end - at)), exit $code"
done
