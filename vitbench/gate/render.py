"""The verdict as a reader sees it: Markdown for a pull-request comment, and the
``vitbench.verdict/1`` JSON file. The command line writes files only through here.

The JSON keys are a contract (CI jobs parse them): they stay as they are, including the
``config`` keys from before the config fields carried their units in their names.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional

from vitbench.files import write_atomic
from vitbench.report.markdown import md_escape
from vitbench.gate.verdict import (FAIL, IMPROVED, INCONCLUSIVE, LOCKSTEP, NOISY, NOT_COMPARABLE,
                                   PASS, WARN, GateReport, Verdict)

VERDICT_SCHEMA = "vitbench.verdict/1"
VERDICT_JSON, VERDICT_MARKDOWN = "verdict.json", "verdict.md"

#: ``verdict.json`` names of the :class:`~vitbench.gate.config.GateConfig` fields that were
#: renamed to carry their unit.
_CONFIG_JSON_KEYS = {
    "delta_latency_cpu_frac": "delta_latency_cpu",
    "delta_latency_cuda_frac": "delta_latency_cuda",
    "delta_memory_cpu_frac": "delta_memory_cpu",
    "memory_floor_mib": "memory_floor_mb",
    "cuda_memory_tol_mib": "cuda_memory_tol_mb",
    "calibration_tolerance_frac": "calibration_tolerance",
    "calibration_min_shift_frac": "calibration_min_shift",
}

_ICON = {FAIL: "❌ FAIL", WARN: "⚠️ WARN", IMPROVED: "🚀 IMPROVED", PASS: "✅ PASS",
         INCONCLUSIVE: "❔ INCONCLUSIVE", NOT_COMPARABLE: "⛔ NOT_COMPARABLE"}


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """One verdict as ``verdict.json`` lists it (non-finite numbers become null)."""
    record = {f.name: getattr(verdict, f.name) for f in fields(verdict)}
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in record.items()}


def verdict_document(report: GateReport, on_inconclusive: str = "fail") -> dict[str, Any]:
    """The whole ``vitbench.verdict/1`` document, with the exit code it implies."""
    config = {_CONFIG_JSON_KEYS.get(key, key): value for key, value in asdict(report.config).items()}
    config["metrics"] = list(report.config.metrics)
    return {"schema": VERDICT_SCHEMA, "mode": report.mode, "overall": report.overall(),
            "counts": report.counts(), "noisy_tests": report.noisy_tests, "config": config,
            "baseline": report.baseline, "candidate": report.candidate, "notes": report.notes,
            "verdicts": [verdict_record(v) for v in report.verdicts],
            "exit_code": report.exit_code(on_inconclusive)}


def _number(value: Optional[float], unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "count":
        return f"{int(round(value)):,}"
    if unit == "GFLOPs":
        return f"{value:.4f}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def _ratio_with_ci(v: Verdict) -> str:
    if v.ratio is None:
        return "–"
    text = f"{v.ratio:.3f}"
    if v.ci_low is not None and v.ci_high is not None:
        low = f"{v.ci_low:.3f}" if math.isfinite(v.ci_low) else "−∞"
        high = f"{v.ci_high:.3f}" if math.isfinite(v.ci_high) else "∞"
        text += f" [{low}, {high}]"
    return text


def _rules_line(report: GateReport) -> str:
    cfg = report.config
    lockstep = any(v.design == LOCKSTEP and v.kind == NOISY for v in report.verdicts)
    noisy_rule = (f"latency and CPU peak RSS: one ln(B/A) per lockstep round (A and B workers "
                  f"side by side), one-sided exact Wilcoxon signed-rank, Hodges–Lehmann ratio "
                  f"with Tukey {cfg.ci_level:.0%} CI; " if lockstep else
                  f"latency and CPU peak RSS: one value per fresh-process run, one-sided exact "
                  f"Mann–Whitney U on logs, Hodges–Lehmann ratio with Moses {cfg.ci_level:.0%} "
                  f"CI, ")
    return (f"Rules: params/GFLOPs exact (GFLOPs only with the same counter, version and "
            f"convention); CUDA peak allocated exact ±{cfg.cuda_memory_tol_mib:g} MiB; "
            f"{noisy_rule}Holm over {report.noisy_tests} noisy test(s) at α={cfg.alpha:g}, "
            f"minimum effect δ={cfg.delta_latency_cpu_frac:.0%} CPU / "
            f"{cfg.delta_latency_cuda_frac:.0%} GPU latency, {cfg.delta_memory_cpu_frac:.0%} "
            f"(≥{cfg.memory_floor_mib:g} MiB) CPU RSS. Baseline/candidate of noisy metrics = "
            f"median of the per-run values.")


def to_markdown(report: GateReport, on_inconclusive: str = "fail") -> str:
    """The verdict as Markdown for a pull-request comment."""
    summary = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n)
    lines = [
        f"### vitbench gate: {_ICON[report.overall()]} (exit {report.exit_code(on_inconclusive)})",
        "",
        f"Mode **{report.mode}**: baseline {report.baseline['label']} "
        f"({report.baseline['runs']} run(s), {report.baseline['kind']}) vs candidate "
        f"{report.candidate['label']} ({report.candidate['runs']} run(s)). {summary}.",
        "",
        "| model | metric | baseline | candidate | ratio [95% CI] | p (Holm) | verdict | reason |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for v in report.verdicts:
        unit = f" {v.unit}" if v.unit and v.unit != "count" else ""
        p = "–" if v.p_holm is None else f"{v.p_holm:.2g}"
        reason = v.reason.replace("|", "\\|")
        lines.append(f"| {md_escape(v.model)} | {v.metric} | {_number(v.baseline, v.unit)}{unit} | "
                     f"{_number(v.candidate, v.unit)}{unit} | {_ratio_with_ci(v)} | {p} | "
                     f"{_ICON[v.verdict]} | {reason} |")
    lines += ["", _rules_line(report)]
    if report.mode == "compare" and report.baseline.get("kind") == "baseline":
        lines.append("")
        lines.append("Stored-baseline mode (weaker): the noise allowance comes from the "
                     "between-run spread recorded in the baseline (δ ≥ 3 × its robust SD); "
                     "no re-measurement confirms a failure.")
    for note in report.notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def write_verdict_json(report: GateReport, path: str | Path, on_inconclusive: str = "fail") -> Path:
    text = json.dumps(verdict_document(report, on_inconclusive), indent=1, ensure_ascii=False)
    return write_atomic(path, text + "\n")


def write_verdict_markdown(report: GateReport, path: str | Path,
                           on_inconclusive: str = "fail") -> Path:
    return write_atomic(path, to_markdown(report, on_inconclusive))


def write_report(report: GateReport, out_dir: str | Path,
                 on_inconclusive: str = "fail") -> tuple[Path, Path]:
    """``verdict.json`` and ``verdict.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return (write_verdict_json(report, out_dir / VERDICT_JSON, on_inconclusive),
            write_verdict_markdown(report, out_dir / VERDICT_MARKDOWN, on_inconclusive))
