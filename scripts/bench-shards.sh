#!/usr/bin/env bash
# bench-shards.sh: does a rebuild scale with shards when each has its own key,
# and not when they share one?
#
# Runs planner's BenchmarkShards (planner/shards_bench_test.go) COUNT times: a
# synthetic, balanced corpus of DOCS documents of ~400 tokens is rebuilt by 1,
# 2 and 4 shards at once (each a Rebuilder of --shard i/N with its own rate
# limiter, 16 inputs per request, 4 in flight, parts to a local directory),
#   own-keys    one simulated key per shard (a Simulator each, same RPM/TPM)
#   shared-key  one Simulator holding the limits; each shard gets 1/N of them
#               (what rebuild --rpm/--tpm = limit/N does)
# and prints the median over the runs of
#   tokens/s    billed tokens per second of wall time (after each limiter's
#               one-second burst is spent: the steady rate)
#   x-one-key   tokens/s over one key's TPM/60 (own-keys should read ~N,
#               shared-key ~1)
#
# Usage: scripts/bench-shards.sh                (TPM=1200000 DOCS=400 COUNT=3: about 2.5 minutes)
#        TPM=3000000 DOCS=1000 COUNT=5 scripts/bench-shards.sh
# Nothing leaves the machine: the simulators run in process.
set -euo pipefail
cd "$(dirname "$0")/.."

TPM=${TPM:-1200000}
DOCS=${DOCS:-400}
COUNT=${COUNT:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== rebuild throughput by shards: TPM ${TPM} per key, ${DOCS} documents, ${COUNT} runs"
BENCH_SHARDS_TPM=$TPM BENCH_SHARDS_DOCS=$DOCS go test -run '^$' -bench 'BenchmarkShards' -benchtime 1x -count "$COUNT" \
	-timeout 0 ./planner/ | tee "$out" | grep -E '^Benchmark'

awk '
/^BenchmarkShards\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkShards\//, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "tokens/s") t[name] = t[name] " " $i
		if ($(i+1) == "x-one-key") x[name] = x[name] " " $i
	}
}
function median(s,   a, m, i, j, v) {
	m = split(s, a, " ")
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { v = a[i]; a[i] = a[j]; a[j] = v }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
	print "== medians"
	for (k = 1; k <= n; k++) printf "%-22s %9.0f tokens/s   %5.2f x one key\n", order[k], median(t[order[k]]), median(x[order[k]])
}' "$out"
