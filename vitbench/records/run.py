"""The canonical ``results.json``: :class:`RunResult`, written as ``vitbench.result/2`` and read
from any schema in :data:`READABLE_SCHEMAS`, with errors that name the file, the row and the
field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from vitbench.errors import ResultsError
from vitbench.files import write_atomic
from vitbench.records.row import ModelResult
from vitbench.records.v1 import SCHEMA_V1, upgrade_v1

SCHEMA = "vitbench.result/2"
#: Every ``schema`` a results file may carry; :meth:`RunResult.load` reads them all.
READABLE_SCHEMAS = (SCHEMA_V1, SCHEMA)


class RunResult(BaseModel):
    """One invocation of a suite: the canonical ``results.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["vitbench.result/2"] = Field(SCHEMA, alias="schema")
    suite: dict[str, Any]
    created_utc: str
    finished_utc: Optional[str] = None
    complete: bool = False
    command: list[str] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)
    conventions: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    results: list[ModelResult] = Field(default_factory=list)
    _file_schema: str = PrivateAttr(SCHEMA)

    @property
    def file_schema(self) -> str:
        """The schema of the file this run was read from (reports say which file they
        rendered); the current one for a run made here. Saving always writes the current."""
        return self._file_schema

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename), always as the current schema."""
        return write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "RunResult":
        """Read a results file of any schema in :data:`READABLE_SCHEMAS`; errors name the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError):
            raise ResultsError(f"{path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        try:
            return cls.from_document(data)
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from None

    @classmethod
    def from_document(cls, data: Any) -> "RunResult":
        """A parsed results document: ``/2`` as it is, ``/1`` through :func:`upgrade_v1`."""
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema == SCHEMA_V1:
            data = upgrade_v1(data)
        elif schema != SCHEMA:
            raise ResultsError(f"schema {schema!r} is not one of "
                               f"{', '.join(map(repr, READABLE_SCHEMAS))}")
        try:
            run = cls.model_validate(data)
        except ValidationError as exc:
            raise ResultsError(_first_problem(exc, data)) from None
        run._file_schema = schema
        return run

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        out: dict[str, int] = {}
        for row in self.results:
            out[row.status] = out.get(row.status, 0) + 1
        return out


def _first_problem(exc: ValidationError, data: dict) -> str:
    """``results[2] (DeiT-Ti): latency.summary.p50: unknown field (schema vitbench.result/2)``."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = ""
    if loc[:1] == ["results"] and len(loc) > 1 and isinstance(loc[1], int):
        rows = data.get("results") or []
        name = rows[loc[1]].get("name") if isinstance(rows[loc[1]], dict) else None
        where = f"results[{loc[1]}]" + (f" ({name})" if name else "") + ": "
        loc = loc[2:]
    path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".")
    problem = ("unknown field" if error["type"] == "extra_forbidden" else error["msg"])
    more = len(exc.errors()) - 1
    return (f"{where}{path or 'document'}: {problem} (schema {SCHEMA})"
            + (f"; {more} more problem{'s' if more > 1 else ''}" if more else ""))
