"""``vitbench runtime-check``: vitbench's latency on a deployment runtime against the
runtime's own benchmark tool (OpenVINO's ``benchmark_app``), in interleaved rounds."""

from __future__ import annotations

from typing import Optional

import typer

from vitbench.cli.app import app, fail
from vitbench.errors import VitbenchError


@app.command("runtime-check")
def runtime_check(
    model: str = typer.Argument(..., metavar="MODEL", help="zoo:name (a bare name means timm), e.g. timm:resnet18"),
    runtime: str = typer.Option("openvino", "--runtime", help="the runtime whose own benchmark tool is compared (openvino: benchmark_app)"),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads, for both"),
    rounds: int = typer.Option(3, "--rounds", min=1, help="interleaved rounds (each: one fresh vitbench worker and one tool run)"),
    seconds: float = typer.Option(5.0, "--seconds", min=0.5, help="timed seconds per method per round (vitbench's min_time_s and the tool's -t)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=8, help="input side [default: the zoo's for the model]"),
) -> None:
    """Compare vitbench's median latency on a deployment runtime with the runtime's own
    benchmark tool, on the same exported graph and threads.

    Each round times the row in a fresh vitbench worker (as `vitbench run --runtime` does)
    and runs the tool on the ONNX file that worker exported (OpenVINO: benchmark_app -hint
    none -nstreams 1 -nthreads N -infer_precision f32 -api sync), alternating which goes
    first; the per-round ratio vitbench/tool and their median are printed. Exit 0, or 2 when
    the runtime or its tool is missing.

    Example:

    \b
      vitbench runtime-check timm:resnet18 --runtime openvino --threads 1 --rounds 3
    """
    from vitbench.cli.console import err, out
    from vitbench.config.adhoc import qualified, suite_for_models
    from vitbench.config.suite import resolve_jobs
    from vitbench.build.zoo import default_image_size
    from vitbench.measure.runtimes import check_runtimes
    from vitbench.tools.runtimecheck import runtime_agreement

    try:
        name = qualified(model)
        size = image_size or default_image_size(name)
        suite = suite_for_models([name], image_sizes={name: size} if size else {})
        job = resolve_jobs(suite, suite.models[0], {
            "threads": threads, "runtime": runtime, "processes": 1, "min_time_s": seconds})[0]
        job = job.model_copy(update={"count": False})  # timing only
        check_runtimes([(job.name, job)])
        result = runtime_agreement(job, rounds=rounds, seconds=seconds,
                                   progress=lambda m: err.print(m, markup=False, highlight=False))
    except VitbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    for line in result.lines():
        out.print(line, markup=False, highlight=False)
