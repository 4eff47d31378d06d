#!/usr/bin/env python
"""Check vitbench's static counts against timm's published results CSV, at zoo scale.

A seeded sample of timm models present both in the installed timm and in the CSV (one per
model family, i.e. timm's model module, then uniformly at random from the rest) is counted
by ``vitbench run SUITE --static-only`` at each model's published input size, under the
``fvcore`` convention (timm's benchmark.py counts with fvcore's FlopCountAnalysis: its
results carry ``infer_macts``, which only the fvcore path fills) and with
``reparameterize: true`` (timm's benchmark folds RepVGG-style models with ``--reparam``).
Rows run in chunks, each chunk one ``vitbench run`` process, so a crash loses one chunk's
unfinished rows, and a re-run resumes: finished chunks are kept.

Usage::

    git -C PYTORCH_IMAGE_MODELS show HEAD:results/benchmark-infer-amp-nchw-pt291-cu130-5090.csv > timm.csv
    python scripts/zoo_check.py timm.csv --out zoo-check --seed 18 --count 500
    python scripts/zoo_check.py timm.csv --out zoo-check --report-only   # figures again

The report (``OUT/report.md``, printed too) gives the agreement figures and every model
outside the tolerances with its cause (a cause from :data:`KNOWN_CAUSES` when one was traced,
otherwise what the row itself says: an error, skipped ops, the counters disagreeing).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

#: params within 1 %, GMACs within 2 % (the issue's bars); both also pass when the
#: difference is within the CSV's rounding (two decimals: ±0.005).
PARAMS_TOL_PCT = 1.0
GMACS_TOL_PCT = 2.0
CSV_HALF_UNIT = 0.005
#: Models whose published param count is above this are left out of the sample: at fp32
#: they need more memory than this shared machine (23 GiB for six jobs) can give one row.
MAX_PARAMS_M = 1500.0

#: Causes traced by hand for models outside the tolerances (model -> cause).
KNOWN_CAUSES: dict[str, str] = {
    "vit_dwee_patch16_reg1_gap_256": (
        "implementation path: timm's DiffAttention runs fused attention (the default) as two "
        "scaled_dot_product_attention calls, each with its own A·V, and vitbench counts that; "
        "the CSV's figure is the manual path's, which subtracts the two maps first and does "
        "one A·V: N²·C·depth = 257²·256·14 = 0.237 G less, the whole difference"),
    "samvit_huge_patch16": (
        "not counted on this machine (23 GB): 2,982 GMACs at 1024 px, and the count needs "
        "more memory than the machine has; alone on an idle machine its worker reached 23 GB "
        "resident and was SIGKILLed by the out-of-memory killer (2026-12-02)"),
}


def read_published(path: Path) -> dict[str, list[dict]]:
    """The CSV's rows by model name (a model appears once per input size it was run at)."""
    rows: dict[str, list[dict]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row.get("param_count") or not row.get("infer_gmacs"):
                continue
            rows[row["model"]].append({"size": int(row["infer_img_size"]),
                                       "params_m": float(row["param_count"]),
                                       "gmacs": float(row["infer_gmacs"])})
    return rows


def families() -> dict[str, str]:
    """Every installed timm model name -> its family (the timm module that registers it)."""
    import timm

    family = {}
    for module in timm.list_modules():
        for name in timm.list_models(module=module):
            family.setdefault(name, module)
    return family


def published_row(name: str, rows: list[dict]) -> dict:
    """The CSV row at the model's default test size (what timm's benchmark runs a name at),
    else at its default input size, else the first."""
    import timm

    cfg = timm.get_pretrained_cfg(name)
    sizes = []
    if cfg is not None:
        for key in ("test_input_size", "input_size"):
            size = getattr(cfg, key, None)
            if size:
                sizes.append(int(size[-1]))
    for size in sizes:
        for row in rows:
            if row["size"] == size:
                return row
    return rows[0]


def sample(published: dict[str, list[dict]], seed: int, count: int) -> tuple[list[dict], dict]:
    """The seeded sample: one model per family, then uniformly from the rest."""
    family = families()
    candidates = sorted(n for n in family if n in published
                        and max(r["params_m"] for r in published[n]) <= MAX_PARAMS_M)
    by_family: dict[str, list[str]] = defaultdict(list)
    for name in candidates:
        by_family[family[name]].append(name)
    rng = random.Random(seed)
    chosen = [rng.choice(by_family[f]) for f in sorted(by_family)]
    rest = [n for n in candidates if n not in set(chosen)]
    rest = rng.sample(rest, max(0, min(count, len(candidates)) - len(chosen)))
    # Run order: the one-per-family picks first, then the rest, each in random order, so a
    # run stopped early has covered every family and is still a uniform sample of the rest.
    rng.shuffle(chosen)
    chosen += rest
    all_families = set(family.values())
    info = {"installed_models": len(family), "csv_models": len(published),
            "candidates": len(candidates), "families": len(all_families),
            "families_sampled": len(by_family),
            "families_not_in_csv": sorted(all_families - set(by_family)),
            "left_out_too_large": sorted(n for n in family if n in published
                                         and n not in candidates)}
    picked = []
    for name in chosen:
        row = published_row(name, published[name])
        picked.append({"name": name, "family": family[name], **row})
    return picked, info


def suite_yaml(name: str, models: list[dict]) -> dict:
    return {"name": name, "title": "timm zoo check (published results CSV)",
            "source": "timm results CSV (see docs/zoo-check.md)",
            "defaults": {"flops_convention": "fvcore", "reparameterize": True,
                         "timeout_s": 900, "tolerance_pct": PARAMS_TOL_PCT},
            "models": [{"name": m["name"], "model": f"timm:{m['name']}", "image_size": m["size"],
                        "reference": {"params_m": m["params_m"], "gflops": m["gmacs"]}}
                       for m in models]}


def harvest(out: Path) -> dict[str, dict]:
    """Every finished row of every chunk so far, kept in ``OUT/rows.json`` (a re-run that
    replaces a chunk's folder keeps them; a re-planned run skips them)."""
    store = out / "rows.json"
    rows = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    for chunk in sorted(out.glob("chunk-*")):
        for part in ("run", "retry"):
            rows.update(finished_rows(chunk / part))
    partial = store.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(rows), encoding="utf-8")
    partial.replace(store)  # atomic: a --report-only beside a running check reads it whole
    return rows


def run_chunk(out: Path, index: int, models: list[dict], in_process: bool, timeout_s: float) -> None:
    """Count one chunk with ``vitbench run``; rows a crash left unmeasured are retried once in
    worker processes (each row its own process, so one crash costs one row)."""
    folder = out / f"chunk-{index:03d}"
    if (folder / "done").exists():
        return
    finished = harvest(out)
    models = [m for m in models if m["name"] not in finished]
    if not models:
        return
    folder.mkdir(parents=True, exist_ok=True)
    suite = folder / "suite.yaml"
    suite.write_text(yaml.safe_dump(suite_yaml(f"zoo-check-{index:03d}", models), sort_keys=False))
    cmd = [sys.executable, "-m", "vitbench", "run", str(suite), "--static-only", "--quiet",
           "--no-plots", "--force", "--out", str(folder / "run")]
    started = time.monotonic()
    try:
        subprocess.run(cmd + (["--in-process"] if in_process else []), timeout=timeout_s,
                       check=False)
    except subprocess.TimeoutExpired:
        pass
    missing = [m for m in models if m["name"] not in finished_rows(folder / "run")]
    if missing and in_process:  # a crash or a hang: the rest, each in its own worker
        retry = folder / "retry.yaml"
        retry.write_text(yaml.safe_dump(suite_yaml(f"zoo-check-{index:03d}-retry", missing),
                                        sort_keys=False))
        subprocess.run([*cmd[:4], str(retry), *cmd[5:-1], str(folder / "retry")], check=False)
    (folder / "done").write_text(f"{time.monotonic() - started:.1f}\n")


def finished_rows(run: Path) -> dict[str, dict]:
    path = run / "results.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {r["name"]: r for r in data.get("results", [])
            if r.get("status") in ("ok", "failed", "timeout")}


def within(measured, printed: float, tol_pct: float) -> bool:
    if measured is None:
        return False
    return abs(measured - printed) <= max(tol_pct / 100 * abs(printed), CSV_HALF_UNIT) + 1e-12


def cause(row: dict | None, params_ok: bool, gmacs_ok: bool) -> str:
    if row is None:
        return "not measured (the chunk did not finish)"
    name = row["name"]
    if name in KNOWN_CAUSES:
        return KNOWN_CAUSES[name]
    if row["status"] != "ok":
        return f"failed: {row.get('error')}"
    counts = row.get("counts") or {}
    hints = []
    if counts.get("gap_ops"):
        hints.append("ops with MACs the counter skipped: " + ", ".join(counts["gap_ops"]))
    if counts.get("counters_agree") is False:
        hints.append(f"cross-check counts {counts.get('crosscheck_gmacs', 0) / 1:.3f}")
    if counts.get("error"):
        hints.append(f"counter error: {counts['error']}")
    return "; ".join(hints) or "not traced yet"


def report(out: Path, models: list[dict], info: dict, meta: dict) -> str:
    rows = harvest(out)
    lines, misses, pending = [], [], []
    n = params_ok_n = gmacs_ok_n = strict_p = strict_g = 0
    reparam = defaultdict(int)
    for m in models:
        row = rows.get(m["name"])
        if row is None:  # not counted yet: not in the figures, listed by name
            pending.append(m["name"])
            continue
        counts = row.get("counts") or {}
        params = counts.get("params") / 1e6 if counts.get("params") is not None else None
        gmacs = counts.get("gmacs")
        n += 1
        p_ok, g_ok = within(params, m["params_m"], PARAMS_TOL_PCT), within(gmacs, m["gmacs"], GMACS_TOL_PCT)
        params_ok_n += p_ok
        gmacs_ok_n += g_ok
        strict_p += params is not None and abs(params - m["params_m"]) <= PARAMS_TOL_PCT / 100 * m["params_m"]
        strict_g += gmacs is not None and abs(gmacs - m["gmacs"]) <= GMACS_TOL_PCT / 100 * m["gmacs"]
        reparam[row.get("reparameterization")] += 1
        if not (p_ok and g_ok):
            misses.append((m, params, gmacs, p_ok, g_ok, cause(row, p_ok, g_ok)))
    pct = lambda k: f"{k}/{n} = {100 * k / n:.1f} %" if n else "0/0"  # noqa: E731
    families_done = {m["family"] for m in models if m["name"] in rows}
    lines += [f"# timm zoo check: {n} of {len(models)} sampled models counted", "",
              f"- CSV: {meta['csv']} ({info['csv_models']} models)",
              f"- seed {meta['seed']}; {info['candidates']} candidates (installed timm ∩ CSV, "
              f"≤ {MAX_PARAMS_M:g} M params), families {info['families_sampled']} of "
              f"{info['families']} (not in the CSV: {', '.join(info['families_not_in_csv']) or 'none'})",
              f"- left out as too large for this machine: {', '.join(info['left_out_too_large']) or 'none'}",
              f"- counted: {n} models from {len(families_done)} families; not counted yet: "
              f"{len(pending)}; reparameterization: {dict(reparam)}",
              f"- time: {sum(sum((rows[m['name']].get('stage_seconds') or {}).values()) for m in models if m['name'] in rows) / 60:.1f}"
              " min of build + count over the counted rows (the wall time adds each chunk's start-up)",
              f"- params within {PARAMS_TOL_PCT:g} % (or the CSV's ±0.005 rounding): {pct(params_ok_n)}"
              f" (strictly within {PARAMS_TOL_PCT:g} %: {pct(strict_p)})",
              f"- GMACs within {GMACS_TOL_PCT:g} % (or the CSV's ±0.005 rounding): {pct(gmacs_ok_n)}"
              f" (strictly within {GMACS_TOL_PCT:g} %: {pct(strict_g)})", "",
              "| model | family | size | params (CSV) | params | GMACs (CSV) | GMACs | cause |",
              "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for m, params, gmacs, p_ok, g_ok, why in misses:
        lines.append(f"| {m['name']} | {m['family']} | {m['size']} | {m['params_m']:.2f} | "
                     f"{fmt(params)}{'' if p_ok else ' ✗'} | {m['gmacs']:.2f} | "
                     f"{fmt(gmacs)}{'' if g_ok else ' ✗'} | {why} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="timm's results/benchmark-infer-*.csv")
    parser.add_argument("--out", type=Path, default=Path("zoo-check"), help="work and result folder")
    parser.add_argument("--seed", type=int, default=18, help="sampling seed")
    parser.add_argument("--count", type=int, default=500, help="models in the sample")
    parser.add_argument("--chunk", type=int, default=10, help="models per vitbench run")
    parser.add_argument("--workers", action="store_true",
                        help="one worker process per row (slower) instead of --in-process chunks")
    parser.add_argument("--chunk-timeout", type=float, default=3600,
                        help="seconds before an in-process chunk is stopped and its rest retried")
    parser.add_argument("--report-only", action="store_true", help="only write the report")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plan_path = args.out / "plan.json"
    if plan_path.exists():
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    else:
        models, info = sample(read_published(args.csv), args.seed, args.count)
        plan = {"models": models, "info": info, "meta": {"csv": str(args.csv), "seed": args.seed}}
        plan_path.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    models = plan["models"]
    if not args.report_only:
        started = time.monotonic()
        for index in range(0, len(models), args.chunk):
            run_chunk(args.out, index // args.chunk, models[index:index + args.chunk],
                      not args.workers, args.chunk_timeout)
            print(f"zoo check: {min(index + args.chunk, len(models))}/{len(models)} models, "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    text = report(args.out, models, plan["info"], plan["meta"])
    (args.out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
