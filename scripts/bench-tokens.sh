#!/usr/bin/env bash
# bench-tokens.sh DIR [JOBS]: count the cl100k_base tokens of every file under
# DIR several ways, with the same number of workers each, interleaved, and
# compare:
#   ours          reembed's tokenizer.CL100K      (scripts/tokcount --impl ours)
#   tiktoken-go   github.com/pkoukk/tiktoken-go   (scripts/tokcount --impl tiktoken-go)
#   npm-tiktoken  the official tokenizer, npm tiktoken (interop/tokens-count.mjs, worker threads)
#   estimate-0    what users run: reembed estimate --plain-text --chunk-tokens 0
#   estimate-512  reembed estimate --plain-text (default 512/64 chunks, each
#                 window's billed tokens exact)
# An implementation written NAME@N runs with N workers instead of JOBS (e.g.
# estimate-0@1, for how the estimate scales with workers).
# Every file is read whole, decoded with one U+FFFD per maximal invalid
# subsequence and counted with encode_ordinary semantics.
#
# Prints, per implementation, the throughput of each run and its median in MB/s
# (10^6 bytes of input per second, from the first read to the last count, the
# tokenizer already loaded: the counters' own clock, and the estimate's
# corpus.read_seconds), the peak RSS (max over runs, from /usr/bin/time -v,
# else the tool's own VmHWM), the total tokens; then the ratios of the medians,
# and whether all agree file by file (the estimates by their --per-document
# token counts).
#
# JOBS defaults to the number of CPUs. Environment: RUNS (default 3) runs of
# each implementation, interleaved; IMPLS (default "ours tiktoken-go
# npm-tiktoken estimate-0 estimate-512 estimate-0@1 ours@1") to choose; the
# counter's own gain from a second worker (ours / ours@1) says what the
# machine lets any program gain. Needs go and
# python3; node and interop/node_modules (cd interop && npm ci) for
# npm-tiktoken. The machine's load average is printed before and after: on a
# shared machine trust the ratios of one run more than absolute figures.
#
# A large real corpus: /work/shared/tools/make-corpus.sh /tmp/bigcorpus (227 MB
# of licences, docs, man pages and Go sources already on the machine), then
#   scripts/bench-tokens.sh /tmp/bigcorpus 2
# The 42 MB slice of issue 18 (the files whose sizes, in byte order of their
# paths, first reach 40 MiB), hard-linked:
#   cd /tmp/bigcorpus && LC_ALL=C sort /tmp/bigcorpus.manifest.tsv |
#     awk -F'\t' '{print $1; s += $2; if (s >= 40 * 1048576) exit}' |
#     while read -r p; do mkdir -p "/tmp/slice/${p%/*}"; ln "$p" "/tmp/slice/$p"; done
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -d "$1" ]; then
	echo "usage: $0 DIR [JOBS]" >&2
	exit 2
fi
dir=$(cd "$1" && pwd)
jobs=${2:-$(nproc)}
runs=${RUNS:-3}
impls=${IMPLS:-ours tiktoken-go npm-tiktoken estimate-0 estimate-512 estimate-0@1 ours@1}
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$repo" && go build -o "$tmp/tokcount" ./scripts/tokcount && go build -o "$tmp/reembed" ./cmd/reembed)
case " $impls " in *" npm-tiktoken"*)
	if ! command -v node >/dev/null || [ ! -d "$repo/interop/node_modules/tiktoken" ]; then
		echo "npm-tiktoken needs node and interop/node_modules (cd interop && npm ci); set IMPLS to skip it" >&2
		exit 2
	fi
esac
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -v); fi

# estimate_summary JSON PERDOC TSV: prints the counters' summary line for an
# estimate and writes its per-document tokens as path, tokens, 0 (sorted).
estimate_summary() {
	python3 - "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["corpus"]
s = max(c["read_seconds"], 1e-9)
print("files=%d bytes=%d tokens=%d seconds=%.3f mb_per_s=%.2f" % (c["files"], c["bytes"], c["tokens"], s, c["bytes"] / s / 1e6))
PY
	{
		echo "path	tokens	bytes"
		tail -n +2 "$2" | awk -F'\t' '{print $1 "\t" $2 "\t0"}' | LC_ALL=C sort
	} >"$3"
}

# Warm the page cache so every implementation reads from memory.
find "$dir" -type f -exec cat {} + >/dev/null

echo "corpus: $dir ($(find "$dir" -type f | wc -l) files, $(find "$dir" -type f -printf '%s\n' | awk '{s += $1} END {print s}') bytes), jobs=$jobs, runs=$runs"
echo "load before: $(uptime)"
for run in $(seq 1 "$runs"); do
	for impl in $impls; do
		name=${impl%@*}
		j=$jobs
		[ "$name" = "$impl" ] || j=${impl#*@}
		base="$tmp/$impl.$run"
		case $name in
		ours | tiktoken-go) cmd=("$tmp/tokcount" --impl "$name" --jobs "$j" --out "$base.tsv" "$dir") ;;
		npm-tiktoken) cmd=(node "$repo/interop/tokens-count.mjs" --jobs "$j" --out "$base.tsv" "$dir") ;;
		estimate-0) cmd=("$tmp/reembed" estimate --plain-text --jobs "$j" --format json --chunk-tokens 0 --chunk-overlap 0 --per-document "$base.perdoc" "$dir") ;;
		estimate-512) cmd=("$tmp/reembed" estimate --plain-text --jobs "$j" --format json --per-document "$base.perdoc" "$dir") ;;
		*) echo "unknown implementation $impl" >&2; exit 2 ;;
		esac
		"${timer[@]}" "${cmd[@]}" >"$base.out" 2>"$base.time"
		case $name in estimate-*)
			mv "$base.out" "$base.json"
			estimate_summary "$base.json" "$base.perdoc" "$base.tsv" >"$base.out"
		esac
		rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$base.time")
		[ -n "$rss" ] || rss=$(sed -n 's/.*peak_rss_kib=\([0-9]*\).*/\1/p' "$base.out")
		echo "$impl $(sed -n 's/.*tokens=\([0-9]*\).*mb_per_s=\([0-9.]*\).*/\1 \2/p' "$base.out") $rss" >>"$tmp/runs"
		echo "  run $run $impl: $(cat "$base.out"), max RSS ${rss} KiB" >&2
	done
done
echo "load after: $(uptime)"

echo
printf '%-15s %6s %-28s %9s %14s %12s\n' impl jobs "MB/s per run" "median" "peak RSS MiB" tokens
for impl in $impls; do
	j=$jobs
	[ "${impl%@*}" = "$impl" ] || j=${impl#*@}
	awk -v impl="$impl" -v jobs="$j" '$1 == impl { n++; mb[n] = $3; tok = $2; if ($4 > rss) rss = $4 }
		END {
			runs = ""; for (i = 1; i <= n; i++) runs = runs sprintf("%.1f ", mb[i])
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (mb[j] < mb[i]) { t = mb[i]; mb[i] = mb[j]; mb[j] = t }
			med = (n % 2) ? mb[(n + 1) / 2] : (mb[n / 2] + mb[n / 2 + 1]) / 2
			printf "%-15s %6d %-28s %9.2f %14.1f %12d\n", impl, jobs, runs, med, rss / 1024, tok
			print impl, med > "/dev/stderr"
		}' "$tmp/runs" 2>>"$tmp/medians"
done

echo
# ratio A B: the ratio of the medians of A and B, when both ran.
ratio() {
	local a b
	a=$(awk -v o="$1" '$1 == o {print $2}' "$tmp/medians")
	b=$(awk -v o="$2" '$1 == o {print $2}' "$tmp/medians")
	if [ -n "$a" ] && [ -n "$b" ]; then
		awk -v a="$a" -v b="$b" -v x="$1" -v y="$2" 'BEGIN { printf "ratio %-12s / %-12s = %6.2fx (median MB/s)\n", x, y, a / b }'
	fi
}
ratio ours tiktoken-go
ratio ours npm-tiktoken
ratio estimate-0 ours
ratio estimate-512 ours
ratio estimate-0 tiktoken-go
ratio estimate-0 npm-tiktoken
ratio estimate-512 tiktoken-go
ratio estimate-512 npm-tiktoken
ratio estimate-0 estimate-0@1
ratio ours ours@1
ratio estimate-512 estimate-512@1

echo
ref=""
for impl in npm-tiktoken ours tiktoken-go estimate-0 estimate-512; do
	case " $impls " in *" $impl "*) ref=${ref:-$impl} ;; esac
done
for impl in $impls; do
	[ "$impl" = "$ref" ] && continue
	diffs=$(join -t "$(printf '\t')" -j 1 <(tail -n +2 "$tmp/$ref.1.tsv") <(tail -n +2 "$tmp/$impl.1.tsv") |
		awk -F'\t' '$2 != $4 { n++; if (n <= 5) printf "    %s: %s %s, %s %s\n", $1, r, $2, i, $4 } END { print n + 0 > "/dev/stderr" }' \
			r="$ref" i="$impl" 2>"$tmp/ndiff")
	nref=$(($(wc -l <"$tmp/$ref.1.tsv") - 1))
	nimpl=$(($(wc -l <"$tmp/$impl.1.tsv") - 1))
	echo "agreement $impl vs $ref: $(cat "$tmp/ndiff") of $nref files differ ($nimpl files counted)"
	[ -z "$diffs" ] || echo "$diffs"
done
