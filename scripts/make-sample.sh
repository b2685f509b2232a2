#!/usr/bin/env bash
# make-sample.sh: rebuilds corpus/sample/data, the sample corpus embedded in
# reembed, from redistributable text on a Debian machine with Go installed:
# the Go distribution's docs and sources (BSD-3-Clause) and the licence texts
# of /usr/share/common-licenses (verbatim copies). See corpus/sample/data/SOURCES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
GOROOT=$(go env GOROOT)
out=corpus/sample/data
rm -rf "$out/html" "$out/md" "$out/txt" "$out/jsonl" "$out/csv"
mkdir -p "$out/html" "$out/md" "$out/txt" "$out/jsonl" "$out/csv"

cp "$GOROOT"/doc/go_spec.html "$GOROOT"/doc/go_mem.html "$GOROOT"/doc/asm.html "$out/html/"
cp "$GOROOT"/doc/README.md "$out/md/doc-README.md"
cp "$GOROOT"/doc/godebug.md "$out/md/godebug.md"
(cd "$GOROOT/src" && find . -name '*.md' -not -path '*/testdata/*' | sort) | while read -r f; do
  name=$(echo "${f#./}" | tr '/' '-')
  cp "$GOROOT/src/$f" "$out/md/src-$name"
done
for l in Apache-2.0 Artistic BSD CC0-1.0 GPL-3 LGPL-2.1 MPL-2.0; do
  cp "/usr/share/common-licenses/$l" "$out/txt/license-$l.txt"
done
for v in 1.20 1.22 1.23 1.24 1.25 1.26; do cp "$GOROOT/api/go$v.txt" "$out/txt/go-api-go$v.txt"; done

# JSONL: one record per standard-library package, its `go doc` summary.
go list std | grep -v -e internal -e vendor | sort | while read -r p; do
  go doc "$p" 2>/dev/null | python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "text": sys.stdin.read()}, ensure_ascii=False))' "$p"
done > "$out/jsonl/go-packages.jsonl"

# CSV: one row per doc.go file of the standard library and commands.
python3 - "$GOROOT" "$out/csv/go-doc-files.csv" <<'PY'
import csv, os, sys
root, dst = sys.argv[1], sys.argv[2]
rows = []
for d, _, files in os.walk(os.path.join(root, "src")):
    if "testdata" in d or "vendor" in d:
        continue
    if "doc.go" in files:
        p = os.path.join(d, "doc.go")
        rows.append((os.path.relpath(p, root), open(p, encoding="utf-8").read()))
rows.sort()
with open(dst, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["id", "text"])
    w.writerows(rows)
PY
cp "$GOROOT/LICENSE" corpus/sample/LICENSE-Go
du -sh "$out"
