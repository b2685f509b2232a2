#!/usr/bin/env bash
# bench-bigdoc.sh [WORKDIR]: memory of one huge document (issue 18, point 2).
#
# Builds, under WORKDIR (default /tmp/bigdoc; never commit what it writes):
#   unit.txt          about 8 MiB of real text from SRC (default corpus/sample/data) on one line,
#                     starting with " " + a letter and ending with a letter, so that its copies
#                     join on a pre-tokenizer piece boundary: count(unit^K) = K x count(unit)
#   big/big.txt       unit x K, >= BIG_MIB MiB (default 1024) on one line, no newline
#   jl/big.jsonl      one JSONL record {"text": <unit x K2 as a JSON string>, "id": "big-record"},
#                     >= JSONL_MIB MiB (default 200) of text; its id after its text, escapes inside
# The reference count is K x count(unit), count(unit) taken with reembed's tokenizer and with
# pkoukk/tiktoken-go (scripts/tokcount --impl ...), which must agree, as must their counts of
# unit x 2 (the join adds nothing).
#
# Then, each under /usr/bin/time -v (peak RSS = "Maximum resident set size"):
#   reembed estimate --plain-text --chunk-tokens 0 big     reembed estimate --plain-text big (512/64)
#   reembed estimate --chunk-tokens 0 jl                   reembed estimate jl (512/64)
#   reembed rebuild --provider openai --base-url <reembed simulate> --dimensions 8 big, then jl
# and checks: the estimate's corpus tokens equal the reference; the rebuild's planned tokens
# equal the 512/64 estimate's billed tokens and the simulator's own recount of every chunk it
# was sent (provider_tokens); every peak RSS <= LIMIT_MIB (default 256). Exit 1 on a mismatch.
#
# Environment: SRC, BIG_MIB, JSONL_MIB, LIMIT_MIB, REBUILD=0 to skip the rebuilds (about 3
# minutes for 1 GiB), KEEP=1 to keep the generated files. Needs go, python3, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=${1:-/tmp/bigdoc}
src=${SRC:-$repo/corpus/sample/data}
big_mib=${BIG_MIB:-1024}
jsonl_mib=${JSONL_MIB:-200}
limit=${LIMIT_MIB:-256}
mkdir -p "$work"
cd "$work"
go build -C "$repo" -o "$work/reembed" ./cmd/reembed
go build -C "$repo" -o "$work/tokcount" ./scripts/tokcount

python3 - "$src" unit.txt $((8 << 20)) <<'PY'
import os, sys
src, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs)
parts, n = [], 0
while n < size:  # repeat the sources if they are smaller than size
    for p in paths:
        b = open(p, 'rb').read()
        if b'\0' in b:
            continue
        try:
            parts.append(b.decode('utf-8'))
        except UnicodeDecodeError:
            continue
        n += len(b)
        if n >= size:
            break
s = ' '.join(parts).replace('\r', ' ').replace('\n', ' ')
i = next(i for i, c in enumerate(s) if c.isascii() and c.isalpha())
j = max(i for i, c in enumerate(s) if c.isascii() and c.isalpha())
open(out, 'w', encoding='utf-8').write(' ' + s[i:j + 1])
PY
unit_bytes=$(stat -c %s unit.txt)
rm -rf u u2 big jl && mkdir -p u u2 big jl
cp unit.txt u/ && cat unit.txt unit.txt > u2/unit2.txt
count() { ./tokcount --impl "$1" "$2" | tr ' ' '\n' | sed -n 's/^tokens=//p'; }
ours=$(count ours u) pk=$(count tiktoken-go u) ours2=$(count ours u2) pk2=$(count tiktoken-go u2)
echo "unit: $unit_bytes bytes; tokens ours $ours, pkoukk $pk; unit x 2: ours $ours2, pkoukk $pk2"
if [ "$ours" != "$pk" ] || [ "$ours2" != $((2 * ours)) ] || [ "$pk2" != $((2 * pk)) ]; then
	echo "FAIL: the reference counts disagree" >&2
	exit 1
fi
k=$(( (big_mib * 1048576 + unit_bytes - 1) / unit_bytes ))
k2=$(( (jsonl_mib * 1048576 + unit_bytes - 1) / unit_bytes ))
python3 - "$k" "$k2" <<'PY'
import json, sys
k, k2 = int(sys.argv[1]), int(sys.argv[2])
u = open('unit.txt', encoding='utf-8').read()
with open('big/big.txt', 'w', encoding='utf-8') as f:
    for _ in range(k):
        f.write(u)
with open('jl/big.jsonl', 'w', encoding='utf-8') as f:
    f.write('{"text": ' + json.dumps(u * k2, ensure_ascii=False) + ', "id": "big-record"}\n')
PY
echo "big.txt: $(stat -c %s big/big.txt) bytes = unit x $k, reference $((k * ours)) tokens"
echo "big.jsonl: $(stat -c %s jl/big.jsonl) bytes, text = unit x $k2, reference $((k2 * ours)) tokens"

fail=0
rss() { awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$1"; }
check_rss() {
	if awk -v r="$1" -v l="$limit" 'BEGIN {exit !(r > l)}'; then
		echo "FAIL: peak RSS $1 MiB > $limit MiB" >&2
		fail=1
	fi
}
jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
estimate() { # name dir reference flags...
	local name=$1 dir=$2 ref=$3
	shift 3
	/usr/bin/time -v ./reembed estimate --model text-embedding-3-small --format json --quiet "$@" "$dir" > "est-$name.json" 2> "est-$name.time"
	local tok r
	tok=$(jq_py "est-$name.json" 'd["corpus"]["tokens"]')
	r=$(rss "est-$name.time")
	echo "estimate $name: peak RSS $r MiB, $(jq_py "est-$name.json" '"%.1f s, %d documents, corpus tokens %d, billed %d in %d chunks" % (d["corpus"]["read_seconds"], d["corpus"]["documents"], d["corpus"]["tokens"], d["estimates"][0]["tokens"], d["estimates"][0]["chunks"])') (reference $ref)"
	[ "$tok" = "$ref" ] || { echo "FAIL: estimate $name counted $tok tokens, reference $ref" >&2; fail=1; }
	check_rss "$r"
}
estimate text-0 big $((k * ours)) --plain-text --chunk-tokens 0
estimate text-512 big $((k * ours)) --plain-text
estimate jsonl-0 jl $((k2 * ours)) --chunk-tokens 0
estimate jsonl-512 jl $((k2 * ours))

if [ "${REBUILD:-1}" != 0 ]; then
	./reembed simulate --addr 127.0.0.1:0 --dimensions 8 > sim.out 2> sim.err &
	sim=$!
	trap 'kill $sim 2>/dev/null || true' EXIT
	for _ in $(seq 50); do grep -q http sim.out 2>/dev/null && break; sleep 0.2; done
	url=$(grep -o 'http://[^ ]*/v1' sim.out | head -1)
	rebuild() { # name dir flags...
		local name=$1 dir=$2
		shift 2
		rm -rf "out-$name"
		OPENAI_API_KEY=unused /usr/bin/time -v ./reembed rebuild --provider openai --base-url "$url" \
			--model text-embedding-3-small --dimensions 8 --tpm 2000000000 --rpm 1000000 --format json --quiet \
			--out "out-$name" "$@" "$dir" > "rb-$name.json" 2> "rb-$name.time"
		local r want
		r=$(rss "rb-$name.time")
		want=$(jq_py "est-$name-512.json" 'd["estimates"][0]["tokens"]')
		echo "rebuild $name: peak RSS $r MiB, $(jq_py "rb-$name.json" '"%s, %.0f s, %d chunks committed, planned %d tokens, provider recount %d, mismatches %d" % (d["state"], d["elapsed_seconds"], d["committed_chunks"], d["planned_tokens"], d["provider_tokens"], d["usage_mismatches"])') (estimate $want)"
		jq_py "rb-$name.json" 'd["state"] == "complete" and d["planned_tokens"] == d["provider_tokens"] == d["billed_tokens"] == '"$want"' and d["usage_mismatches"] == 0' | grep -q True ||
			{ echo "FAIL: rebuild $name: incomplete, or its tokens differ from the estimate or the provider's recount" >&2; fail=1; }
		check_rss "$r"
		[ "${KEEP:-0}" = 1 ] || rm -rf "out-$name"
	}
	rebuild text big --plain-text
	rebuild jsonl jl
fi
[ "${KEEP:-0}" = 1 ] || rm -rf u u2 big jl unit.txt
exit $fail
