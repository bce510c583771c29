#!/usr/bin/env bash
# Install the packed package as a user would (npm pack; npm install -g --omit=dev into a temporary
# prefix) and run demo, plot and serve from another folder, with no dev dependency and no checkout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
start=$(date +%s)
cd "$repo"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
npm install -g --omit=dev --no-audit --no-fund --prefix "$work/prefix" "$work/$tarball" >/dev/null
bin="$work/prefix/bin/moescope"
mkdir "$work/user" && cd "$work/user"
"$bin" --version
"$bin" demo --samples 16 --out demo-out >/dev/null
for f in routing.parquet samples.parquet meta.json figure.svg figure.png figure.vl.json allocation.csv metrics.json; do
  [ -s "demo-out/$f" ] || { echo "check-package: demo wrote no $f" >&2; exit 1; }
done
"$bin" plot demo-out --out fig.png && [ -s fig.png ]
"$bin" analyze demo-out --json >/dev/null
"$bin" serve demo-out --port 0 >serve.log 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q 'serving http' serve.log && break; sleep 0.1; done
url="$(grep -o 'http://127.0.0.1:[0-9]*/' serve.log | head -n 1)"
[ -n "$url" ] || { echo "check-package: serve printed no URL" >&2; cat serve.log >&2; exit 1; }
node -e "fetch(process.argv[1]).then(async r => { const t = await r.text(); if (!r.ok || !t.includes('<html')) process.exit(1); })" "$url"
kill "$server"
echo "check-package: packed package installs and runs demo, plot, analyze, serve from another folder ($(( $(date +%s) - start )) s)"
