#!/usr/bin/env bash
# Screenshot a vitbench HTML report with headless Chromium (no network, throwaway profile).
#
#   scripts/screenshot_report.sh results/lightweight/STAMP/report.html [out.png] [WIDTHxHEIGHT]
#
# Debian/Ubuntu: apt-get install -y chromium   (or set CHROMIUM=/path/to/chrome)
set -euo pipefail
html=${1:?usage: $0 REPORT.html [OUT.png] [WIDTHxHEIGHT]}
out=${2:-${html%.html}.png}
size=${3:-1400x2000}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z "$browser" ]]; then
  echo "error: no chromium found; install it (apt-get install -y chromium) or set CHROMIUM" >&2
  exit 2
fi
[[ -f "$html" ]] || { echo "error: $html: no such file" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --screenshot="$(realpath -m "$out")" \
  --window-size="${size/x/,}" "file://$(realpath "$html")" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
