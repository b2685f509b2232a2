#!/usr/bin/env bash
# bench-tokens.sh DIR [JOBS]: count the cl100k_base tokens of every file under
# DIR three ways, with the same number of workers each, and compare:
#   ours          reembed's tokenizer.CL100K      (scripts/tokcount --impl ours)
#   tiktoken-go   github.com/pkoukk/tiktoken-go   (scripts/tokcount --impl tiktoken-go)
#   npm-tiktoken  the official tokenizer, npm tiktoken (interop/tokens-count.mjs, worker threads)
# Every file is read whole, decoded with one U+FFFD per maximal invalid
# subsequence and counted with encode_ordinary semantics.
#
# Prints, per implementation, the throughput of each run and its median in MB/s
# (10^6 bytes of input per second, from the first read to the last count, the
# tokenizer already loaded), the peak RSS (max over runs, from /usr/bin/time -v,
# else the tool's own VmHWM), the total tokens; then the ratios of the medians,
# and whether all three agree file by file.
#
# JOBS defaults to the number of CPUs. Environment: RUNS (default 3) runs of
# each implementation, interleaved; IMPLS (default "ours tiktoken-go
# npm-tiktoken") to leave some out. Needs go; node and interop/node_modules
# (cd interop && npm ci) for npm-tiktoken.
#
# A large real corpus: /work/shared/tools/make-corpus.sh /tmp/bigcorpus (227 MB
# of licences, docs, man pages and Go sources already on the machine), then
#   scripts/bench-tokens.sh /tmp/bigcorpus 2
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -d "$1" ]; then
	echo "usage: $0 DIR [JOBS]" >&2
	exit 2
fi
dir=$(cd "$1" && pwd)
jobs=${2:-$(nproc)}
runs=${RUNS:-3}
impls=${IMPLS:-ours tiktoken-go npm-tiktoken}
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$repo" && go build -o "$tmp/tokcount" ./scripts/tokcount)
case " $impls " in *" npm-tiktoken "*)
	if ! command -v node >/dev/null || [ ! -d "$repo/interop/node_modules/tiktoken" ]; then
		echo "npm-tiktoken needs node and interop/node_modules (cd interop && npm ci); set IMPLS to skip it" >&2
		exit 2
	fi
esac
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -v); fi

# Warm the page cache so every implementation reads from memory.
find "$dir" -type f -exec cat {} + >/dev/null

echo "corpus: $dir ($(find "$dir" -type f | wc -l) files, $(find "$dir" -type f -printf '%s\n' | awk '{s += $1} END {print s}') bytes), jobs=$jobs, runs=$runs"
for run in $(seq 1 "$runs"); do
	for impl in $impls; do
		base="$tmp/$impl.$run"
		case $impl in
		ours | tiktoken-go) cmd=("$tmp/tokcount" --impl "$impl" --jobs "$jobs" --out "$base.tsv" "$dir") ;;
		npm-tiktoken) cmd=(node "$repo/interop/tokens-count.mjs" --jobs "$jobs" --out "$base.tsv" "$dir") ;;
		*) echo "unknown implementation $impl" >&2; exit 2 ;;
		esac
		"${timer[@]}" "${cmd[@]}" >"$base.out" 2>"$base.time"
		rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$base.time")
		[ -n "$rss" ] || rss=$(sed -n 's/.*peak_rss_kib=\([0-9]*\).*/\1/p' "$base.out")
		echo "$impl $(sed -n 's/.*tokens=\([0-9]*\).*mb_per_s=\([0-9.]*\).*/\1 \2/p' "$base.out") $rss" >>"$tmp/runs"
		echo "  run $run $impl: $(cat "$base.out"), max RSS ${rss} KiB" >&2
	done
done

echo
printf '%-13s %6s %-28s %9s %14s %12s\n' impl jobs "MB/s per run" "median" "peak RSS MiB" tokens
for impl in $impls; do
	awk -v impl="$impl" -v jobs="$jobs" '$1 == impl { n++; mb[n] = $3; tok = $2; if ($4 > rss) rss = $4 }
		END {
			runs = ""; for (i = 1; i <= n; i++) runs = runs sprintf("%.1f ", mb[i])
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (mb[j] < mb[i]) { t = mb[i]; mb[i] = mb[j]; mb[j] = t }
			med = (n % 2) ? mb[(n + 1) / 2] : (mb[n / 2] + mb[n / 2 + 1]) / 2
			printf "%-13s %6d %-28s %9.2f %14.1f %12d\n", impl, jobs, runs, med, rss / 1024, tok
			print impl, med > "/dev/stderr"
		}' "$tmp/runs" 2>>"$tmp/medians"
done

echo
ours=$(awk '$1 == "ours" {print $2}' "$tmp/medians")
for other in tiktoken-go npm-tiktoken; do
	m=$(awk -v o="$other" '$1 == o {print $2}' "$tmp/medians")
	if [ -n "$ours" ] && [ -n "$m" ]; then
		awk -v a="$ours" -v b="$m" -v o="$other" 'BEGIN { printf "ratio ours / %-12s = %6.1fx (median MB/s)\n", o, a / b }'
	fi
done

echo
ref=""
for impl in npm-tiktoken ours tiktoken-go; do
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
