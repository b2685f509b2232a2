#!/usr/bin/env bash
# bench-rebuild.sh [COUNT [COPIES [LATENCY]]]: measures the rebuild's checkpoint
# overhead with BenchmarkRebuildCheckpoint (planner/rebuild_bench_test.go):
# COPIES copies (default 10) of the bundled sample corpus (1361 chunks of 1536
# dimensions each) rebuilt against an in-process simulator answering after
# LATENCY (default 0s: zero latency) into three stores, interleaved in one run,
# COUNT times each (default 5):
#   none     parts neither encoded nor written (no checkpoint at all)
#   discard  parts encoded to Parquet, written to io.Discard
#   parquet  checkpoint.NewDir: temp file, fsync, rename, directory fsync
# It prints the median wall time of each, the overhead of parquet over
# discard (disk only) and over none (encoding and disk), and the median
# commit throughput (Parquet bytes / time in Commit), and the same overheads in
# CPU time (steadier on a shared machine), and the share of the wall time the
# rebuild waited for commits. Target: parquet <= 3% over none.
set -euo pipefail
count=${1:-5}
copies=${2:-10}
latency=${3:-0s}
cd "$(dirname "$0")/.."
out=$(mktemp)
echo "corpus: $copies copies of the sample; simulator latency $latency; $count runs of each store"
REEMBED_BENCH_COPIES=$copies REEMBED_BENCH_LATENCY=$latency go test -run '^$' -bench '^BenchmarkRebuildCheckpoint$' -benchtime 3x -count "$count" ./planner/ | tee "$out" | grep -E '^Benchmark'
awk '
  /^BenchmarkRebuildCheckpoint\// {
    split($1, p, "/"); name = p[2]; sub(/-[0-9]+$/, "", name)
    n[name]++; t[name, n[name]] = $3
    for (i = 4; i < NF; i++) {
      if ($(i+1) == "commit-MB/s") { m[name]++; mb[name, m[name]] = $i }
      if ($(i+1) == "cpu-s/op") { c[name]++; cpu[name, c[name]] = $i }
      if ($(i+1) == "ckpt-wait-%") { wn[name]++; wait[name, wn[name]] = $i }
    }
  }
  function median(arr, key, k,   i, j, tmp, v) {
    for (i = 1; i <= k; i++) v[i] = arr[key, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { tmp = v[i]; v[i] = v[j]; v[j] = tmp }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
  }
  END {
    for (s in n) med[s] = median(t, s, n[s])
    printf "median wall time per rebuild (%d runs each): none %.3fs  discard %.3fs  parquet %.3fs\n", n["parquet"], med["none"]/1e9, med["discard"]/1e9, med["parquet"]/1e9
    printf "checkpoint overhead: parquet vs discard %+.1f%% (disk), parquet vs none %+.1f%% (encoding + disk); target <= 3%%\n", 100*(med["parquet"]-med["discard"])/med["parquet"], 100*(med["parquet"]-med["none"])/med["parquet"]
    for (s in c) cmed[s] = median(cpu, s, c[s])
    printf "median CPU per rebuild: none %.3fs  discard %.3fs  parquet %.3fs; CPU overhead parquet vs discard %+.1f%%, vs none %+.1f%%\n", cmed["none"], cmed["discard"], cmed["parquet"], 100*(cmed["parquet"]-cmed["discard"])/cmed["parquet"], 100*(cmed["parquet"]-cmed["none"])/cmed["parquet"]
    if (wn["parquet"]) printf "time the rebuild waited for checkpoint commits (median): parquet %.1f%%, discard %.1f%% of wall time\n", median(wait, "parquet", wn["parquet"]), median(wait, "discard", wn["discard"])
    if (m["parquet"]) printf "Parquet commit throughput (median): %.1f MB/s (encode + write + fsync + rename)\n", median(mb, "parquet", m["parquet"])
  }' "$out"
rm -f "$out"
