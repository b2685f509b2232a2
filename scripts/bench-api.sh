#!/bin/sh
# Load benchmark of the REST API (issue 7): POST /v1/estimates (a what-if, two models) and
# GET /v1/rebuilds/{id} while a rebuild runs, on loopback TCP with concurrent HTTP clients.
#
#   scripts/bench-api.sh [COUNT] [REQUESTS]      (default 5 runs of 5000 requests each)
#
# For each benchmark it prints the median over COUNT runs of p50-ms and p99-ms (latency of one
# request) and req/s. "closed-32-clients" sends back to back from 32 clients (the throughput
# ceiling); "rate=1000" is open-loop at 1,000 requests per second, latency counted from when
# each request was due (the target: p99 <= 5 ms at 1,000 req/s on 2 cores). The in-process
# benchmark is the CPU cost of one estimate without the network (ns/op).
# The benchmarks are in api/bench_test.go; the raw output is kept in $OUT (default
# /tmp/bench-api.txt) for benchstat.
set -eu
cd "$(dirname "$0")/.."
COUNT=${1:-5}
REQUESTS=${2:-5000}
OUT=${OUT:-/tmp/bench-api.txt}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)" >&2
go test -run '^$' -bench 'BenchmarkAPI(EstimateWhatIf|GetRebuildWhileRunning)' -benchtime "${REQUESTS}x" \
  -count "$COUNT" ./api | tee "$OUT" >&2
go test -run '^$' -bench 'BenchmarkAPIEstimateInProcess' -count "$COUNT" ./api | tee -a "$OUT" >&2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)" >&2
awk '
/^Benchmark/ {
  name = $1
  for (i = 3; i < NF; i += 2) { key = name " " $(i+1); vals[key] = vals[key] " " $i; keys[key] = 1 }
}
END {
  for (k in keys) {
    n = split(vals[k], v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "%-60s %-10s median %12.3f  (n=%d)\n", substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), med, n
  }
}' "$OUT" | grep -v ' ns/op .* 0.000 ' | sort
