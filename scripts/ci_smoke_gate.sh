#!/usr/bin/env bash
# Gate the CI smoke suite's deterministic metrics (params, GFLOPs) against the committed
# baseline results/baselines/ci-smoke.json. Exit codes as `vitbench compare`:
# 0 pass, 1 regression, 2 not comparable (e.g. a new model or another FLOP counter), 3 error.
# Refresh the baseline after an intended change with:
#   vitbench run suites/ci-smoke.yaml --static-only --in-process --out /tmp/smoke
#   vitbench baseline /tmp/smoke/results.json --out results/baselines/ci-smoke.json
set -uo pipefail
cd "$(dirname "$0")/.."
VITBENCH=${VITBENCH:-.venv/bin/vitbench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VITBENCH" run suites/ci-smoke.yaml --static-only --in-process --no-plots --out "$work/run" > "$work/run.log" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then  # 1 = some rows failed: the gate reports them
  cat "$work/run.log" >&2
  exit 3
fi
exec "$VITBENCH" compare results/baselines/ci-smoke.json "$work/run/results.json" \
  --metrics params,gflops --markdown "${GATE_MARKDOWN:-$work/verdict.md}"
