#!/usr/bin/env bash
# bench-embedder.sh: how close does a rebuild get to the provider's rate limit?
#
# Runs the production embedder stack, Retrying(RateLimited(OpenAI)), against
# the simulated provider over loopback HTTP with OpenAI's Tier 1 limits on both
# sides (RPM 3000, TPM 1,000,000) for DURATION, COUNT times, in two shapes:
#   tpm-bound  batches of 16 inputs (~740 tokens): tokens per minute bind
#   rpm-bound  one input per request (~46 tokens): requests per minute bind
# and prints, per shape, the median over the runs of
#   limit_fraction  throughput after a 3 s warm-up / the binding limit (target >= 0.97)
#   429_%           share of requests answered 429 (target < 1)
# plus the simulator's own capacity (req/s over loopback, no limits).
#
# Usage: scripts/bench-embedder.sh            (DURATION=30s COUNT=3: about 3.5 minutes)
#        DURATION=60s COUNT=5 scripts/bench-embedder.sh
# Nothing leaves the machine: the simulator listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30s}
COUNT=${COUNT:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== simulator capacity (loopback, no limits)"
go test -run '^$' -bench 'BenchmarkSimulatorHTTP' -benchtime 3s -count 1 ./embedder/ | grep -E '^Benchmark'

echo "== sustained load: RPM 3000, TPM 1,000,000, ${DURATION} x ${COUNT}"
REEMBED_BENCH_DURATION=$DURATION go test -run '^$' -bench 'BenchmarkSustainedLoad' -benchtime 1x -count "$COUNT" \
	-timeout 0 ./embedder/ | tee "$out" | grep -E '^Benchmark'

# Medians per sub-benchmark of the custom metrics.
awk '
/^BenchmarkSustainedLoad\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "limit_fraction") f[name] = f[name] " " $i
		if ($(i+1) == "429_%") r[name] = r[name] " " $i
	}
}
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	print "== medians"
	for (k in f) printf "%-36s limit_fraction %.3f (target >= 0.97)   429_%% %.2f (target < 1)\n", k, median(f[k]), median(r[k])
}' "$out"
