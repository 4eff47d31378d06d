"""Worker process: measure one job and write its row as JSON.

Usage (by the runner, not by people): ``python -m vitbench.measure.worker JOB.json ROW.json``.
Stage names go to stdout, one per line (``stage build``), so the parent can show progress.
Threads are fixed by the parent through ``OMP_NUM_THREADS`` before torch is imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    job_path, row_path = Path(argv[0]), Path(argv[1])
    from vitbench.measure.job import measure_job
    from vitbench.config.spec import Job

    job = Job.model_validate_json(job_path.read_text(encoding="utf-8"))

    def on_stage(stage: str) -> None:
        print(f"stage {stage}", flush=True)

    row = measure_job(job, on_stage)
    tmp = row_path.with_suffix(".tmp")
    tmp.write_text(row.model_dump_json(), encoding="utf-8")
    tmp.replace(row_path)
    print("stage done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
