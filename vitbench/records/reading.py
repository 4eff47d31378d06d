"""Reading the JSON files vitbench wrote: one reader every command goes through, so a file
that is corrupt, re-encoded, hand-edited, cut short or another tool's is one line naming the
file and what is wrong (exit 2), never a traceback or a gate verdict.

* :func:`read_json` — the bytes on disk to a JSON document: missing, a folder, empty, not
  UTF-8 (the byte and its offset), not JSON (line and column), or a value vitbench never
  writes (NaN, ±Infinity, numbers out of range, nesting too deep);
* :func:`check_schema` — the document's ``schema``: not an object, none, another tool's,
  another kind of vitbench file, or a newer version than this vitbench reads;
* :func:`first_problem` — a pydantic ValidationError as the one line that names its first
  field (``results[2] (DeiT-Ti): counts.params: Input should be a valid integer (and 3 more
  problems)``).

Standard library and pydantic only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from pydantic import ValidationError

from vitbench.errors import ResultsError

#: The kinds of file vitbench writes, by schema family: what a reader says it was given.
SCHEMA_FAMILIES = {"vitbench.result": "results file", "vitbench.baseline": "baseline file",
                   "vitbench.verdict": "gate verdict file",
                   "vitbench.gate-selftest": "gate self-test file"}
#: No count or size vitbench writes comes near this; a float made from a larger int overflows.
LARGEST_INT = 2**63
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_JSON_KINDS = {list: "a JSON array", str: "a JSON string", bool: "JSON true/false",
               type(None): "JSON null", int: "a JSON number", float: "a JSON number"}


class _NotAValue(ValueError):
    """Text :mod:`json` would accept but JSON has not, or no reader can use."""


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} characters)"


def _no_constant(name: str) -> Any:
    raise _NotAValue(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotAValue(f"number {_short(text)} is out of range")
    return value


def _bounded_int(text: str) -> int:
    # The length first: int() of thousands of digits is slow, and refused past 4300.
    if len(text.lstrip("-")) > 19 or abs(int(text)) > LARGEST_INT:
        raise _NotAValue(f"number {_short(text)} is out of range")
    return int(text)


def read_json(path: str | Path, what: str = "results file") -> Any:
    """The JSON document in the file ``path``, or a :class:`ResultsError` whose one line
    names the file and what is wrong. A UTF-8 byte-order mark (an editor's) is allowed."""
    path = Path(path)

    def refused(problem: str) -> ResultsError:
        return ResultsError(f"{path}: {problem}")

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise refused("no such file") from None
    except IsADirectoryError:
        raise refused(f"is a folder, not a {what}") from None
    except PermissionError:
        raise refused("cannot read it (permission denied)") from None
    except OSError as exc:
        raise refused(f"cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = "; it looks like UTF-16: save it as UTF-8" if data.startswith(_UTF16_BOMS) else ""
        raise refused(f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}){hint}") \
            from None
    if not text.strip():
        raise refused(f"empty, not a {what}")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        cut = "; the file ends there: cut short?" if exc.pos >= len(text.rstrip()) else ""
        raise refused(f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}{cut})") \
            from None
    except _NotAValue as exc:
        raise refused(f"not JSON ({exc})") from None
    except RecursionError:
        raise refused("not JSON (nested too deeply)") from None


def check_schema(document: Any, readable: Sequence[str], what: str = "results file") -> str:
    """``document``'s ``schema`` when it is one of ``readable``; otherwise a
    :class:`ResultsError` (without the path: the caller adds it) saying what the document
    is instead."""
    if not isinstance(document, dict):
        kind = _JSON_KINDS.get(type(document), "not a JSON object")
        raise ResultsError(f"not a vitbench {what} ({kind}, not an object)")
    if "schema" not in document:
        raise ResultsError(f"not a vitbench {what} (no 'schema')")
    schema = document["schema"]
    if schema in readable:
        return schema
    family, _, version = schema.partition("/") if isinstance(schema, str) else ("", "", "")
    versions = [r.partition("/")[2] for r in readable if r.partition("/")[0] == family]
    if versions:
        reads = ", ".join(f"/{v}" for v in versions)
        if version.isdigit() and all(v.isdigit() and int(version) > int(v) for v in versions):
            raise ResultsError(f"schema {schema} is newer than this vitbench (reads {reads}): "
                               "upgrade vitbench to read it")
        raise ResultsError(f"schema {schema!r} is not one this vitbench reads ({reads})")
    if family in SCHEMA_FAMILIES:
        raise ResultsError(f"a vitbench {SCHEMA_FAMILIES[family]}, not a {what}")
    raise ResultsError(f"not a vitbench {what} (schema {schema!r})")


def location(loc: Sequence[Any]) -> str:
    """A pydantic error location as a path: ``("results", 2, "counts", "params")`` →
    ``results[2].counts.params``."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".")


def first_problem(exc: ValidationError, prefix: Sequence[Any] = (),
                  where: Optional[Callable[[list], tuple[str, list]]] = None) -> str:
    """The first error of ``exc`` in one line, ``PLACE: PROBLEM (and N more problems)``.

    ``prefix`` is prepended to every location (the field that was validated on its own);
    ``where`` may rewrite a location into a label and the rest of the path (a row's name)."""
    errors = exc.errors()
    first = errors[0]
    loc = [*prefix, *first["loc"]]
    label = ""
    if where is not None:
        label, loc = where(loc)
    path = location(loc)
    problem = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    problem = problem.removeprefix("Value error, ")
    place = ": ".join(part for part in (label, path) if part) or "document"
    more = len(errors) - 1
    return (f"{place}: {problem}"
            + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))
