"""Typed, validated suite specifications (pydantic v2, strict: an unknown key is an error).

A suite lists models, the settings to measure them under, and what a paper printed for
them. Settings resolve in this order, the later winning: built-in defaults → the suite's
``defaults`` → the model entry → command-line overrides. Pure data: no torch, no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vitbench.conventions import DEFAULT_FLOP_CONVENTION, DEFAULT_TOLERANCE_PCT, FlopConvention

Device = Literal["cpu", "cuda", "auto"]
DType = Literal["float32", "float16", "bfloat16"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
#: What runs the forward pass: PyTorch eager, torch.compile, or an exported graph under a
#: deployment runtime (vitbench.measure.runtimes; tensorrt needs CUDA).
RuntimeName = Literal["eager", "compile", "onnxruntime", "openvino", "tensorrt"]
RUNTIMES: tuple[str, ...] = ("eager", "compile", "onnxruntime", "openvino", "tensorrt")
ZOOS = ("timm", "torchvision", "python", "vitbench", "hf")

_MODEL_RE = re.compile(r"^(?P<zoo>[a-z]+):(?P<ident>\S+)$")


class _Strict(BaseModel):
    # allow_inf_nan=False: every float of a suite (timeouts, times, tolerances, printed
    # values) must be finite; `.inf` or `.nan` would hang a run or print `nan +nan% ✗`.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def setting(builtin: Any, description: str, *, flag: Optional[str] = None,
            default_text: Optional[str] = None, **constraints: Any) -> Any:
    """Declare a setting once: its built-in default, its help text and its command-line flag.

    Every layer (suite defaults, entry, command line) may leave a setting unset (``None``);
    :data:`BUILTIN_DEFAULTS` and the ``vitbench run`` options are derived from these fields.
    """
    extra = {"builtin": builtin, "flag": flag}
    if default_text is not None:
        extra["default_text"] = default_text
    return Field(None, description=description, json_schema_extra=extra, **constraints)


class Settings(_Strict):
    """How to measure a model. Every field is optional so entries and defaults can be partial."""

    image_size: Optional[Union[int, tuple[int, int]]] = setting(
        224, "input side in pixels, or [height, width] (on the command line N or HxW)",
        flag="--image-size")
    batch_size: Optional[Union[int, list[int], Literal["max"]]] = setting(
        1, "images per forward pass; a list sweeps (one row each; N,N,… on the command line); "
           "'max' finds the largest batch that fits (cuda)", flag="--batch-size")
    device: Optional[Device] = setting("cpu", "cpu | cuda | auto", flag="--device")
    dtype: Optional[DType] = setting("float32", "float32 | float16 | bfloat16", flag="--dtype")
    threads: Optional[int] = setting(
        None, "CPU threads for torch (intra-op)", flag="--threads",
        default_text="usable CPUs − 1, at least 1", ge=1)
    warmup: Optional[int] = setting(10, "untimed iterations before timing", flag="--warmup", ge=0)
    warmup_s: Optional[float] = setting(0.0, "and at least this many seconds of warm-up",
                                        flag="--warmup-time", ge=0)
    repeat: Optional[int] = setting(50, "timed iterations, at least", flag="--repeat", ge=1)
    min_time_s: Optional[float] = setting(1.0, "timed seconds, at least", flag="--min-time", ge=0)
    max_time_s: Optional[float] = setting(60.0, "stop timing a row after this many seconds",
                                          flag="--max-time", gt=0)
    timeout_s: Optional[float] = setting(900.0, "seconds before a model's worker is killed",
                                         flag="--timeout", gt=0)
    # A process's speed is a state of its own on a shared VM (measured: 7.3 vs 10 ms for the
    # same model in two processes), so one process per row cannot be trusted alone.
    processes: Optional[int] = setting(
        3, "fresh worker processes that time each row; their samples are pooled and the "
           "spread between their medians is reported", flag="--processes", ge=1)
    flops_convention: Optional[FlopConvention] = setting(
        DEFAULT_FLOP_CONVENTION, "what GFLOPs count: matmul-only | fvcore (also norms)",
        flag="--flops-convention")
    tolerance_pct: Optional[float] = setting(
        DEFAULT_TOLERANCE_PCT, "allowed |Δ%| vs printed (widened to the printed precision)",
        flag="--tolerance", ge=0)
    target_ci_pct: Optional[float] = setting(
        None, "time on past the minimums until the median's 95% CI half-width is within this "
              "% of it (or max_time_s)", flag="--target-ci", default_text="off", gt=0)
    mode: Optional[Literal["latency", "throughput"]] = setting(
        "latency", "latency: sync after every call; throughput: time blocks of calls, sync only "
                   "at block ends", flag="--mode")
    channels_last: Optional[bool] = setting(False, "NHWC memory format for model and input",
                                            flag="--channels-last")
    compile: Optional[Union[Literal[False], CompileMode]] = setting(
        False, "torch.compile mode: off | default | reduce-overhead | max-autotune",
        flag="--compile")
    autocast: Optional[bool] = setting(
        False, "keep float32 weights and run under torch.autocast(dtype) instead of casting "
               "the model to dtype", flag="--autocast")
    cudnn_benchmark: Optional[bool] = setting(
        None, "set torch.backends.cudnn.benchmark", flag="--cudnn-benchmark",
        default_text="leave torch's value (recorded either way)")
    runtime: Optional[Union[RuntimeName, list[RuntimeName]]] = setting(
        "eager", "what runs the model: eager | compile | onnxruntime | openvino | tensorrt "
                 "(cuda); a list (N,N,… on the command line) runs each row on each",
        flag="--runtime")
    reparameterize: Optional[bool] = setting(
        False, "fold the model into its deploy form before counting and timing (timm's "
               "reparameterize_model: RepVGG, MobileOne, FastViT, GhostNetV3, RepViT, ...); "
               "a model with nothing to fold is measured as built", flag="--reparameterize")
    worker_start: Optional[Literal["auto", "fork", "fresh"]] = setting(
        "auto", "how each worker process starts: fork (from a server per run that imported "
                "torch and the zoos once; Linux) | fresh (a new interpreter) | auto (fork for "
                "cpu rows on Linux, else fresh)", flag="--worker-start")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if value is None or value == "max":
            return value
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError("expected a batch size, a list of them, or 'max'")
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueError(f"expected a positive integer, a list of them, or 'max', got {item!r}")
            if item < 1:
                raise ValueError("Input should be greater than or equal to 1")
        if isinstance(value, (list, tuple)):
            if len(set(values)) != len(values):
                raise ValueError(f"batch sizes repeat in {list(values)}")
            return list(values)
        return value

    @field_validator("runtime", mode="before")
    @classmethod
    def _runtime(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"expected one of {', '.join(RUNTIMES)} or a list of them")
            if len(set(value)) != len(value):
                raise ValueError(f"runtimes repeat in {list(value)}")
            return list(value) if len(value) > 1 else value[0]
        return value

    @field_validator("compile", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        return "default" if value is True else value

    @field_validator("image_size", mode="before")
    @classmethod
    def _image_size(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected an integer or [height, width]")
        if isinstance(value, int):
            if value < 1:
                raise ValueError("must be a positive number of pixels")
            return value
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            return tuple(value)
        raise ValueError(f"expected an integer or [height, width] of positive integers, got {value!r}")


#: Values every setting falls back to when neither the suite nor the command line sets it.
BUILTIN_DEFAULTS: dict[str, Any] = {
    name: field.json_schema_extra["builtin"] for name, field in Settings.model_fields.items()}


class Reference(_Strict):
    """What the paper printed for a row; any subset. Keys become ``paper_<key>`` columns."""

    params_m: Optional[float] = Field(None, description="parameters, millions")
    gflops: Optional[float] = Field(None, description="GFLOPs (MACs) per image")
    top1: Optional[float] = Field(None, description="ImageNet top-1 accuracy, %")
    latency_cpu_ms: Optional[float] = None
    latency_gpu_ms: Optional[float] = None
    throughput_cpu_img_s: Optional[float] = None
    throughput_gpu_img_s: Optional[float] = None
    fps: Optional[float] = Field(None, description="frames per second as printed (usually GPU)")
    gpu_memory_mb: Optional[float] = None
    miou: Optional[float] = None
    #: Decimal places each value was printed with (filled by the loader from the YAML text).
    printed_decimals: dict[str, int] = Field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """The printed values that are present, by key."""
        return {k: v for k, v in self.model_dump(exclude={"printed_decimals"}).items()
                if v is not None}


REFERENCE_KEYS: tuple[str, ...] = tuple(k for k in Reference.model_fields if k != "printed_decimals")


class ModelEntry(Settings):
    """One row of a paper's table: the model to build, how to measure it, what was printed."""

    name: str = Field(min_length=1, max_length=200,
                      description="the row label as printed; unique in the suite")
    model: Optional[str] = Field(
        None, max_length=300,
        description="zoo:identifier, e.g. timm:pvt_v2_b0; may be omitted when unavailable")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to the builder")
    reference: Reference = Field(default_factory=Reference)
    note: str = ""
    source: Optional[str] = Field(None, description="the table this row comes from, if not the suite's")
    unavailable: Optional[str] = Field(
        None, description="why vitbench cannot build this row yet; the row is reported, not run")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("contains a control character (a newline or tab?); a row label is "
                             "one line of text")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        match = _MODEL_RE.match(value.strip())
        if not match:
            raise ValueError(f"expected 'zoo:identifier' (zoos: {', '.join(ZOOS)}), got {value!r}")
        if match["zoo"] not in ZOOS:
            raise ValueError(f"unknown zoo {match['zoo']!r}; known zoos: {', '.join(ZOOS)}")
        if match["zoo"] == "python" and match["ident"].count(":") != 1:
            raise ValueError("python models are 'python:package.module:callable'")
        return value.strip()

    @model_validator(mode="after")
    def _model_or_reason(self) -> "ModelEntry":
        if self.model is None and not self.unavailable:
            raise ValueError("model: required (or say why the row is `unavailable`)")
        return self


class Suite(_Strict):
    """A YAML suite: one paper table, as a list of models plus shared defaults."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="short identifier; used in result folder names")
    title: str = ""
    source: str = Field("", description="seed file and table title the printed values come from")
    defaults: Settings = Field(default_factory=Settings)
    models: list[ModelEntry] = Field(min_length=1)
    python_path: list[str] = Field(
        default_factory=list,
        description="folders (relative to the suite file) where python: models are found, "
                    "searched after the installed packages and the suite's own folder")
    reference_model: Optional[str] = Field(
        None, max_length=300,
        description="the model every timed row is also timed against, in alternating blocks, "
                    "for its relative latency (at the suite's defaults: input size, batch); "
                    "'none' turns it off [default: timm:resnet18]")
    #: Where the suite was read from (set by the loader, not by the YAML).
    path: Optional[str] = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> "Suite":
        seen: set[str] = set()
        for entry in self.models:
            if entry.name in seen:
                raise ValueError(f"model name {entry.name!r} appears twice; row labels must be unique")
            seen.add(entry.name)
        return self


class Job(BaseModel):
    """One model with every setting resolved: what a worker process measures."""

    model_config = ConfigDict(extra="forbid")

    name: str
    model: str
    kwargs: dict[str, Any]
    image_size: tuple[int, int]
    batch_size: int
    device: Literal["cpu", "cuda"]
    dtype: DType
    threads: int
    warmup: int
    warmup_s: float
    repeat: int
    min_time_s: float
    max_time_s: float
    timeout_s: float
    flops_convention: FlopConvention
    tolerance_pct: float
    static_only: bool = False
    #: the suite asked for ``batch_size: max``: search upward from ``batch_size``
    max_batch: bool = False
    target_ci_pct: Optional[float] = None
    mode: Literal["latency", "throughput"] = "latency"
    channels_last: bool = False
    compile: Optional[CompileMode] = None
    autocast: bool = False
    cudnn_benchmark: Optional[bool] = None
    #: fold the model into its deploy form first (:mod:`vitbench.build.deploy`)
    reparameterize: bool = False
    #: what runs the forward pass (:mod:`vitbench.measure.runtimes`)
    runtime: RuntimeName = "eager"
    #: how the worker process starts (:mod:`vitbench.run.forkserver`)
    worker_start: Literal["auto", "fork", "fresh"] = "auto"
    #: count params/FLOPs before timing (selfcheck turns it off to time only)
    count: bool = True
    #: worker processes that time this row (the first also counts); samples are pooled
    processes: int = 1
    #: absolute folders where a ``python:`` model is found, searched after the installed
    #: packages: the suite's folder, then its ``python_path:`` (see vitbench.build.pythonpath)
    python_path: list[str] = Field(default_factory=list)


def resolve_settings(*layers: Settings | dict[str, Any] | None) -> dict[str, Any]:
    """Merge setting layers; later layers win, ``None`` means "not set here"."""
    merged = dict(BUILTIN_DEFAULTS)
    for layer in layers:
        if layer is None:
            continue
        values = layer.model_dump() if isinstance(layer, BaseModel) else layer
        for key in BUILTIN_DEFAULTS:
            if values.get(key) is not None:
                merged[key] = values[key]
    return merged
