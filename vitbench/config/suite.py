"""Read a suite file (YAML, safe loader), validate it strictly, and resolve it into jobs.

Errors name the file, the entry and the field, e.g.::

    suites/lightweight.yaml: models[2] (PVTv2-B0): batch_size: Input should be greater than or equal to 1
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from pydantic import ValidationError

from vitbench.errors import SuiteError
from vitbench.config.spec import Job, ModelEntry, Reference, Settings, Suite, resolve_settings
from vitbench.config.yamlfile import PrintedFloat, clip, load_yaml, read_suite_text


def _record_printed_decimals(raw: Any) -> None:
    """Copy each reference value's printed precision into ``printed_decimals``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        return
    for entry in raw["models"]:
        ref = entry.get("reference") if isinstance(entry, dict) else None
        if not isinstance(ref, dict):
            continue
        given = ref.get("printed_decimals")
        if given is not None and not isinstance(given, dict):
            continue  # validation names the field
        decimals = dict(given or {})
        for key, value in ref.items():
            if key == "printed_decimals" or isinstance(value, bool):
                continue
            if isinstance(value, PrintedFloat):
                decimals.setdefault(key, value.decimals)
            elif isinstance(value, int):
                decimals.setdefault(key, 0)
        if decimals:
            ref["printed_decimals"] = decimals


def _describe_location(raw: Any, loc: tuple[Any, ...]) -> tuple[str, str]:
    """Turn a pydantic error location into ('models[2] (Name)', 'field.sub')."""
    parts = list(loc)
    where = ""
    if len(parts) >= 2 and parts[0] == "models" and isinstance(parts[1], int):
        index = parts[1]
        where = f"models[{index}]"
        try:
            label = raw["models"][index].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            label = None
        if label:
            where += f" ({clip(str(label), 60)})"
        parts = parts[2:]
    field = ".".join(str(p) for p in parts if not str(p).startswith(("function-", "tagged-union")))
    return where, clip(field, 80)


def _format_validation_error(path: str, raw: Any, error: ValidationError) -> SuiteError:
    # An unknown key first: a typo'd 'modles' explains the missing 'models' that follows it.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    where, field = _describe_location(raw, tuple(first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = _unknown_key_message(where, field)
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "finite_number":
        message = f"must be a finite number, got {_as_yaml(first['input'])}"
    elif first["type"] in ("model_type", "dict_type"):
        message = f"expected a mapping of keys to values, got {_kind(first['input'])}"
    message = clip(message, 200)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    location = ": ".join(p for p in (where, field) if p)
    return SuiteError(path, location, message)


def _kind(value: Any) -> str:
    """What a YAML value is, in a user's words."""
    if value is None:
        return "nothing (null)"
    return {list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", dict: "a mapping"}.get(type(value), type(value).__name__)


def _as_yaml(value: Any) -> str:
    """A value as the YAML spelled it: .inf, -.inf, .nan; others as Python prints them."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    return clip(repr(value), 40)


def _unknown_key_message(where: str, field: str) -> str:
    """'unknown key', with the closest key that is allowed where this one stands."""
    import difflib

    *parents, key = field.split(".")
    if parents[-1:] == ["reference"]:
        known = list(Reference.model_fields)
    elif parents[-1:] == ["defaults"]:
        known = list(Settings.model_fields)
    elif where:
        known = list(ModelEntry.model_fields)
    else:
        known = [name for name in Suite.model_fields if name != "path"]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint}"


def _check_unique_names(path: str, raw: dict) -> None:
    first_seen: dict[str, int] = {}
    models = raw.get("models")
    for index, entry in enumerate(models if isinstance(models, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_seen:
            raise SuiteError(path, f"models[{index}] ({clip(name, 60)}): name",
                             f"appears twice (also models[{first_seen[name]}]); row labels must be unique")
        first_seen[name] = index


def parse_suite(text: str, path: str = "<string>") -> Suite:
    """Validate suite YAML text. Raises :class:`SuiteError` naming file, entry and field."""
    raw = load_yaml(text, path)
    if raw is None:
        raise SuiteError(path, "", "empty (no YAML content); a suite is a mapping with 'name' and "
                                   "'models', e.g. suites/ci-smoke.yaml")
    if not isinstance(raw, dict):
        raise SuiteError(path, "", f"expected a mapping with 'name' and 'models' at the top "
                                   f"level, got {_kind(raw)}")
    _record_printed_decimals(raw)
    _check_unique_names(path, raw)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise _format_validation_error(path, raw, exc) from None
    return suite.model_copy(update={"path": path})


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file (bounded in size, decoded as :mod:`.yamlfile` says)."""
    return parse_suite(read_suite_text(Path(path)), str(path))


def select_entries(suite: Suite, only: Optional[Iterable[str]] = None) -> list[ModelEntry]:
    """The suite's entries, or those named in ``only`` (exact row labels, case-insensitive)."""
    if not only:
        return list(suite.models)
    wanted = {name.casefold(): name for name in only}
    chosen = [e for e in suite.models if e.name.casefold() in wanted]
    missing = set(wanted) - {e.name.casefold() for e in chosen}
    if missing:
        import difflib

        names = [e.name for e in suite.models]
        bad = wanted[sorted(missing)[0]]
        close = difflib.get_close_matches(bad, names, n=3, cutoff=0.4)
        hint = f"; close names: {', '.join(close)}" if close else f"; rows are: {', '.join(names)}"
        raise SuiteError(suite.path or suite.name, "--only", f"no row named {bad!r}{hint}")
    return chosen


def python_path(suite: Suite) -> list[str]:
    """Where a worker finds the suite's ``python:`` models after the installed packages: the
    suite file's folder (the working directory for a suite not read from a file), then its
    ``python_path:`` folders, relative to that folder; absolute, without repeats."""
    folder = Path(suite.path).parent if suite.path else Path(".")
    folders = [folder, *(folder / entry for entry in suite.python_path)]
    return list(dict.fromkeys(os.path.abspath(f) for f in folders))


def resolve_job(suite: Suite, entry: ModelEntry, overrides: Optional[dict[str, Any]] = None,
                *, static_only: bool = False) -> Job:
    """Resolve one entry: built-in defaults → suite defaults → entry → overrides.

    With a batch-size sweep this is the first batch size; see :func:`resolve_jobs`.
    """
    return resolve_jobs(suite, entry, overrides, static_only=static_only)[0]


def resolve_jobs(suite: Suite, entry: ModelEntry, overrides: Optional[dict[str, Any]] = None,
                 *, static_only: bool = False) -> list[Job]:
    """Resolve one entry into one job per batch size (``batch_size: [1, 8]`` gives two).

    ``batch_size: max`` gives one job with ``max_batch`` set, searching upward from 1.
    A runtime list (``runtime: [eager, openvino]``) gives one job per batch size and runtime.
    """
    from vitbench.env import default_threads, resolve_device

    settings = resolve_settings(suite.defaults, entry, overrides)
    size = settings["image_size"]
    image_size = (size, size) if isinstance(size, int) else tuple(size)
    batch = settings["batch_size"]
    batches = [1] if batch == "max" else list(batch) if isinstance(batch, list) else [batch]
    # Settings and Job share their names; only these need resolving into a Job's terms.
    common = {key: value for key, value in settings.items() if key in Job.model_fields}
    common.update(
        name=entry.name, model=entry.model or "", kwargs=dict(entry.kwargs),
        image_size=image_size, device=resolve_device(settings["device"]),
        threads=settings["threads"] or default_threads(), compile=settings["compile"] or None,
        static_only=static_only, max_batch=batch == "max",
        processes=1 if static_only else settings["processes"], python_path=python_path(suite))
    del common["batch_size"]
    runtime = settings["runtime"]
    runtimes = list(runtime) if isinstance(runtime, list) else [runtime]
    if static_only:
        runtimes = runtimes[:1]  # counts are the PyTorch model's whatever runs it
    # runtime: compile is torch.compile in the row's mode (default unless the row sets one)
    return [Job(batch_size=b, **{**common, "runtime": r, "compile": (
        common["compile"] or "default") if r == "compile" else common["compile"]})
        for b in batches for r in runtimes]
