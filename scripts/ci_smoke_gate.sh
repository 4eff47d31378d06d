#!/usr/bin/env bash
# Gate the CI smoke suite's deterministic metrics (params, GFLOPs) against the committed
# baseline results/baselines/ci-smoke.json. Exit codes (vitbench.errors.ExitCode, the one
# table; docs/ci-gate.md "Exit codes"):
#   0 pass, 1 regression, 2 bad input (e.g. an unreadable baseline), 3 not comparable or
#   inconclusive (e.g. a new model or another FLOP counter), 4 error: the smoke run itself
#   could not finish (anything but "some rows failed", which the gate reports as FAIL).
# Before this table, INCONCLUSIVE exited 2 and bad input 3.
# Refresh the baseline after an intended change with:
#   vitbench run suites/ci-smoke.yaml --static-only --in-process --out /tmp/smoke
#   vitbench baseline /tmp/smoke/results.json --out results/baselines/ci-smoke.json
set -uo pipefail
cd "$(dirname "$0")/.."
VITBENCH=${VITBENCH:-.venv/bin/vitbench}
ERROR=4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VITBENCH" run suites/ci-smoke.yaml --static-only --in-process --no-plots --out "$work/run" > "$work/run.log" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then  # 1 = some rows failed: the gate reports them
  cat "$work/run.log" >&2
  echo "ci_smoke_gate: vitbench run exited $rc; no gate verdict (exit $ERROR)" >&2
  exit "$ERROR"
fi
exec "$VITBENCH" compare results/baselines/ci-smoke.json "$work/run/results.json" \
  --metrics params,gflops --markdown "${GATE_MARKDOWN:-$work/verdict.md}"
