#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: Chromium (dashboard tests), Debian's PyTorch with
# OpenBLAS (fixtures, the Python capture helper, benchmark peers), poppler-utils (PDF figure
# tests render pages with pdftoppm). Quick when already installed.
set -euo pipefail
need=()
for p in chromium python3-torch python3-numpy libopenblas0-pthread poppler-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
