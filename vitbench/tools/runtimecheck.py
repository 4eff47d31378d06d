"""Does vitbench's latency on a deployment runtime agree with the runtime's own benchmark?

For OpenVINO the pip package ships ``benchmark_app``. In each of ``rounds`` interleaved
rounds (the order alternating, as :mod:`vitbench.tools.selfcheck` interleaves its methods,
because a shared VM's speed drifts over tens of seconds), the same row is timed by

* ``vitbench`` — a fresh worker process, exactly as ``vitbench run --runtime openvino`` times
  it (export, session with ``INFERENCE_NUM_THREADS``, ``PERFORMANCE_HINT=LATENCY``, one
  stream, f32; warm-up; samples; median), and
* ``benchmark_app`` — on the very ONNX file that worker exported, with the same threads,
  ``-hint none -nstreams 1 -infer_precision f32 -api sync`` (the tool takes threads
  and streams only without a hint), for ``seconds``; its
  reported median latency.

The ratio vitbench / benchmark_app is taken within each round; the median over rounds is
the agreement (1.00 = the same number).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from vitbench.config.spec import Job
from vitbench.errors import VitbenchError

#: benchmark_app prints ``[ INFO ]    Median:        12.34 ms`` (or ``us``) under "Latency:"
_MEDIAN_RE = re.compile(r"Median:\s*([0-9.]+)\s*(ms|us|s)\b")
_TO_MS = {"s": 1e3, "ms": 1.0, "us": 1e-3}
#: the runtimes with a benchmark tool this module can drive
TOOLS = {"openvino": "benchmark_app"}


@dataclass
class RuntimeAgreement:
    """Per-round medians (ms) of both methods, and their ratios."""

    model: str
    runtime: str
    threads: int
    tool: str
    vitbench_ms: list[float] = field(default_factory=list)
    tool_ms: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.vitbench_ms, self.tool_ms)]

    @property
    def ratio(self) -> Optional[float]:
        return statistics.median(self.ratios) if self.ratios else None

    def lines(self) -> list[str]:
        out = [f"{self.model} on {self.runtime}, {self.threads} thread(s): vitbench vs "
               f"{self.tool}, {len(self.ratios)} interleaved round(s)"]
        for index, (a, b) in enumerate(zip(self.vitbench_ms, self.tool_ms), start=1):
            out.append(f"  round {index}: vitbench {a:.3f} ms, {self.tool} {b:.3f} ms, "
                       f"ratio {a / b:.3f}")
        if self.ratio is not None:
            out.append(f"  median ratio {self.ratio:.3f} "
                       f"({'within' if abs(self.ratio - 1) <= 0.05 else 'outside'} ±5 %)")
        return out


def tool_command(runtime: str) -> list[str]:
    """The benchmark tool's command (next to this Python first), or a one-line error."""
    name = TOOLS.get(runtime)
    if name is None:
        raise VitbenchError(f"no benchmark tool known for runtime {runtime!r}; known: "
                            f"{', '.join(TOOLS)}")
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise VitbenchError(f"{name} not found (it ships with the openvino package: "
                            "pip install -e '.[openvino]')")
    return [found]


def time_with_tool(job: Job, onnx_path: Path, seconds: float) -> float:
    """``benchmark_app``'s median latency (ms) for the exported graph at the job's threads."""
    # benchmark_app takes -nthreads and -nstreams only with -hint none (its rule, not
    # OpenVINO's); one stream and the threads are what the LATENCY hint gives vitbench's session
    command = [*tool_command(job.runtime), "-m", str(onnx_path), "-d", "CPU", "-hint", "none",
               "-nstreams", "1", "-nthreads", str(job.threads), "-api", "sync",
               "-infer_precision", {"float32": "f32", "float16": "f16",
                                    "bfloat16": "bf16"}[job.dtype], "-t", f"{seconds:g}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds * 10 + 120)
    found = _MEDIAN_RE.findall(proc.stdout)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise VitbenchError(f"{command[0]} failed (exit {proc.returncode}): {tail[0][:200]}")
    value, unit = found[-1]
    return float(value) * _TO_MS[unit]


def runtime_agreement(job: Job, *, rounds: int = 3, seconds: float = 5.0,
                      progress: Callable[[str], None] = lambda line: None) -> RuntimeAgreement:
    """Time ``job`` (a deployment runtime's row) by vitbench and by the runtime's tool in
    ``rounds`` interleaved rounds; each round's vitbench number is a fresh worker process."""
    from vitbench.measure.runtimes import EXPORT_DIR_ENV
    from vitbench.run.workers import run_worker

    tool_command(job.runtime)  # before anything runs
    result = RuntimeAgreement(job.model, job.runtime, job.threads, TOOLS[job.runtime])
    with tempfile.TemporaryDirectory(prefix="vitbench-runtime-check-") as folder:
        previous = os.environ.get(EXPORT_DIR_ENV)
        os.environ[EXPORT_DIR_ENV] = folder  # the workers export here; the tool reads it
        try:
            for index in range(rounds):
                order = ("vitbench", "tool") if index % 2 == 0 else ("tool", "vitbench")
                medians: dict[str, float] = {}
                for method in order:
                    if method == "tool":
                        graphs = sorted(Path(folder).glob("*.onnx"))
                        if not graphs:  # the first round starts with vitbench, which exports
                            raise VitbenchError("no exported graph to give the tool")
                        medians["tool"] = time_with_tool(job, graphs[0], seconds)
                    else:
                        row = run_worker(job)
                        if row.status != "ok" or row.latency_median_ms is None:
                            raise VitbenchError(f"vitbench's worker failed: {row.error}")
                        medians["vitbench"] = row.latency_median_ms
                result.vitbench_ms.append(medians["vitbench"])
                result.tool_ms.append(medians["tool"])
                progress(f"round {index + 1}/{rounds}: vitbench {medians['vitbench']:.3f} ms, "
                         f"{result.tool} {medians['tool']:.3f} ms")
        finally:
            if previous is None:
                os.environ.pop(EXPORT_DIR_ENV, None)
            else:
                os.environ[EXPORT_DIR_ENV] = previous
    return result
