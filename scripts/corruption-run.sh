#!/usr/bin/env bash
# corruption-run.sh: the figures of a corruption run (issue 14, points 1-3).
#
# Rebuilds the bundled sample with the simulated provider into parts of 100
# rows, flips one byte at a random offset inside the data region of N parts,
# then shows what each command sees:
#   verify          (keys only: a flip outside the key columns goes unseen),
#   verify --deep   (every row: the damaged parts' rows are detected),
#   rebuild --deep  (resume: exactly those rows are embedded again),
#   verify --deep   (complete again).
#
# Usage: scripts/corruption-run.sh [N_PARTS] [SEED]     (defaults 4, 1)
set -euo pipefail
n=${1:-4}
seed=${2:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/reembed" ./cmd/reembed
r="$work/reembed"
out="$work/out"
"$r" rebuild --out "$out" --part-rows 100 --tpm 100000000 --rpm 100000 --progress-interval 1h --format json corpus/sample/data >"$work/first.json" 2>/dev/null
python3 - "$out" "$n" "$seed" <<'PY'
import os, random, sys
out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
parts = sorted(p for p in os.listdir(out) if p.endswith(".parquet"))
for p in rng.sample(parts, n):
    path = os.path.join(out, p)
    b = bytearray(open(path, "rb").read())
    footer = int.from_bytes(b[-8:-4], "little")
    off = rng.randrange(4, len(b) - 8 - footer)  # inside the pages, not the footer
    b[off] ^= 1 << rng.randrange(8)
    open(path, "wb").write(bytes(b))
    print(f"flipped a bit of {p} at byte {off} of {len(b)}")
PY
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join(f'{k}={d[k]}' for k in sys.argv[2:]))" "$@"; }
"$r" verify --checkpoint "$out" --format json >"$work/plain.json" 2>/dev/null || true
echo "verify:         $(field "$work/plain.json" complete present missing unreadable_parts)"
"$r" verify --checkpoint "$out" --deep --format json >"$work/deep.json" 2>/dev/null || true
echo "verify --deep:  $(field "$work/deep.json" complete present missing unreadable_parts invalid_rows)"
"$r" rebuild --out "$out" --deep --part-rows 100 --tpm 100000000 --rpm 100000 --progress-interval 1h --format json >"$work/resume.json" 2>/dev/null
echo "rebuild --deep: $(field "$work/resume.json" stopped embedded_chunks reused_chunks unreadable_parts)"
"$r" verify --checkpoint "$out" --deep --format json >"$work/after.json" 2>/dev/null || true
echo "verify --deep:  $(field "$work/after.json" complete present missing unreadable_parts invalid_rows)"
