#!/usr/bin/env bash
# bench-estimate.sh DIR [RUNS]: runs `reembed estimate DIR` RUNS times (default 3)
# and prints the median throughput (MB/s of source bytes) and peak RSS.
set -euo pipefail
dir=${1:?usage: scripts/bench-estimate.sh DIR [RUNS]}
runs=${2:-3}
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/reembed
go build -o "$bin" ./cmd/reembed
results=()
for i in $(seq "$runs"); do
  out=$( { /usr/bin/env time -f '%M' "$bin" estimate --format json "$dir" > /tmp/bench-estimate.json; } 2>&1 | tail -1)
  mbps=$(python3 -c 'import json,sys; e=json.load(open("/tmp/bench-estimate.json")); c=e["corpus"]; print("%.1f" % (c["bytes"]/1e6/c["read_seconds"]))')
  echo "run $i: $mbps MB/s, peak RSS $((out/1024)) MiB"
  results+=("$mbps $((out/1024))")
done
printf '%s\n' "${results[@]}" | sort -n | awk -v n="$runs" '{a[NR]=$1; r[NR]=$2} END {m=int((n+1)/2); print "median: " a[m] " MB/s; peak RSS (that run) " r[m] " MiB"}'
python3 -c 'import json; e=json.load(open("/tmp/bench-estimate.json")); c=e["corpus"]; print("corpus: %d files, %d documents, %.1f MB, %d tokens" % (c["files"], c["documents"], c["bytes"]/1e6, c["tokens"]))'
