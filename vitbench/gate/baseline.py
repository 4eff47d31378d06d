"""The baseline file (schema ``vitbench.baseline/1``): per-run summaries of K runs of a suite.

It keeps, per model, the deterministic metrics and one summary per run (latency quantiles of
each run's samples, peak memory), so ``vitbench compare`` can judge a candidate against the
between-run spread of those K runs without their raw samples. :func:`load_side` reads either
this file or ``results.json`` runs, whichever it is given. Both are read through
:func:`vitbench.records.reading.read_json`: a corrupt file is one line naming it (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_serializer)

from vitbench.errors import ResultsError
from vitbench.files import write_atomic
from vitbench.gate.config import GateError
from vitbench.gate.sides import (BASELINE, STORED_QUANTILES, TIMING_FIELDS, ModelRuns, Side,
                                 load_results, side_from_results)
from vitbench.records import READABLE_SCHEMAS as RESULT_SCHEMAS
from vitbench.records import RunResult
from vitbench.records.reading import check_schema, first_problem, read_json

BASELINE_SCHEMA = "vitbench.baseline/1"
_NOTE = ("per-run summaries: latency_ms[qX] holds quantile X of each run's samples, one value "
         "per fresh-process run; peak_memory_mb one value per run")


def _omitted_when_none(**kwargs: Any) -> Any:
    """A field the file leaves out when it has no value."""
    return Field(None, exclude_if=lambda value: value is None, **kwargs)


class BaselineEntry(BaseModel):
    """One model of a baseline: its settings, deterministic counts and per-run summaries."""

    model_config = ConfigDict(extra="forbid")

    model: str = ""
    device: Optional[str] = None
    dtype: Optional[str] = None
    batch_size: Optional[int] = None
    image_size: Optional[list[int]] = None
    threads: Optional[int] = None
    status: list[str] = Field(default_factory=lambda: ["ok"])
    params: Optional[int] = None
    gflops: Optional[float] = None
    gflops_counter: Optional[str] = None
    flops_convention: Optional[str] = None
    warning: Optional[str] = _omitted_when_none()
    latency_ms: Optional[dict[str, list[float]]] = _omitted_when_none(
        description="'q0.2' → that quantile of each run's samples, one value per run")
    peak_memory_mb: Optional[list[float]] = _omitted_when_none(description="MiB, one per run")
    memory_method: Optional[str] = None  # written with peak_memory_mb, even when unknown
    errors: Optional[list[str]] = _omitted_when_none()

    @field_validator("latency_ms")
    @classmethod
    def _quantile_keys(cls, value: Optional[dict[str, list[float]]]) -> Any:
        """Keys are ``q`` and a quantile (``q0.2``): :meth:`to_runs` reads the number back."""
        for key in value or {}:
            if not (key.startswith("q") and _quantile(key[1:]) is not None):
                raise ValueError(f"{key!r} is not q<quantile>, a quantile between 0 and 1 "
                                 "(q0.2)")
        return value

    @model_serializer(mode="wrap")
    def _memory_method_with_memory(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self.peak_memory_mb is None:
            data.pop("memory_method", None)
        return data

    @classmethod
    def from_runs(cls, m: ModelRuns) -> "BaselineEntry":
        entry = cls(model=m.model, **m.settings, status=m.status,
                    params=m.params[0] if m.params else None,
                    gflops=m.gflops[0] if m.gflops else None,
                    gflops_counter=m.gflops_counter, flops_convention=m.flops_convention)
        if len(set(m.params)) > 1 or len(set(m.gflops)) > 1:
            entry.warning = "deterministic metrics differ between runs; the first is kept"
        if m.latency:
            entry.latency_ms = {f"q{q:g}": [round(v, 6) for v in values]
                                for q, values in m.latency.items()}
        if m.memory:
            entry.peak_memory_mb = [round(v, 4) for v in m.memory]
            entry.memory_method = m.memory_method
        if m.errors:
            entry.errors = m.errors
        return entry

    def to_runs(self, name: str) -> ModelRuns:
        settings = {k: getattr(self, k) for k in TIMING_FIELDS}
        return ModelRuns(
            name=name, model=self.model, settings=settings, status=list(self.status or ["ok"]),
            errors=list(self.errors or []), gflops_counter=self.gflops_counter,
            flops_convention=self.flops_convention, memory_method=self.memory_method,
            params=[self.params] if self.params is not None else [],
            gflops=[self.gflops] if self.gflops is not None else [],
            latency={float(key[1:]): list(values) for key, values in (self.latency_ms or {}).items()},
            memory=list(self.peak_memory_mb or []))


class Baseline(BaseModel):
    """A ``vitbench.baseline/1`` file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["vitbench.baseline/1"] = Field(BASELINE_SCHEMA, alias="schema")
    created_utc: str = ""
    runs: int = Field(1, ge=1)
    suite: dict[str, Any] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    environment: dict[str, Any] = Field(default_factory=dict)
    quantiles: list[float] = Field(default_factory=lambda: list(STORED_QUANTILES))
    note: str = _NOTE
    models: dict[str, BaselineEntry] = Field(default_factory=dict)
    calibration: Optional[BaselineEntry] = None

    @field_validator("quantiles")
    @classmethod
    def _quantiles_between_0_and_1(cls, value: list[float]) -> list[float]:
        bad = [q for q in value if _quantile(str(q)) is None]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a quantile between 0 and 1")
        return value

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=1, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, self.to_json())

    @classmethod
    def from_document(cls, doc: Any, label: str = "baseline") -> "Baseline":
        """Validate a parsed file; a wrong schema or a malformed entry is a :class:`GateError`
        of one line, ``LABEL: models.m.params: Input should be a valid integer``."""
        try:
            check_schema(doc, (BASELINE_SCHEMA,), "baseline file")
        except ResultsError as exc:
            raise GateError(f"{label}: {exc}") from None
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise GateError(f"{label}: {first_problem(exc)}") from None

    @classmethod
    def load(cls, path: str | Path) -> "Baseline":
        return cls.from_document(_read(Path(path), "baseline file"), str(path))

    def to_side(self, label: str = "baseline") -> Side:
        side = Side(label=label, kind=BASELINE, runs=self.runs, environment=dict(self.environment),
                    suite=dict(self.suite), sources=list(self.sources))
        side.models = {name: entry.to_runs(name) for name, entry in self.models.items()}
        if self.calibration is not None:
            side.calibration = self.calibration.to_runs("calibration")
        return side


def build_baseline(runs: Sequence[RunResult], sources: Sequence[str] = (),
                   quantiles: Iterable[float] = STORED_QUANTILES,
                   created_utc: str = "") -> Baseline:
    """A baseline from K runs of a suite: per-run summaries, no raw samples."""
    quantiles = sorted(set(STORED_QUANTILES) | {float(q) for q in quantiles})
    side = side_from_results(runs, "baseline", quantiles)
    return Baseline(
        created_utc=created_utc, runs=side.runs, suite=side.suite, sources=list(sources),
        environment=side.environment, quantiles=quantiles,
        models={name: BaselineEntry.from_runs(m) for name, m in side.models.items()},
        calibration=BaselineEntry.from_runs(side.calibration) if side.calibration else None)


def _quantile(text: str) -> Optional[float]:
    """``text`` as a quantile (0 to 1), or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value <= 1 else None


def _read(path: Path, what: str) -> Any:
    """:func:`read_json`, its one-line refusal as the gate's error."""
    try:
        return read_json(path, what)
    except ResultsError as exc:
        raise GateError(str(exc)) from None


def load_side(paths: Sequence[str | Path], label: str) -> Side:
    """One baseline file, or one or more results.json files (or their folders; each one run)."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_file():
        doc = _read(paths[0], "results or baseline file")
        try:
            schema = check_schema(doc, (*RESULT_SCHEMAS, BASELINE_SCHEMA),
                                  "results or baseline file")
        except ResultsError as exc:
            raise GateError(f"{paths[0]}: {exc}") from None
        if schema == BASELINE_SCHEMA:
            side = Baseline.from_document(doc, str(paths[0])).to_side(label)
            side.sources = [str(paths[0])]
            return side
    side = side_from_results(load_results(paths), label)
    side.sources = [str(p) for p in paths]
    return side
