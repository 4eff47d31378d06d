"""Deployment runtimes: the row's model exported to ONNX and run by ONNX Runtime, OpenVINO or
TensorRT (ONNX Runtime's TensorRT provider), timed by the same loop as eager PyTorch.

:func:`deploy` exports the prepared module once per row (``torch.onnx.export``: the dynamo
exporter, torch's default, falling back to the TorchScript exporter; the processes of one
row share the file, see :func:`_export_dir`), builds the runtime's session with the row's
threads, and checks its output against eager's on the row's own fixed timing input before
any timing. It returns a :class:`Deployed`: called with the inputs like the module, it runs
the session; :mod:`vitbench.measure.prepare` hands it to the timed loop. Params and GFLOPs
stay the PyTorch model's (the job counts the module, not the graph).

:func:`runtime_problem` says, without importing any runtime, why a job cannot run (a missing
extra, tensorrt on CPU, a setting that only applies to PyTorch), so the CLI stops before
anything is measured.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from vitbench.config.spec import Job
from vitbench.errors import VitbenchError
from vitbench.records import Deployment, ModelResult

#: Runtimes that run an exported graph (eager and compile run the PyTorch module).
DEPLOYED = ("onnxruntime", "openvino", "tensorrt")
#: runtime → (the pip extra that installs it, the modules it needs)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "onnxruntime": ("onnx", ("onnx", "onnxscript", "onnxruntime")),
    "openvino": ("openvino", ("onnx", "onnxscript", "openvino")),
    "tensorrt": ("tensorrt", ("onnx", "onnxscript", "onnxruntime", "tensorrt")),
}
#: (atol, rtol) by dtype: outputs match when max|runtime − eager| <= atol + rtol·max|eager|
TOLERANCE: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-3), "float16": (1e-3, 2e-2), "bfloat16": (1e-2, 5e-2)}
#: a folder to export into instead of the per-parent temporary one (vitbench runtime-check)
EXPORT_DIR_ENV = "VITBENCH_EXPORT_DIR"
#: the ONNX opset the TorchScript exporter (the fallback) is asked for
FALLBACK_OPSET = 17


class ExportError(RuntimeError):
    """The model could not be exported to ONNX (the row fails; the suite goes on)."""


def is_deployed(job: Job) -> bool:
    return job.runtime in DEPLOYED


def runtime_problem(job: Job) -> Optional[str]:
    """Why ``job`` cannot run on its runtime here, in one line (None: it can)."""
    if not is_deployed(job) or job.static_only:
        return None
    if job.runtime == "tensorrt" and job.device != "cuda":
        return "runtime tensorrt needs device: cuda (on CPU use onnxruntime or openvino)"
    for setting, value in (("channels_last", job.channels_last), ("autocast", job.autocast),
                           ("batch_size: max", job.max_batch)):
        if value:
            return f"{setting} applies to PyTorch runtimes (eager, compile), not {job.runtime}"
    extra, modules = EXTRAS[job.runtime]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        return (f"runtime {job.runtime} needs the {extra!r} extra (missing: "
                f"{', '.join(missing)}): pip install -e '.[{extra}]'")
    return None


def check_runtimes(jobs: Iterable[tuple[str, Job]]) -> None:
    """Stop before measuring when a row's runtime cannot run here: (row name, job) pairs."""
    for name, job in jobs:
        problem = runtime_problem(job)
        if problem:
            raise VitbenchError(f"row {name!r}: {problem}")


class Deployed:
    """A session that runs like the module: ``deployed(*inputs)``. Weights (for peak
    memory's parts) and example inputs are the PyTorch module's."""

    def __init__(self, module, run: Callable[[tuple], Any], deployment: Deployment):
        self.torch_module = module
        self.run = run
        self.deployment = deployment
        custom = getattr(module, "vitbench_example_inputs", None)
        if callable(custom):
            self.vitbench_example_inputs = custom

    def __call__(self, *inputs):
        return self.run(inputs)

    def parameters(self):
        return self.torch_module.parameters()

    def buffers(self):
        return self.torch_module.buffers()


def _tensors(value) -> list:
    """The tensors of a model's output, in the order the ONNX exporter flattens them."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if any(k in line for k in (
        "OpOverload", "not supported", "Unsupported", "unsupported", "not found", "No decomp"))]
    text = (named or lines or [""])[0]
    return f"{exc.__class__.__name__}: {text}"[:300]


def _export_dir() -> Path:
    """Where the processes of one run share their exported graphs: one folder per parent
    process (the runner or the ab parent), removed once that process is gone."""
    if os.environ.get(EXPORT_DIR_ENV):  # a tool that reads the graph too (runtime-check)
        folder = Path(os.environ[EXPORT_DIR_ENV])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    root = Path(tempfile.gettempdir())
    for stale in root.glob("vitbench-export-*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass
    folder = root / f"vitbench-export-{os.getppid()}"
    folder.mkdir(exist_ok=True)
    return folder


def _export_key(job: Job, module, inputs: tuple) -> str:
    import inspect

    import torch

    try:
        source = Path(inspect.getsourcefile(type(module)) or "")
        stamp = [str(source), source.stat().st_mtime_ns, source.stat().st_size]
    except (TypeError, OSError):
        stamp = []
    described = dict(model=job.model, kwargs=job.kwargs, image_size=job.image_size,
                     dtype=job.dtype, device=job.device, torch=torch.__version__, source=stamp,
                     inputs=[list(t.shape) for t in inputs if isinstance(t, torch.Tensor)])
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:24]


def export_onnx(job: Job, module, inputs: tuple) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of ``module`` at ``inputs``' shapes and what made it (exporter, opset,
    seconds, whether another process of the row had already exported it)."""
    import torch

    folder = _export_dir()
    key = _export_key(job, module, inputs)
    path, meta_path = folder / f"{key}.onnx", folder / f"{key}.json"
    if path.is_file() and meta_path.is_file():
        return path, {**json.loads(meta_path.read_text()), "export_s": 0.0, "reused": True}
    partial = folder / f"{key}.{os.getpid()}.partial.onnx"
    started = time.perf_counter()
    try:
        torch.onnx.export(module, inputs, str(partial), dynamo=True, external_data=False,
                          verbose=False)
        exporter = "torch.onnx.export (dynamo)"
    except Exception as dynamo_exc:  # noqa: BLE001 - the fallback says why if it fails too
        partial.unlink(missing_ok=True)
        try:
            torch.onnx.export(module, inputs, str(partial), dynamo=False,
                              opset_version=FALLBACK_OPSET)
            exporter = "torch.onnx.export (torchscript)"
        except Exception as script_exc:  # noqa: BLE001
            partial.unlink(missing_ok=True)
            raise ExportError(f"ONNX export failed: dynamo exporter: {_first_line(dynamo_exc)}; "
                              f"torchscript exporter: {_first_line(script_exc)}") from None
    import onnx

    proto = onnx.load(str(partial), load_external_data=False)
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    meta = {"exporter": exporter, "opset": opsets.get("ai.onnx"), "nodes": len(proto.graph.node),
            "bytes": partial.stat().st_size, "export_s": round(time.perf_counter() - started, 3)}
    meta_path.with_suffix(f".{os.getpid()}.partial").write_text(json.dumps(meta))
    os.replace(partial, path)
    os.replace(meta_path.with_suffix(f".{os.getpid()}.partial"), meta_path)
    return path, {**meta, "reused": False}


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ort_session(job: Job, path: Path) -> tuple[Callable[[tuple], Any], dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = job.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wanted = {"cpu": ["CPUExecutionProvider"],
              "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}[job.device]
    if job.runtime == "tensorrt":
        wanted = ["TensorrtExecutionProvider", *wanted]
    session = ort.InferenceSession(str(path), options, providers=wanted)
    if session.get_providers()[0] != wanted[0]:
        raise RuntimeError(f"onnxruntime {ort.__version__} has no {wanted[0]} here "
                           f"(available: {', '.join(ort.get_available_providers())})")
    names = [i.name for i in session.get_inputs()]
    settings = {"providers": session.get_providers(), "intra_op_num_threads": job.threads,
                "inter_op_num_threads": 1, "execution_mode": "sequential",
                "graph_optimization_level": "all"}
    if job.device == "cpu":
        def run(inputs: tuple):
            return session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
        return run, settings

    import numpy as np

    binding = session.io_binding()
    outputs = [o.name for o in session.get_outputs()]

    def run_cuda(inputs: tuple):
        for name, tensor in zip(names, inputs):
            tensor = tensor.contiguous()
            binding.bind_input(name, "cuda", tensor.device.index or 0,
                               np.dtype(str(tensor.dtype).removeprefix("torch.")),
                               list(tensor.shape), tensor.data_ptr())
        for name in outputs:
            binding.bind_output(name, "cuda")
        session.run_with_iobinding(binding)
        return binding.get_outputs()
    return run_cuda, settings


def _openvino_session(job: Job, path: Path) -> tuple[Callable[[tuple], Any], dict[str, Any]]:
    import openvino as ov

    if job.device != "cpu":
        raise RuntimeError("runtime openvino runs on device: cpu here (its GPU plugin is an "
                           "Intel GPU's, not CUDA)")
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": job.threads, "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1,
              # OpenVINO runs float32 graphs in bf16 on CPUs that have it unless told not to
              "INFERENCE_PRECISION_HINT": {"float32": "f32", "float16": "f16",
                                           "bfloat16": "bf16"}[job.dtype]}
    try:
        model = core.read_model(str(path))
    except RuntimeError as exc:  # its frontend lacks an op: say which, in one line
        said = [line.strip(" -") for line in str(exc).splitlines()
                if "Conversion is failed for" in line or "Unsupported" in line]
        raise RuntimeError("OpenVINO cannot read the exported graph: "
                           + ("; ".join(said[:3]) or _first_line(exc))) from None
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    settings = {key: str(compiled.get_property(key)) for key in config}
    count = len(compiled.outputs)

    def run(inputs: tuple):
        request.infer([t.numpy() for t in inputs], share_inputs=True)
        return [request.get_output_tensor(i).data for i in range(count)]
    return run, settings


def _as_numpy(value) -> Any:
    import numpy as np

    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # an OrtValue on CUDA
        return value.numpy()
    return np.asarray(value)


def compare_outputs(job: Job, eager: list, runtime: list) -> dict[str, Any]:
    """Max |runtime − eager| over every output element, relative to max|eager|, and whether
    that is within :data:`TOLERANCE` (shapes or counts that differ never match)."""
    import numpy as np

    atol, rtol = TOLERANCE[job.dtype]
    result: dict[str, Any] = {"atol": atol, "rtol": rtol}
    ref = [t.detach().float().cpu().numpy() for t in eager]
    got = [_as_numpy(o).astype(np.float64) for o in runtime]
    if len(ref) != len(got) or any(r.shape != g.shape for r, g in zip(ref, got)):
        result.update(outputs_match=False, mismatch=(
            f"eager gives {len(ref)} output(s) {[list(r.shape) for r in ref]}, the runtime "
            f"{len(got)} {[list(g.shape) for g in got]}"))
        return result
    abs_err = max((float(np.max(np.abs(g - r))) if r.size else 0.0 for r, g in zip(ref, got)),
                  default=0.0)
    scale = max((float(np.max(np.abs(r))) if r.size else 0.0 for r in ref), default=0.0)
    result.update(max_abs_error=abs_err, max_rel_error=abs_err / scale if scale else None,
                  outputs_match=bool(np.isfinite(abs_err) and abs_err <= atol + rtol * scale))
    return result


def deploy(job: Job, module, inputs: tuple) -> Deployed:
    """Export ``module`` (already on the job's device and dtype), build the runtime's
    session with the job's threads, and check its output against eager's on ``inputs``."""
    import torch

    module.eval()
    with torch.inference_mode():
        eager = [t.clone() for t in _tensors(module(*inputs))]
    path, meta = export_onnx(job, module, inputs)
    started = time.perf_counter()
    if job.runtime == "openvino":
        run, settings = _openvino_session(job, path)
    else:
        run, settings = _ort_session(job, path)
    session_s = round(time.perf_counter() - started, 3)
    checked = compare_outputs(job, eager, list(run(inputs)))
    package = {"openvino": "openvino", "tensorrt": "tensorrt"}.get(job.runtime, "onnxruntime")
    version = _version(package) or (_version("onnxruntime-gpu") if package == "onnxruntime"
                                    else None)
    if checked.get("mismatch"):
        settings = {**settings, "output_mismatch": checked["mismatch"]}
    deployment = Deployment(
        runtime=job.runtime, runtime_version=version, exporter=meta["exporter"],
        opset=meta["opset"], graph_bytes=meta["bytes"], graph_nodes=meta["nodes"],
        export_s=meta["export_s"], session_s=session_s, export_reused=meta["reused"],
        session=settings, max_abs_error=checked.get("max_abs_error"),
        max_rel_error=checked.get("max_rel_error"), atol=checked["atol"], rtol=checked["rtol"],
        outputs_match=checked["outputs_match"])
    return Deployed(module, run, deployment)


def apply_deployment(row: ModelResult, deployment: Optional[Deployment]) -> None:
    """Put a deployment runtime's export and output check on the row (``None``: eager or
    compile, nothing to put); a mismatch is a warning that says its latency is not
    comparable with eager's."""
    if deployment is None:
        return
    row.deployment = deployment
    if deployment.outputs_match is False:
        detail = deployment.session.get("output_mismatch") or (
            f"max |error| {deployment.max_abs_error:.3g} (relative "
            f"{deployment.max_rel_error or 0:.3g}) > {deployment.atol:g} + "
            f"{deployment.rtol:g}·max|eager|")
        row.warnings.append(f"output mismatch: {deployment.runtime}'s output differs from "
                            f"eager's ({detail}); its latency is not comparable")


def deployment_of(module) -> Optional[Deployment]:
    """The :class:`Deployment` of a prepared module (None unless a runtime runs it)."""
    deployment = getattr(module, "deployment", None)
    return deployment if isinstance(deployment, Deployment) else None
