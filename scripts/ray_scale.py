#!/usr/bin/env python
"""Static counting of N timm models through Ray (a local head, 2 CPUs) against the local
executor, on this machine: the issue-18 scale check.

The models: timm's small ones (a name with tiny/small/nano/mobile/... and none of
large/huge/384/...), sampled with ``random.Random(SEED)`` from the sorted candidates; each
at its own default input size (``vitbench suite new``). Both executors run the same suite
with ``--static-only``, alternately (Ray first, then local, ``--pairs`` times), each into its
own folder; the script prints each wall time, the ratios, and whether every row's params and
GFLOPs are identical between the two.

Usage::

    python scripts/ray_scale.py --count 200 --seed 18 --out /tmp/ray-scale

Run it on a quiet machine: it measures wall time. The Ray head is started here (loopback,
``--num-cpus 2``, ``RAY_worker_niceness=0`` so Ray's workers are not niced below the local
run) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

INCLUDE = re.compile(r"(tiny|small|nano|mobile|pico|femto|atto|xxs|lite|micro|_s$|_xs$|_t$)")
EXCLUDE = re.compile(r"(large|huge|giant|gigantic|xlarge|384|448|512|1024|_l$|_h$|_g$)")
PORT = 46380


def sample(count: int, seed: int) -> list[str]:
    import timm

    candidates = sorted(m for m in timm.list_models()
                        if INCLUDE.search(m) and not EXCLUDE.search(m))
    return sorted(random.Random(seed).sample(candidates, count))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    began = time.monotonic()
    done = subprocess.run(cmd, env=env)
    wall = time.monotonic() - began
    if done.returncode not in (0, 1):  # 1: a row failed, reported in the table
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {done.returncode}")
    return wall


def counts(folder: Path) -> dict[str, tuple]:
    run = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return {r["name"]: (r["status"], (r.get("counts") or {}).get("params"),
                        (r.get("counts") or {}).get("gmacs")) for r in run["results"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--pairs", type=int, default=1, help="Ray/local pairs to run")
    parser.add_argument("--out", type=Path, default=Path("ray-scale"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    models = sample(args.count, args.seed)
    suite = args.out / "suite.yaml"
    subprocess.run([str(bin_dir / "vitbench"), "suite", "new", "-o", str(suite),
                    *[f"--model=timm:{m}" for m in models]], check=True)
    env = {**os.environ, "RAY_worker_niceness": "0", "VITBENCH_HISTORY": "off"}
    ray = str(bin_dir / "ray")
    subprocess.run([ray, "start", "--head", "--port", str(PORT), "--num-cpus", "2",
                    "--include-dashboard", "false", "--disable-usage-stats",
                    "--temp-dir", str(args.out.resolve() / "raytmp")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    walls: dict[str, list[float]] = {"ray": [], "local": []}
    try:
        for pair in range(args.pairs):
            for executor in ("ray", "local"):
                folder = args.out / f"{executor}-{pair + 1}"
                cmd = [str(bin_dir / "vitbench"), "run", str(suite), "--static-only",
                       "--out", str(folder), "--force", "--no-plots", "--quiet"]
                if executor == "ray":
                    cmd += ["--executor", "ray", "--address", f"127.0.0.1:{PORT}"]
                walls[executor].append(timed(cmd, env))
                print(f"{executor} {pair + 1}: {walls[executor][-1]:.0f} s", flush=True)
            same = counts(args.out / f"ray-{pair + 1}") == counts(args.out / f"local-{pair + 1}")
            print(f"pair {pair + 1}: Ray/local = "
                  f"{walls['ray'][-1] / walls['local'][-1]:.2f}; identical rows: {same}",
                  flush=True)
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
