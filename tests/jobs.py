"""One resolved :class:`~vitbench.config.spec.Job` for tests that measure small models directly."""

from __future__ import annotations

from pathlib import Path

from vitbench.config.spec import Job

#: the repository: where ``python:tests.fixtures_models:NAME`` is found (a worker searches
#: the job's python_path, never the working directory)
REPO = str(Path(__file__).resolve().parents[1])


def small_job(model: str, **changes) -> Job:
    """A CPU job at 32 px, batch 1, one thread, a very short timing protocol, the repository
    on its python path; ``changes`` override any field (``name`` defaults to the model)."""
    fields = dict(name=model, model=model, kwargs={}, image_size=(32, 32), batch_size=1,
                  device="cpu", dtype="float32", threads=1, warmup=1, warmup_s=0.0, repeat=3,
                  min_time_s=0.0, max_time_s=5.0, timeout_s=120,
                  flops_convention="matmul-only", tolerance_pct=5.0, python_path=[REPO])
    fields.update(changes)
    return Job(**fields)
