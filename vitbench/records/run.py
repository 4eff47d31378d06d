"""The canonical ``results.json``: :class:`RunResult`, written as ``vitbench.result/2`` and read
from any schema in :data:`READABLE_SCHEMAS`, with errors that name the file, the row and the
field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from vitbench.errors import ResultsError
from vitbench.files import RESULTS_FILE, write_atomic
from vitbench.records.reading import check_schema, first_problem, read_json
from vitbench.records.relative import ReferenceRecord
from vitbench.records.row import ModelResult
from vitbench.records.v1 import SCHEMA_V1, upgrade_v1, v1_location

SCHEMA = "vitbench.result/2"
#: Every ``schema`` a results file may carry; :meth:`RunResult.load` reads them all.
READABLE_SCHEMAS = (SCHEMA_V1, SCHEMA)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _SuiteRow(_Loose):
    name: Optional[str] = None


class _SuiteAsRun(_Loose):
    models: list[_SuiteRow] = Field(default_factory=list)


class SuiteRecord(_Loose):
    """What readers take from a run's ``suite`` (the rest is kept as written): text where a
    report prints it, names a folder after it or matches runs by it; the suite as run, whose
    row order reports follow. Checked when a file is read (:meth:`RunResult.from_document`).
    The name is a suite name (``report`` names a folder after it: never ``../..``)."""

    name: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: Optional[str] = None
    source: Optional[str] = None
    path: Optional[str] = None
    sha256: Optional[str] = None
    as_run: Optional[_SuiteAsRun] = None


class RunResult(BaseModel):
    """One invocation of a suite: the canonical ``results.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["vitbench.result/2"] = Field(SCHEMA, alias="schema")
    suite: dict[str, Any]
    created_utc: str
    #: This run's identity in CSVs, histories and dashboards (``20261202T051402Z-3f9a1c``:
    #: sorts by time, unique across machines). Files written before it existed get
    #: :attr:`id`'s stable derived value.
    run_id: Optional[str] = None
    finished_utc: Optional[str] = None
    complete: bool = False
    command: list[str] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)
    conventions: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    #: the model every timed row's ``relative`` latency divides by (None: no reference)
    reference: Optional[ReferenceRecord] = None
    results: list[ModelResult] = Field(default_factory=list)
    _file_schema: str = PrivateAttr(SCHEMA)

    @property
    def file_schema(self) -> str:
        """The schema of the file this run was read from (reports say which file they
        rendered); the current one for a run made here. Saving always writes the current."""
        return self._file_schema

    @property
    def id(self) -> str:
        """:attr:`run_id`, or for an older file one derived from its creation time and suite
        (the same file always gives the same id)."""
        if self.run_id:
            return self.run_id
        import hashlib

        seed = f"{self.created_utc}|{self.suite.get('sha256', '')}|{self.suite.get('name', '')}"
        stamp = re.sub(r"[^0-9T]", "", self.created_utc.split("+")[0])[:15]
        return f"{stamp}Z-{hashlib.sha256(seed.encode()).hexdigest()[:6]}"

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename), always as the current schema."""
        return write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "RunResult":
        """Read a results file of any schema in :data:`READABLE_SCHEMAS` (a folder means its
        ``results.json``): the one loader every command that reads results goes through. A
        file that cannot be read, is not JSON, has another schema or content that does not
        validate is a :class:`ResultsError`: one line naming the file and the first problem."""
        path = Path(path)
        if path.is_dir() and path.name != RESULTS_FILE:
            if not (path / RESULTS_FILE).exists():
                raise ResultsError(f"{path}: no {RESULTS_FILE} in this folder")
            path = path / RESULTS_FILE
        data = read_json(path, "results file")
        try:
            return cls.from_document(data)
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from None

    @classmethod
    def from_document(cls, data: Any) -> "RunResult":
        """A parsed results document: ``/2`` as it is, ``/1`` through :func:`upgrade_v1`;
        problems name the row and the field as the file spells them."""
        schema = check_schema(data, READABLE_SCHEMAS, "results file")
        upgraded = upgrade_v1(data) if schema == SCHEMA_V1 else data
        try:
            run = cls.model_validate(upgraded)
        except ValidationError as exc:
            raise ResultsError(first_problem(exc, where=_row_place(data, schema))) from None
        try:
            SuiteRecord.model_validate(run.suite)
        except ValidationError as exc:
            raise ResultsError(first_problem(exc, prefix=("suite",))) from None
        run._file_schema = schema
        return run

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        out: dict[str, int] = {}
        for row in self.results:
            out[row.status] = out.get(row.status, 0) + 1
        return out


def _row_place(data: dict, schema: str):
    """Locations inside a row read as ``results[2] (DeiT-Ti)`` and the field, spelled as the
    file's schema spells it (a ``/1`` row's flat names)."""
    def where(loc: list) -> tuple[str, list]:
        if loc[:1] != ["results"] or len(loc) < 2 or not isinstance(loc[1], int):
            return "", loc
        rows = data.get("results")
        row = rows[loc[1]] if isinstance(rows, list) and loc[1] < len(rows) else None
        name = row.get("name") if isinstance(row, dict) else None
        label = f"results[{loc[1]}]" + (f" ({name[:80]})" if isinstance(name, str) else "")
        rest = loc[2:]
        return label, v1_location(rest) if schema == SCHEMA_V1 else rest

    return where
